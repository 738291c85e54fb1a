//! A hand-driven frontend for cases `virtio-drivers` cannot produce: rings built byte by
//! byte in granted pages, registers poked one by one. Used by the hostile suite.

use crate::hal;
use crate::host_pages::{self, SharedRange, PAGE_SIZE};
use crate::scenario::Shared;
use crate::world;
use devices::backend::DomainId;
use devices::grant::{GrantAddress, GrantRef};
use devices::mmio::{reg, status};
use std::ptr::NonNull;

/// Pages a frontend allocated and granted to the backend.
pub struct Granted {
    domain: DomainId,
    ptr: NonNull<u8>,
    pages: usize,
    pub gref: u32,
}

impl Granted {
    pub fn new(domain: DomainId, pages: usize, readonly: bool) -> Self {
        let ptr = host_pages::alloc_pages(pages);
        let gref = hal::grant_buffer(domain, ptr.as_ptr() as usize, pages * PAGE_SIZE, readonly);
        Self {
            domain,
            ptr,
            pages,
            gref,
        }
    }

    /// The grant DMA address of byte `offset`.
    pub fn dma(&self, offset: usize) -> u64 {
        GrantAddress::encode(
            GrantRef(self.gref + (offset / PAGE_SIZE) as u32),
            (offset % PAGE_SIZE) as u16,
        )
    }

    fn range(&self) -> SharedRange {
        let start = self.ptr.as_ptr() as usize;
        SharedRange {
            start,
            end: start + self.pages * PAGE_SIZE,
        }
    }

    pub fn write(&self, offset: usize, bytes: &[u8]) {
        assert!(host_pages::write(
            self.range(),
            self.range().start + offset,
            bytes
        ));
    }

    pub fn read(&self, offset: usize, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        assert!(host_pages::read(
            self.range(),
            self.range().start + offset,
            &mut out
        ));
        out
    }

    pub fn read_u16(&self, offset: usize) -> u16 {
        u16::from_le_bytes(self.read(offset, 2).try_into().unwrap())
    }

    pub fn read_u32(&self, offset: usize) -> u32 {
        u32::from_le_bytes(self.read(offset, 4).try_into().unwrap())
    }

    /// Zeroes every granted page.
    pub fn clear(&self) {
        self.write(0, &vec![0; self.pages * PAGE_SIZE]);
    }

    /// Takes the grants back even if the backend maps them (a hostile frontend).
    pub fn revoke(&self) {
        world::with(|w| {
            for i in 0..self.pages as u32 {
                w.table(self.domain).revoke(self.gref + i);
            }
        });
    }
}

impl Drop for Granted {
    fn drop(&mut self) {
        let still_mapped = world::with(|w| {
            let table = w.table(self.domain);
            (0..self.pages as u32).any(|i| table.entry(self.gref + i).is_some_and(|e| e.mapped > 0))
        });
        if still_mapped {
            // The backend still maps a page: leak it rather than free memory it can reach.
            return;
        }
        world::with(|w| {
            for i in 0..self.pages as u32 {
                let _ = w.table(self.domain).end_access(self.gref + i);
            }
        });
        // SAFETY: allocated by alloc_pages(self.pages) in `new`; no grant or mapping onto it
        // remains (checked above), and `self` is going away.
        unsafe { host_pages::free_pages(self.ptr, self.pages) };
    }
}

/// A split virtqueue laid out by hand: descriptor table, avail and used rings, each in
/// its own granted page(s).
pub struct RawQueue {
    pub size: u16,
    pub desc: Granted,
    pub avail: Granted,
    pub used: Granted,
    avail_idx: u16,
}

impl RawQueue {
    pub fn new(domain: DomainId, size: u16) -> Self {
        let n = usize::from(size);
        Self {
            size,
            desc: Granted::new(domain, (16 * n).div_ceil(PAGE_SIZE).max(1), true),
            avail: Granted::new(domain, (6 + 2 * n).div_ceil(PAGE_SIZE), true),
            used: Granted::new(domain, (6 + 8 * n).div_ceil(PAGE_SIZE), false),
            avail_idx: 0,
        }
    }

