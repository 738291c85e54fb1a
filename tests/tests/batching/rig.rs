//! The hand-driven disk the batching tests share: one queue of 256 entries laid out
//! page by page (headers, statuses, indirect tables, data), requests placed as a
//! driver would, and the hypercall counts a notification costs.

use devices::blk::backend::{BlockBackend, RamDisk};
use devices::grant::PAGE_SIZE;
use devices::mmio::reg;
use devices::queue::{DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE};
use stubvirt_tests::rings::{Granted, RawDriver, RawQueue};
use stubvirt_tests::scenario::{Shared, FRONTEND};
use stubvirt_tests::world::{self, HypercallStats};

pub const T_IN: u32 = 0;
pub const T_OUT: u32 = 1;
pub const QUEUE_SIZE: u16 = 256;
pub const HEADERS: usize = 0;
const STATUS: usize = 1;
const TABLES: usize = 2;
pub const DATA: usize = TABLES + 64;

pub struct Rig {
    pub machine: Shared,
    pub raw: RawDriver,
    pub queue: RawQueue,
    pub mem: Granted,
    pub next_desc: u16,
    pub slot: usize,
}

impl Rig {
    pub fn new(data_pages: usize) -> Self {
        Self::over(Box::new(RamDisk::new(8192, "batch")), data_pages)
    }

    /// As `new`, over `disk`.
    pub fn over(disk: Box<dyn BlockBackend>, data_pages: usize) -> Self {
        let (machine, raw, queue) = stubvirt_tests::rings::hand_driven_disk_over(disk, QUEUE_SIZE);
        let mem = Granted::new(FRONTEND, DATA + data_pages, false);
        Self {
            machine,
            raw,
            queue,
            mem,
            next_desc: 0,
            slot: 0,
        }
    }

    /// Places a request over `pages` data pages from `data_page`, direct or indirect;
    /// makes it available without notifying. Returns its slot (status byte index).
    pub fn place(
        &mut self,
        kind: u32,
        sector: u64,
        data_page: usize,
        pages: usize,
        indirect: bool,
    ) -> usize {
        let slot = self.slot;
        self.slot += 1;
        let mut header = [0u8; 16];
        header[..4].copy_from_slice(&kind.to_le_bytes());
        header[8..].copy_from_slice(&sector.to_le_bytes());
        self.mem.write(HEADERS * PAGE_SIZE + 16 * slot, &header);
        self.mem.write(STATUS * PAGE_SIZE + slot, &[0xff]);
        let data_flags = if kind == T_IN { DESC_F_WRITE } else { 0 };
        let mut descs = vec![(self.mem.dma(HEADERS * PAGE_SIZE + 16 * slot), 16u32, 0u16)];
        for p in 0..pages {
            descs.push((
                self.mem.dma((data_page + p) * PAGE_SIZE),
                PAGE_SIZE as u32,
                data_flags,
            ));
        }
        descs.push((self.mem.dma(STATUS * PAGE_SIZE + slot), 1, DESC_F_WRITE));
        let head = self.next_desc;
        let count = descs.len();
        if indirect {
            let mut table = Vec::new();
            for (k, &(addr, len, flags)) in descs.iter().enumerate() {
                let last = k + 1 == count;
                table.extend_from_slice(&addr.to_le_bytes());
                table.extend_from_slice(&len.to_le_bytes());
                table.extend_from_slice(
                    &(if last { flags } else { flags | DESC_F_NEXT }).to_le_bytes(),
                );
                table.extend_from_slice(&(if last { 0 } else { k as u16 + 1 }).to_le_bytes());
            }
            let at = (TABLES + slot) * PAGE_SIZE;
            self.mem.write(at, &table);
            self.queue.set_desc(
                head,
                self.mem.dma(at),
                table.len() as u32,
                DESC_F_INDIRECT,
                0,
            );
            self.next_desc += 1;
        } else {
            for (k, &(addr, len, flags)) in descs.iter().enumerate() {
                let last = k + 1 == count;
                let index = head + k as u16;
                let flags = if last { flags } else { flags | DESC_F_NEXT };
                self.queue.set_desc(index, addr, len, flags, index + 1);
            }
            self.next_desc += count as u16;
        }
        self.queue.push(head);
        slot
    }

    /// As `new`, with request buffers reached by grant copy (the kernel's default).
    pub fn copied(data_pages: usize) -> Self {
        let rig = Self::new(data_pages);
        rig.machine.borrow_mut().frontends.copy_buffers(FRONTEND);
        rig
    }

    /// Places a one-page direct request as `place` does, with its header descriptor
    /// pointing at `header` instead (the header bytes stay where `place` wrote them).
    pub fn place_with_header_at(&mut self, kind: u32, sector: u64, data_page: usize, header: u64) {
        let head = self.next_desc;
        self.place(kind, sector, data_page, 1, false);
        self.queue.set_desc(head, header, 16, DESC_F_NEXT, head + 1);
    }

    /// Requests the device has failed so far.
    pub fn request_errors(&self) -> u64 {
        let machine = self.machine.borrow();
        machine
            .backend
            .counters(0)
            .map_or(0, |counters| counters.request_errors)
    }

    pub fn status_of(&self, slot: usize) -> u8 {
        self.mem.read(STATUS * PAGE_SIZE + slot, 1)[0]
    }

    pub fn fill(&self, data_page: usize, pages: usize, byte: u8) {
        self.mem
            .write(data_page * PAGE_SIZE, &vec![byte; pages * PAGE_SIZE]);
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.raw.write(reg::STATUS, 0);
    }
}

pub fn stats() -> HypercallStats {
    world::with(|w| w.stats)
}

/// Copy hypercalls (and refused ones) made while `f` runs.
pub fn copy_calls(f: impl FnOnce()) -> (u64, u64) {
    let before = stats();
    f();
    let after = stats();
    (
        after.copy_calls - before.copy_calls,
        after.copies_refused - before.copies_refused,
    )
}

/// Writes `depth` one-page requests (page `DATA + i` filled with `i + 1`, to sector
/// `8 * i`) and reads them back into pages `DATA + depth + i`, each batch made available
/// with one notification; returns the copy hypercalls of the writes and of the reads.
pub fn write_and_read_back(rig: &mut Rig, depth: usize) -> (u64, u64) {
    for i in 0..depth {
        rig.fill(DATA + i, 1, i as u8 + 1);
        rig.fill(DATA + depth + i, 1, 0);
        rig.place(T_OUT, 8 * i as u64, DATA + i, 1, false);
    }
    let (writes, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!(refused, 0);
    rig.slot = 0;
    rig.next_desc = 0;
    for i in 0..depth {
        rig.place(T_IN, 8 * i as u64, DATA + depth + i, 1, false);
    }
    let (reads, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!(refused, 0);
    for i in 0..depth {
        assert_eq!(rig.status_of(i), 0, "request {i}");
        assert_eq!(
            rig.mem.read((DATA + depth + i) * PAGE_SIZE, PAGE_SIZE),
            vec![i as u8 + 1; PAGE_SIZE],
            "request {i} read back"
        );
    }
    rig.slot = 0;
    rig.next_desc = 0;
    (writes, reads)
}
