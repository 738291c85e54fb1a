//! A block device driven by hand (`RawDriver` + `RawQueue`s) next to a second device
//! driven by `virtio-drivers`, for tests that must show one misbehaving queue leaves the
//! other queue and the other device serving.

use crate::hal::GrantDmaHal;
use crate::rings::{Granted, RawDriver, RawQueue};
use crate::scenario::{self, Shared, FRONTEND};
use crate::transport::XenMmioTransport;
use crate::world;
use devices::blk::backend::{BlockBackend, RamDisk};
use devices::blk::BlkOptions;
use devices::counters::Counters;
use devices::features;
use devices::queue::{DESC_F_NEXT, DESC_F_WRITE};
use virtio_drivers::device::blk::VirtIOBlk;

pub const SECTORS: u64 = 64;
pub const QUEUE_SIZE: u16 = 8;
pub const T_IN: u32 = 0;
pub const T_OUT: u32 = 1;
pub const T_FLUSH: u32 = 4;
pub const T_GET_ID: u32 = 8;
pub const T_DISCARD: u32 = 11;
pub const T_WRITE_ZEROES: u32 = 13;
/// Offsets in the fixture's scratch buffer.
pub const HEADER: usize = 0;
pub const STATUS: usize = 4096;
pub const DATA: usize = 8192;

pub struct BlkFixture {
    pub machine: Shared,
    pub raw: RawDriver,
    pub queues: Vec<RawQueue>,
    /// Scratch pages granted writable: headers at 0, status bytes at 4096, data at 8192.
    pub mem: Granted,
    /// The second device, driven by `virtio-drivers`.
    pub healthy: VirtIOBlk<GrantDmaHal<1>, XenMmioTransport>,
}

impl BlkFixture {
    /// Device 0 (two queues, hand-driven, with `extra` features) and device 1 (virtio-drivers).
    pub fn new(extra: u64) -> Self {
        Self::with_disk(extra, Box::new(RamDisk::new(SECTORS, "raw")))
    }

    /// As `new`, with device 0 over `disk` (e.g. a faulty one).
    pub fn with_disk(extra: u64, disk: Box<dyn BlockBackend>) -> Self {
        let machine = scenario::machine(&[FRONTEND]);
        let options = BlkOptions {
            queues: 2,
            ..BlkOptions::default()
        };
        scenario::add_disk(&machine, FRONTEND, 0, disk, options);
        scenario::add_ram_disk(
            &machine,
            FRONTEND,
            1,
            RamDisk::new(SECTORS, "healthy"),
            BlkOptions::default(),
        );
        let (base0, _) = scenario::window(0);
        let (base1, _) = scenario::window(1);
        let transport =
            XenMmioTransport::probe(machine.clone(), FRONTEND, 1, base1).expect("device 1 probes");
        let healthy = VirtIOBlk::new(transport).expect("device 1 initialises");
        let raw = RawDriver::new(&machine, FRONTEND, base0);
        let queues = start(&raw, extra);
        let mem = Granted::new(FRONTEND, 8, false);
        Self {
            machine,
            raw,
            queues,
            mem,
            healthy,
        }
    }

    /// Resets device 0 and brings it up again with fresh rings.
    pub fn restart(&mut self, extra: u64) {
        self.raw.write(devices::mmio::reg::STATUS, 0);
        self.queues = start(&self.raw, extra);
    }

    /// Writes a request header for slot `slot` and returns its DMA address.
    pub fn header(&self, slot: usize, kind: u32, sector: u64) -> u64 {
        let mut bytes = Vec::with_capacity(16);
        bytes.extend_from_slice(&kind.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&sector.to_le_bytes());
        self.mem.write(HEADER + 16 * slot, &bytes);
        self.mem.dma(HEADER + 16 * slot)
    }

    /// Status byte address of `slot`, pre-set to 0xff so a write is visible.
    pub fn status_addr(&self, slot: usize) -> u64 {
        self.mem.write(STATUS + slot, &[0xff]);
        self.mem.dma(STATUS + slot)
    }

    pub fn status_of(&self, slot: usize) -> u8 {
        self.mem.read(STATUS + slot, 1)[0]
    }

    /// Lays `descs` (addr, len, flags) out as one chain from descriptor 0, links them with
    /// NEXT, makes it available on `queue` and notifies.
    pub fn submit(&mut self, queue: usize, descs: &[(u64, u32, u16)]) {
        self.place(queue, descs);
        self.raw.notify(queue as u32);
    }

    /// As `submit`, without the notification.
    pub fn place(&mut self, queue: usize, descs: &[(u64, u32, u16)]) {
        let q = &mut self.queues[queue];
        for (i, &(addr, len, flags)) in descs.iter().enumerate() {
            let last = i + 1 == descs.len();
            let flags = if last { flags } else { flags | DESC_F_NEXT };
            q.set_desc(i as u16, addr, len, flags, (i + 1) as u16);
        }
        q.push(0);
    }