    /// Empties the rings in place, as a driver reusing its ring memory after a reset
    /// would: same pages, same grants.
    pub fn clear(&mut self) {
        self.desc.clear();
        self.avail.clear();
        self.used.clear();
        self.avail_idx = 0;
    }

    pub fn set_desc(&self, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut bytes = Vec::with_capacity(16);
        bytes.extend_from_slice(&addr.to_le_bytes());
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&flags.to_le_bytes());
        bytes.extend_from_slice(&next.to_le_bytes());
        self.desc.write(16 * usize::from(index), &bytes);
    }

    /// Whether the backend wrote into one of this queue's ring pages since
    /// `World::grants_written` was last cleared: a buffer that named the driver's own
    /// ring. The rings are mapped writable once, at `QueueReady`, before any clear.
    pub fn rings_written(&self) -> bool {
        crate::world::with(|w| {
            [&self.desc, &self.avail, &self.used].iter().any(|ring| {
                (0..ring.pages as u32)
                    .any(|i| w.grants_written.contains(&(ring.domain, ring.gref + i)))
            })
        })
    }

    /// Makes `head` available and publishes avail.idx.
    pub fn push(&mut self, head: u16) {
        let slot = usize::from(self.avail_idx % self.size);
        self.avail.write(4 + 2 * slot, &head.to_le_bytes());
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.avail.write(2, &self.avail_idx.to_le_bytes());
    }

    /// Whether a driver that negotiated EVENT_IDX kicks after making avail.idx `old` to
    /// the current one: Linux's `vring_need_event(avail_event, new, old)`.
    pub fn needs_kick_since(&self, old: u16) -> bool {
        let new = self.avail_idx;
        new.wrapping_sub(self.avail_event()).wrapping_sub(1) < new.wrapping_sub(old)
    }

    pub fn avail_idx(&self) -> u16 {
        self.avail_idx
    }

    /// Writes avail.idx directly (hostile: claim more than was added).
    pub fn set_avail_idx(&mut self, idx: u16) {
        self.avail_idx = idx;
        self.avail.write(2, &idx.to_le_bytes());
    }

    pub fn set_avail_flags(&self, flags: u16) {
        self.avail.write(0, &flags.to_le_bytes());
    }

    /// used_event (EVENT_IDX), at the end of the avail ring.
    pub fn set_used_event(&self, value: u16) {
        self.avail
            .write(4 + 2 * usize::from(self.size), &value.to_le_bytes());
    }

    /// avail_event (EVENT_IDX), written by the device at the end of the used ring.
    pub fn avail_event(&self) -> u16 {
        self.used.read_u16(4 + 8 * usize::from(self.size))
    }

    pub fn used_idx(&self) -> u16 {
        self.used.read_u16(2)
    }

    /// Used element `n` (id, len).
    pub fn used(&self, n: u16) -> (u32, u32) {
        let at = 4 + 8 * usize::from(n % self.size);
        (self.used.read_u32(at), self.used.read_u32(at + 4))
    }
}

/// A frontend driver poking registers through the simulated ioreq path.
pub struct RawDriver {
    pub machine: Shared,
    pub domain: DomainId,
    pub base: u64,
}

impl RawDriver {
    pub fn new(machine: &Shared, domain: DomainId, base: u64) -> Self {
        Self {
            machine: machine.clone(),
            domain,
            base,
        }
    }

    pub fn read(&self, offset: u64) -> u32 {
        self.machine
            .borrow_mut()
            .trap(self.domain, 0, self.base + offset, 4, false, 0) as u32
    }

    pub fn read_sized(&self, offset: u64, size: u32) -> u64 {
        self.machine
            .borrow_mut()
            .trap(self.domain, 0, self.base + offset, size, false, 0)
    }

    pub fn write(&self, offset: u64, value: u32) {
        self.machine.borrow_mut().trap(
            self.domain,
            0,
            self.base + offset,
            4,
            true,
            u64::from(value),
        );
    }

