//! One block device with one hand-driven queue: lays out requests as Linux does and
//! drives them a batch at a time, timing the exits they cost.

use crate::workload::{Workload, T_IN};
use devices::grant::PAGE_SIZE;
use devices::mmio::reg;
use devices::queue::{DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE};
use std::time::{Duration, Instant};
use stubvirt_tests::rings::{Granted, RawDriver, RawQueue};
use stubvirt_tests::scenario::{self, Shared, FRONTEND};

const QUEUE_SIZE: u16 = 256;
pub const DISK_BYTES: u64 = 64 << 20;
const MAX_CHAINS: usize = 64;
const HEADER_PAGE: usize = 0;
const STATUS_PAGE: usize = 1;
const TABLE_PAGE: usize = 2;
pub const DATA_PAGE: usize = TABLE_PAGE + MAX_CHAINS;

/// One block device with one hand-driven queue of 256 entries, EVENT_IDX and indirect.
pub struct BlkRig {
    pub machine: Shared,
    raw: RawDriver,
    pub queue: RawQueue,
    mem: Granted,
    pub irq: u32,
    /// used.idx the driver has reaped up to.
    pub reaped: u16,
    /// avail.idx at the last notification.
    notified_at: u16,
    interrupts_seen: u64,
}

impl BlkRig {
    /// A rig whose request buffers are reached by grant copy (`copy`, the kernel's
    /// default) or mapped.
    pub fn new(data_bytes: usize, copy: bool) -> Self {
        let (machine, raw, queue) =
            stubvirt_tests::rings::hand_driven_disk(DISK_BYTES / 512, "bench", QUEUE_SIZE);
        let (_, irq) = scenario::window(0);
        let mem = Granted::new(FRONTEND, DATA_PAGE + data_bytes / PAGE_SIZE, false);
        if copy {
            machine.borrow_mut().frontends.copy_buffers(FRONTEND);
        }
        Self {
            machine,
            raw,
            queue,
            mem,
            irq,
            reaped: 0,
            notified_at: 0,
            interrupts_seen: 0,
        }
    }

    /// Lays out chain `slot` (header, `pages` data pages at `data_page`, status) and
    /// returns its head; direct chains use descriptors from `next_desc`.
    pub fn place(
        &mut self,
        slot: usize,
        (kind, sector): (u32, u64),
        (data_page, pages): (usize, usize),
        indirect: bool,
        next_desc: &mut u16,
    ) -> u16 {
        let mut header = [0u8; 16];
        header[..4].copy_from_slice(&kind.to_le_bytes());
        header[8..].copy_from_slice(&sector.to_le_bytes());
        self.mem.write(HEADER_PAGE * PAGE_SIZE + 16 * slot, &header);
        let data_flags = if kind == T_IN { DESC_F_WRITE } else { 0 };
        let mut descs = vec![(
            self.mem.dma(HEADER_PAGE * PAGE_SIZE + 16 * slot),
            16u32,
            0u16,
        )];
        for p in 0..pages {
            descs.push((
                self.mem.dma((data_page + p) * PAGE_SIZE),
                PAGE_SIZE as u32,
                data_flags,
            ));
        }
        descs.push((
            self.mem.dma(STATUS_PAGE * PAGE_SIZE + slot),
            1,
            DESC_F_WRITE,
        ));
        let count = descs.len();
        let head = *next_desc;
        if indirect {
            let mut table = Vec::with_capacity(16 * count);
            for (k, &(addr, len, flags)) in descs.iter().enumerate() {
                let last = k + 1 == count;
                table.extend_from_slice(&addr.to_le_bytes());
                table.extend_from_slice(&len.to_le_bytes());
                table.extend_from_slice(
                    &(if last { flags } else { flags | DESC_F_NEXT }).to_le_bytes(),
                );
                table.extend_from_slice(&(if last { 0u16 } else { k as u16 + 1 }).to_le_bytes());
            }
            let at = (TABLE_PAGE + slot) * PAGE_SIZE;
            self.mem.write(at, &table);
            self.queue.set_desc(
                head,
                self.mem.dma(at),
                table.len() as u32,
                DESC_F_INDIRECT,
                0,
            );
            *next_desc += 1;
        } else {
            for (k, &(addr, len, flags)) in descs.iter().enumerate() {
                let last = k + 1 == count;
                let index = head + k as u16;
                self.queue.set_desc(
                    index,
                    addr,
                    len,
                    if last { flags } else { flags | DESC_F_NEXT },
                    index + 1,
                );
            }
            *next_desc += count as u16;
        }
        head
    }

    /// One batch of `workload.depth` requests: place, notify if EVENT_IDX asks for it,
    /// reap; an interrupt costs the driver INTERRUPT_STATUS read + INTERRUPT_ACK write.
    /// Returns the time spent in exits (the backend's work, and all of it: the
    /// simulation serves a notification completely inside the trap); the driver's ring
    /// writes are left out.
    pub fn round(&mut self, workload: &Workload, position: &mut u64) -> Duration {
        let chains = workload.chains();
        let mut next_desc = 0u16;
        let mut slot = 0;
        let request_sectors = (workload.bytes / 512) as u64;
        let disk_requests = DISK_BYTES / workload.bytes as u64;
        for r in 0..workload.depth {
            let first_sector = if workload.random {
                // A multiplicative hash of the position: spread, deterministic.
                (position.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20) % disk_requests
                    * request_sectors
            } else {
                *position % disk_requests * request_sectors
            };
            *position += 1;
            let mut sector = first_sector;
            let mut data_page = DATA_PAGE + r * workload.bytes / PAGE_SIZE;
            for &pages in &chains {
                let head = self.place(
                    slot,
                    (workload.kind, sector),
                    (data_page, pages),
                    workload.indirect,
                    &mut next_desc,
                );
                self.queue.push(head);
                slot += 1;
                sector += (pages * PAGE_SIZE / 512) as u64;
                data_page += pages;
            }
        }
        let new = self.queue_avail_idx();
        let event = self.queue.avail_event();
        // vring_need_event(avail_event, new, old)
        let start = Instant::now();
        if new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(self.notified_at) {
            self.raw.notify(0);
        }
        let mut in_exits = start.elapsed();
        self.notified_at = new;
        let used = self.queue.used_idx();
        assert_eq!(used, new, "every request completed");
        self.reaped = used;
        // Ask for an interrupt at the next completion (Linux: used_event = last seen).
        self.queue.set_used_event(used);
        let interrupts = self.machine.borrow().interrupts_for(FRONTEND, self.irq);
        if interrupts != self.interrupts_seen {
            self.interrupts_seen = interrupts;
            let start = Instant::now();
            let status = self.raw.read(reg::INTERRUPT_STATUS);
            self.raw.write(reg::INTERRUPT_ACK, status);
            in_exits += start.elapsed();
        }
        in_exits
    }

    fn queue_avail_idx(&self) -> u16 {
        self.queue.avail.read_u16(2)
    }

    pub fn check_status(&self, chains: usize) {
        for slot in 0..chains {
            assert_eq!(
                self.mem.read(STATUS_PAGE * PAGE_SIZE + slot, 1)[0],
                0,
                "request {slot} OK"
            );
        }
    }
}

impl Drop for BlkRig {
    fn drop(&mut self) {
        self.raw.write(reg::STATUS, 0);
    }
}
