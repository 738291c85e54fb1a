//! Grant mapping batched across the chains found in one pass: chains made available
//! together share one map batch (two with indirect tables) and one unmap batch, are
//! answered in order, and a chain that does not fit waits for the next batch. Plus the
//! EVENT_IDX re-arm at the quota boundary.

use devices::grant::PAGE_SIZE;
use devices::mmio::{reg, status};
use devices::queue::{DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE};
use stubvirt_tests::rings::{Granted, RawDriver, RawQueue};
use stubvirt_tests::scenario::{self, Shared, FRONTEND};
use stubvirt_tests::world::{self, HypercallStats};

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const QUEUE_SIZE: u16 = 256;
const HEADERS: usize = 0;
const STATUS: usize = 1;
const TABLES: usize = 2;
const DATA: usize = TABLES + 64;

struct Rig {
    _machine: Shared,
    raw: RawDriver,
    queue: RawQueue,
    mem: Granted,
    next_desc: u16,
    slot: usize,
}

impl Rig {
    fn new(data_pages: usize) -> Self {
        let (machine, raw, queue) =
            stubvirt_tests::rings::hand_driven_disk(8192, "batch", QUEUE_SIZE);
        let mem = Granted::new(FRONTEND, DATA + data_pages, false);
        Self {
            _machine: machine,
            raw,
            queue,
            mem,
            next_desc: 0,
            slot: 0,
        }
    }