    pub fn write_sized(&self, offset: u64, size: u32, value: u64) {
        self.machine
            .borrow_mut()
            .trap(self.domain, 0, self.base + offset, size, true, value);
    }

    pub fn device_features(&self) -> u64 {
        self.write(reg::DEVICE_FEATURES_SEL, 0);
        let low = self.read(reg::DEVICE_FEATURES);
        self.write(reg::DEVICE_FEATURES_SEL, 1);
        let high = self.read(reg::DEVICE_FEATURES);
        (u64::from(high) << 32) | u64::from(low)
    }

    /// Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK. Returns the status read back.
    pub fn negotiate(&self, features: u64) -> u32 {
        self.write(reg::STATUS, 0);
        self.write(reg::STATUS, status::ACKNOWLEDGE);
        self.write(reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        self.write(reg::DRIVER_FEATURES_SEL, 0);
        self.write(reg::DRIVER_FEATURES, features as u32);
        self.write(reg::DRIVER_FEATURES_SEL, 1);
        self.write(reg::DRIVER_FEATURES, (features >> 32) as u32);
        self.write(
            reg::STATUS,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
        );
        self.read(reg::STATUS)
    }

    /// Programs queue `index` with `queue`'s rings and a size, then sets QueueReady.
    pub fn setup_queue(&self, index: u32, queue: &RawQueue, size: u16) {
        self.write(reg::QUEUE_SEL, index);
        self.write(reg::QUEUE_NUM, u32::from(size));
        self.write64(reg::QUEUE_DESC_LOW, queue.desc.dma(0));
        self.write64(reg::QUEUE_DRIVER_LOW, queue.avail.dma(0));
        self.write64(reg::QUEUE_DEVICE_LOW, queue.used.dma(0));
        self.write(reg::QUEUE_READY, 1);
    }

    pub fn write64(&self, low: u64, value: u64) {
        self.write(low, value as u32);
        self.write(low + 4, (value >> 32) as u32);
    }

    pub fn driver_ok(&self) {
        let status = self.read(reg::STATUS);
        self.write(reg::STATUS, status | status::DRIVER_OK);
    }

    pub fn notify(&self, queue: u32) {
        self.write(reg::QUEUE_NOTIFY, queue);
    }

    pub fn status(&self) -> u32 {
        self.read(reg::STATUS)
    }
}

/// A fresh machine with a RAM disk of `sectors` at window 0 of the frontend, driven by
/// hand through queue 0 of `queue_size` entries with INDIRECT_DESC and EVENT_IDX
/// negotiated and DRIVER_OK set.
pub fn hand_driven_disk(
    sectors: u64,
    serial: &str,
    queue_size: u16,
) -> (Shared, RawDriver, RawQueue) {
    let disk = devices::blk::backend::RamDisk::new(sectors, serial);
    hand_driven_disk_over(Box::new(disk), queue_size)
}

/// As [`hand_driven_disk`], over any backing store.
pub fn hand_driven_disk_over(
    disk: Box<dyn devices::blk::backend::BlockBackend>,
    queue_size: u16,
) -> (Shared, RawDriver, RawQueue) {
    use devices::features;
    let frontend = crate::scenario::FRONTEND;
    let machine = crate::scenario::machine(&[frontend]);
    crate::scenario::add_disk(&machine, frontend, 0, disk, Default::default());
    let (base, _) = crate::scenario::window(0);
    let raw = RawDriver::new(&machine, frontend, base);
    let negotiated = raw.negotiate(
        features::VERSION_1
            | features::ACCESS_PLATFORM
            | features::INDIRECT_DESC
            | features::EVENT_IDX,
    );
    assert_ne!(negotiated & status::FEATURES_OK, 0, "features accepted");
    let queue = RawQueue::new(frontend, queue_size);
    raw.setup_queue(0, &queue, queue_size);
    raw.driver_ok();
    (machine, raw, queue)
}