    /// Rings device 0's doorbell for queue 0 and answers the access, without running the
    /// queues: the chain waits, so a test can change the frontend's memory in between.
    pub fn doorbell_without_serving(&mut self) {
        let (base, _) = scenario::window(0);
        let mut m = self.machine.borrow_mut();
        m.post(
            FRONTEND,
            0,
            base + devices::mmio::reg::QUEUE_NOTIFY,
            4,
            true,
            0,
        );
        m.serve_slots();
        m.collect(FRONTEND, 0);
    }

    /// A standard 3-descriptor request: header, data, status.
    pub fn request(
        &mut self,
        queue: usize,
        kind: u32,
        sector: u64,
        data: (u64, u32),
        device_writes: bool,
    ) {
        let header = self.header(0, kind, sector);
        let status = self.status_addr(0);
        let data_flags = if device_writes { DESC_F_WRITE } else { 0 };
        self.submit(
            queue,
            &[
                (header, 16, 0),
                (data.0, data.1, data_flags),
                (status, 1, DESC_F_WRITE),
            ],
        );
    }

    /// The newest used element of `queue`.
    pub fn last_used(&self, queue: usize) -> Option<(u32, u32)> {
        let q = &self.queues[queue];
        let idx = q.used_idx();
        (idx != 0).then(|| q.used(idx.wrapping_sub(1)))
    }

    pub fn counters(&self) -> Counters {
        self.machine.borrow().backend.counters(0).expect("device 0")
    }

    pub fn device_status(&self) -> u32 {
        self.machine.borrow().backend.status(0).expect("device 0")
    }

    /// Writes a pattern through `queue` and reads it back: the queue still serves.
    pub fn assert_queue_serves(&mut self, queue: usize) {
        let pattern: Vec<u8> = (0..512u32).map(|i| (i * 7 + queue as u32) as u8).collect();
        self.mem.write(DATA, &pattern);
        self.request(queue, T_OUT, 9, (self.mem.dma(DATA), 512), false);
        assert_eq!(self.status_of(0), 0, "write on queue {queue} succeeds");
        self.mem.write(DATA + 512, &[0u8; 512]);
        self.request(queue, T_IN, 9, (self.mem.dma(DATA + 512), 512), true);
        assert_eq!(self.status_of(0), 0, "read on queue {queue} succeeds");
        assert_eq!(self.mem.read(DATA + 512, 512), pattern);
    }

    /// The `virtio-drivers` device still reads and writes.
    pub fn assert_other_device_serves(&mut self) {
        let data = [0xa5u8; 1024];
        self.healthy
            .write_blocks(4, &data)
            .expect("other device writes");
        let mut back = [0u8; 1024];
        self.healthy
            .read_blocks(4, &mut back)
            .expect("other device reads");
        assert_eq!(back, data);
    }

    /// The grant table saw only legal accesses.
    pub fn assert_no_violations(&self) {
        scenario::assert_no_violations();
    }

    /// Between requests only the rings stay mapped: two queues of device 0 and one of
    /// device 1, three regions each (one page apiece at these sizes).
    pub fn assert_only_rings_mapped(&self) {
        let m = self.machine.borrow();
        let held: u64 = (0..2)
            .map(|d| m.backend.counters(d).expect("device").pages_held())
            .sum();
        assert_eq!(held, self.live_mappings() as u64, "counters agree with Xen");
        assert_eq!(held, 9, "only ring pages are mapped");
    }

    pub fn live_mappings(&self) -> usize {
        world::with(|w| w.live_mappings())
    }
}

impl Drop for BlkFixture {
    /// Resets device 0 first so its rings are unmapped before their pages are freed.
    fn drop(&mut self) {
        self.raw.write(devices::mmio::reg::STATUS, 0);
    }
}

/// Negotiates, sets up both queues of device 0, DRIVER_OK.
fn start(raw: &RawDriver, extra: u64) -> Vec<RawQueue> {
    let status =
        raw.negotiate(features::VERSION_1 | features::ACCESS_PLATFORM | features::blk::MQ | extra);
    assert_ne!(
        status & devices::mmio::status::FEATURES_OK,
        0,
        "features accepted"
    );
    let queues = vec![
        RawQueue::new(FRONTEND, QUEUE_SIZE),
        RawQueue::new(FRONTEND, QUEUE_SIZE),
    ];
    raw.setup_queue(0, &queues[0], QUEUE_SIZE);
    raw.setup_queue(1, &queues[1], QUEUE_SIZE);
    raw.driver_ok();
    queues
}