    /// Places a request over `pages` data pages from `data_page`, direct or indirect;
    /// makes it available without notifying. Returns its slot (status byte index).
    fn place(
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

    fn status_of(&self, slot: usize) -> u8 {
        self.mem.read(STATUS * PAGE_SIZE + slot, 1)[0]
    }

    fn fill(&self, data_page: usize, pages: usize, byte: u8) {
        self.mem
            .write(data_page * PAGE_SIZE, &vec![byte; pages * PAGE_SIZE]);
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.raw.write(reg::STATUS, 0);
    }
}

fn stats() -> HypercallStats {
    world::with(|w| w.stats)
}

#[test]
fn direct_chains_made_available_together_share_one_map_and_one_unmap_batch() {
    let mut rig = Rig::new(16);
    let slots: Vec<usize> = (0..16)
        .map(|i| rig.place(T_OUT, 8 * i as u64, DATA + i, 1, false))
        .collect();
    let before = stats();
    rig.raw.notify(0);
    let after = stats();
    assert_eq!(after.map_batches - before.map_batches, 1, "{after:?}");
    assert_eq!(after.unmap_batches - before.unmap_batches, 1, "{after:?}");
    assert_eq!(after.map_entries - before.map_entries, 16 * 3);
    assert_eq!(rig.queue.used_idx(), 16);
    for slot in slots {
        assert_eq!(rig.status_of(slot), 0);
    }
    // Rings only (three regions of this queue) stay mapped.
    assert_eq!(world::with(|w| w.live_mappings()), 1 + 1 + 1);
    scenario::assert_no_violations();
}

#[test]
fn indirect_chains_made_available_together_take_two_map_batches_and_one_unmap() {
    let mut rig = Rig::new(16 * 4);
    for i in 0..16 {
        rig.place(T_IN, 64 * i as u64, DATA + 4 * i, 4, true);
    }
    let before = stats();
    rig.raw.notify(0);
    let after = stats();
    assert_eq!(
        after.map_batches - before.map_batches,
        2,
        "tables, then data"
    );
    assert_eq!(after.unmap_batches - before.unmap_batches, 1);
    assert_eq!(rig.queue.used_idx(), 16);
    assert!((0..16).all(|slot| rig.status_of(slot) == 0));
    assert_eq!(world::with(|w| w.live_mappings()), 3);
    scenario::assert_no_violations();
}

#[test]
fn requests_in_one_batch_take_effect_in_ring_order() {
    let mut rig = Rig::new(3);
    rig.fill(DATA, 1, 0x11);
    rig.fill(DATA + 2, 1, 0x00);
    let write = rig.place(T_OUT, 40, DATA, 1, false);
    let read = rig.place(T_IN, 40, DATA + 2, 1, true);
    rig.raw.notify(0);
    assert_eq!((rig.status_of(write), rig.status_of(read)), (0, 0));
    assert_eq!(
        rig.mem.read((DATA + 2) * PAGE_SIZE, PAGE_SIZE),
        vec![0x11; PAGE_SIZE]
    );
    // Used entries come back in the order the chains were made available.
    assert_eq!(rig.queue.used(0).0, 0);
    assert_eq!(rig.queue.used(1).0, 3);
}

#[test]
fn chains_too_large_to_share_a_batch_are_served_in_the_next_one() {
    // Three 200-page requests (202 segments each): two fit one batch (512 segments),
    // the third waits for the next.
    let mut rig = Rig::new(3 * 200);
    for i in 0..3 {
        rig.fill(DATA + 200 * i, 200, i as u8 + 1);
        rig.place(T_OUT, 1600 * i as u64, DATA + 200 * i, 200, true);
    }
    let before = stats();
    rig.raw.notify(0);
    let after = stats();
    assert_eq!(rig.queue.used_idx(), 3);
    assert!((0..3).all(|slot| rig.status_of(slot) == 0));
    assert_eq!(after.unmap_batches - before.unmap_batches, 2, "two batches");
    assert_eq!(
        after.map_batches - before.map_batches,
        4,
        "tables + data, twice"
    );
    // Read the third request's data back.
    rig.fill(DATA, 200, 0);
    let slot = rig.place(T_IN, 3200, DATA, 200, true);
    rig.raw.notify(0);
    assert_eq!(rig.status_of(slot), 0);
    assert_eq!(
        rig.mem.read(DATA * PAGE_SIZE, 200 * PAGE_SIZE),
        vec![3u8; 200 * PAGE_SIZE]
    );
    assert_eq!(world::with(|w| w.live_mappings()), 3);
    scenario::assert_no_violations();
}

#[test]
fn a_broken_chain_in_a_batch_answers_the_chains_before_it_then_needs_reset() {
    let mut rig = Rig::new(4);
    for i in 0..3 {
        rig.place(T_OUT, 8 * i as u64, DATA + i, 1, false);
    }
    // A chain whose `next` leaves the table.
    let head = rig.next_desc;
    rig.queue.set_desc(
        head,
        rig.mem.dma(HEADERS * PAGE_SIZE),
        16,
        DESC_F_NEXT,
        QUEUE_SIZE + 1,
    );
    rig.queue.push(head);
    rig.raw.notify(0);
    assert_eq!(
        rig.queue.used_idx(),
        3,
        "the three chains before it are answered"
    );
    assert!((0..3).all(|slot| rig.status_of(slot) == 0));
    assert_ne!(rig.raw.status() & status::NEEDS_RESET, 0);
    assert_eq!(
        world::with(|w| w.live_mappings()),
        0,
        "a broken queue lets go of its rings"
    );
    scenario::assert_no_violations();
}

#[test]
fn a_pass_that_ends_at_its_quota_with_the_ring_empty_asks_for_the_next_notification() {
    // Exactly the per-pass quota (64) of chains: without re-arming avail_event at the
    // quota boundary, an EVENT_IDX driver would never notify again.
    let mut rig = Rig::new(65);
    for i in 0..64 {
        rig.place(T_OUT, 8 * i as u64, DATA + i, 1, true);
    }
    rig.raw.notify(0);
    assert_eq!(rig.queue.used_idx(), 64);
    assert_eq!(
        rig.queue.avail_event(),
        64,
        "the driver is asked to notify at the next chain"
    );
    rig.slot = 0;
    rig.next_desc = 0;
    rig.place(T_IN, 0, DATA + 64, 1, true);
    rig.raw.notify(0);
    assert_eq!(rig.queue.used_idx(), 65);
}
