//! Grant mapping batched across the chains found in one pass: chains made available
//! together share one map batch (two with indirect tables) and one unmap batch, are
//! answered in order, and a chain that does not fit (or finds the grant window full)
//! waits for the next batch. Plus the
//! EVENT_IDX re-arm at the quota boundary, and, with request buffers by grant copy, the
//! request headers of a pass read, their data moved, and their status bytes written, in
//! one copy per 32 pieces, a refused copy failing only its own request.

use devices::blk::STATUS_IOERR;
use devices::grant::{GrantAddress, GrantRef, PAGE_SIZE};
use devices::memory::MapError;
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
    machine: Shared,
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

    /// As `new`, with request buffers reached by grant copy (the kernel's default).
    fn copied(data_pages: usize) -> Self {
        let rig = Self::new(data_pages);
        rig.machine.borrow_mut().frontends.copy_buffers(FRONTEND);
        rig
    }

    /// Places a one-page direct request as `place` does, with its header descriptor
    /// pointing at `header` instead (the header bytes stay where `place` wrote them).
    fn place_with_header_at(&mut self, kind: u32, sector: u64, data_page: usize, header: u64) {
        let head = self.next_desc;
        self.place(kind, sector, data_page, 1, false);
        self.queue.set_desc(head, header, 16, DESC_F_NEXT, head + 1);
    }

    /// Requests the device has failed so far.
    fn request_errors(&self) -> u64 {
        let machine = self.machine.borrow();
        machine
            .backend
            .counters(0)
            .map_or(0, |counters| counters.request_errors)
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
fn a_chain_refused_for_want_of_window_room_waits_for_the_next_batch() {
    // Three one-page writes map header, data and status each, in ring order: the second
    // request's data page (entry 4) finds the window full. The first request is served;
    // the second and third go back to the ring and are served by the next batch of the
    // same pass, once the first batch's pages are unmapped.
    let mut rig = Rig::new(6);
    for i in 0..3 {
        rig.fill(DATA + i, 1, i as u8 + 1);
        rig.place(T_OUT, 8 * i as u64, DATA + i, 1, false);
    }
    world::with(|w| w.faults.map_entry_countdown = Some((4, MapError::NoSpace)));
    let before = stats();
    rig.raw.notify(0);
    let after = stats();
    assert_eq!(rig.queue.used_idx(), 3);
    assert!((0..3).all(|slot| rig.status_of(slot) == 0), "all written");
    assert_eq!(after.map_batches - before.map_batches, 2, "retried once");
    assert_eq!(after.unmap_batches - before.unmap_batches, 2);
    // The data reached the disk: read it back.
    for i in 0..3 {
        rig.fill(DATA + 3 + i, 1, 0);
        rig.place(T_IN, 8 * i as u64, DATA + 3 + i, 1, false);
    }
    rig.raw.notify(0);
    for i in 0..3 {
        assert_eq!(rig.status_of(3 + i), 0);
        assert_eq!(
            rig.mem.read((DATA + 3 + i) * PAGE_SIZE, PAGE_SIZE),
            vec![i as u8 + 1; PAGE_SIZE],
            "request {i}"
        );
    }
    assert_eq!(world::with(|w| w.live_mappings()), 3);
    scenario::assert_no_violations();
}

#[test]
fn a_lone_chain_refused_for_want_of_window_room_fails_instead_of_waiting() {
    let mut rig = Rig::new(1);
    let slot = rig.place(T_OUT, 0, DATA, 1, false);
    world::with(|w| w.faults.map_entry_countdown = Some((1, MapError::NoSpace)));
    rig.raw.notify(0);
    assert_eq!(rig.queue.used_idx(), 1);
    assert_eq!(rig.status_of(slot), STATUS_IOERR);
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

/// Copy hypercalls (and refused ones) made while `f` runs.
fn copy_calls(f: impl FnOnce()) -> (u64, u64) {
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
fn write_and_read_back(rig: &mut Rig, depth: usize) -> (u64, u64) {
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

#[test]
fn copy_route_moves_the_headers_data_and_statuses_of_a_pass_in_one_copy_per_32() {
    // The headers of a pass one copy per 32, their data pages (one a request here) one
    // copy per 32, and their status bytes one per 32; a lone request's are its own read,
    // data copy and write. Reads and writes alike.
    for (depth, calls) in [(1, 3), (2, 1 + 1 + 1), (32, 1 + 1 + 1), (64, 2 + 2 + 2)] {
        let mut rig = Rig::copied(2 * depth);
        let (writes, reads) = write_and_read_back(&mut rig, depth);
        assert_eq!((writes, reads), (calls, calls), "QD {depth}");
        assert_eq!(rig.queue.used_idx() as usize, 2 * depth);
        scenario::assert_no_violations();
    }
}

#[test]
fn a_header_across_a_page_boundary_is_read_ahead_as_two_pieces() {
    // 32 headers of 33 pieces: two header copies. Two spare pages for the split header.
    let mut rig = Rig::copied(2 * 32 + 2);
    let spare = (DATA + 2 * 32) * PAGE_SIZE;
    for i in 0..32 {
        rig.fill(DATA + i, 1, i as u8 + 1);
        rig.place(T_OUT, 8 * i as u64, DATA + i, 1, false);
    }
    rig.raw.notify(0);
    rig.slot = 0;
    rig.next_desc = 0;
    for i in 0..32 {
        if i == 7 {
            // The header's first 8 bytes end the spare page, the rest start the next.
            let mut header = [0u8; 16];
            header[8..].copy_from_slice(&(8 * i as u64).to_le_bytes());
            rig.mem.write(spare + PAGE_SIZE - 8, &header);
            let at = rig.mem.dma(spare + PAGE_SIZE - 8);
            rig.place_with_header_at(T_IN, 0, DATA + 32 + i, at);
        } else {
            rig.place(T_IN, 8 * i as u64, DATA + 32 + i, 1, false);
        }
    }
    // Two header copies, one data copy, one status copy.
    let (calls, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!((calls, refused), (2 + 1 + 1, 0));
    for i in 0..32 {
        assert_eq!(rig.status_of(i), 0, "request {i}");
        assert_eq!(
            rig.mem.read((DATA + 32 + i) * PAGE_SIZE, PAGE_SIZE),
            vec![i as u8 + 1; PAGE_SIZE],
            "request {i}"
        );
    }
    scenario::assert_no_violations();
}

/// Fails the `nth` copy hypercall from now (0: the next).
fn fail_copy(nth: u64) {
    world::with(|w| w.faults.copy_countdown = Some(nth));
}

/// Reads of pages written by `write_and_read_back(rig, 8)`, placed (not notified): the
/// header of request `bad_header`, if any, names a grant that was never made.
fn place_reads(rig: &mut Rig, bad_header: Option<usize>) {
    let never_granted = GrantAddress::encode(GrantRef(4_000_000), 0);
    for i in 0..8 {
        rig.fill(DATA + 8 + i, 1, 0);
        if bad_header == Some(i) {
            rig.place_with_header_at(T_IN, 8 * i as u64, DATA + 8 + i, never_granted);
        } else {
            rig.place(T_IN, 8 * i as u64, DATA + 8 + i, 1, false);
        }
    }
}

/// Request `i` of `place_reads` read what was written (status OK), or failed (IOERR)
/// without touching its buffer.
fn assert_reads(rig: &mut Rig, failed: &[usize]) {
    for i in 0..8 {
        let (status, byte) = if failed.contains(&i) {
            (1, 0)
        } else {
            (0, i as u8 + 1)
        };
        assert_eq!(rig.status_of(i), status, "request {i}");
        assert_eq!(
            rig.mem.read((DATA + 8 + i) * PAGE_SIZE, PAGE_SIZE),
            vec![byte; PAGE_SIZE],
            "request {i}"
        );
    }
    rig.slot = 0;
    rig.next_desc = 0;
}

#[test]
fn a_header_xen_refuses_fails_only_its_request_in_a_batch() {
    let mut rig = Rig::copied(16);
    write_and_read_back(&mut rig, 8);
    place_reads(&mut rig, Some(5));
    // The group copy is refused; each header is then read by its own request, the
    // bad one refused again: 1 + 8 headers, the 7 data pages together, the 8 statuses
    // together.
    let (calls, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!((calls, refused), (1 + 8 + 1 + 1, 2));
    assert_reads(&mut rig, &[5]);
    // The next batch is served as usual.
    place_reads(&mut rig, None);
    assert_eq!(copy_calls(|| rig.raw.notify(0)), (1 + 1 + 1, 0));
    assert_reads(&mut rig, &[]);
    scenario::assert_no_violations();
}

#[test]
fn a_failed_header_copy_falls_back_to_each_requests_own_read() {
    let mut rig = Rig::copied(16);
    write_and_read_back(&mut rig, 8);
    // The pass's first copy, the group's, fails: every request reads its own header
    // (never stale bytes of the previous batch's writes, nor zeros: those would be
    // writes, or reads of sector 0) and succeeds.
    place_reads(&mut rig, None);
    fail_copy(0);
    let (calls, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!((calls, refused), (1 + 8 + 1 + 1, 1));
    assert_reads(&mut rig, &[]);
    // With request 5's header never granted the group fails; request 1's own header
    // read (the pass's copy 2, after the group's and request 0's header) is failed too:
    // only those two fail, the other 6 data pages go together.
    place_reads(&mut rig, Some(5));
    fail_copy(2);
    let (calls, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!((calls, refused), (1 + 8 + 1 + 1, 3));
    assert_reads(&mut rig, &[1, 5]);
    assert_eq!(world::with(|w| w.faults.copy_countdown), None);
    scenario::assert_no_violations();
}

#[test]
fn a_failed_status_copy_falls_back_to_each_requests_own_write() {
    let mut rig = Rig::copied(16);
    write_and_read_back(&mut rig, 8);
    // The pass's copies: the headers' (0), the data's (1), the statuses' (2), failed:
    // each status is then written by itself.
    place_reads(&mut rig, None);
    fail_copy(2);
    let (calls, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!((calls, refused), (1 + 1 + 1 + 8, 1));
    assert_reads(&mut rig, &[]);
    for n in 0..8 {
        assert_eq!(
            rig.queue.used(16 + n).1,
            PAGE_SIZE as u32 + 1,
            "request {n}"
        );
    }
    scenario::assert_no_violations();
}

#[test]
fn a_status_byte_xen_refuses_fails_only_its_request() {
    let mut rig = Rig::copied(16);
    write_and_read_back(&mut rig, 8);
    let read_only = Granted::new(FRONTEND, 1, true);
    let errors_before = rig.request_errors();
    place_reads(&mut rig, None);
    // Request 3's status descriptor (direct chains of three) names a page granted
    // read-only: the statuses' group copy is refused, each status is then written by
    // itself, and only request 3's is refused again.
    rig.queue
        .set_desc(3 * 3 + 2, read_only.dma(0), 1, DESC_F_WRITE, 0);
    let (calls, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!((calls, refused), (1 + 1 + 1 + 8, 2));
    for n in 0..8u16 {
        let expected = if n == 3 { 0 } else { PAGE_SIZE as u32 + 1 };
        assert_eq!(rig.queue.used(16 + n).1, expected, "request {n}");
        if n != 3 {
            assert_eq!(rig.status_of(usize::from(n)), 0, "request {n}");
        }
    }
    assert_eq!(
        read_only.read(0, 1),
        vec![0],
        "a read-only grant is never written"
    );
    assert_eq!(rig.request_errors() - errors_before, 1);
    scenario::assert_no_violations();
}

/// Points the data descriptor of request `n` of a batch of direct one-page chains (three
/// descriptors each, as `place` lays them) at `addr`.
fn redirect_data(rig: &mut Rig, n: u16, addr: u64, kind: u32) {
    let flags = if kind == T_IN { DESC_F_WRITE } else { 0 };
    rig.queue.set_desc(
        3 * n + 1,
        addr,
        PAGE_SIZE as u32,
        flags | DESC_F_NEXT,
        3 * n + 2,
    );
}

#[test]
fn a_data_copy_xen_refuses_fails_only_its_request_in_a_batch() {
    let mut rig = Rig::copied(16);
    write_and_read_back(&mut rig, 8);
    // Request 5's buffer was granted, then revoked before the queue ran: the data
    // group's copy is refused, each request's data is then copied by itself, and only
    // request 5's is refused again.
    let revoked = Granted::new(FRONTEND, 1, false);
    revoked.revoke();
    let errors_before = rig.request_errors();
    place_reads(&mut rig, None);
    redirect_data(&mut rig, 5, revoked.dma(0), T_IN);
    let (calls, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!((calls, refused), (1 + 1 + 8 + 1, 2));
    for n in 0..8u16 {
        let expected = if n == 5 { 1 } else { PAGE_SIZE as u32 + 1 };
        assert_eq!(rig.queue.used(16 + n).1, expected, "request {n}");
    }
    assert_reads(&mut rig, &[5]);
    assert_eq!(rig.request_errors() - errors_before, 1);

    // The same for writes: request 2's source page revoked. The others reach the disk,
    // request 2's sectors are not written (Xen refused the copy into them).
    for i in 0..8 {
        rig.fill(DATA + i, 1, 0xa0 + i as u8);
        rig.place(T_OUT, 8 * i as u64, DATA + i, 1, false);
    }
    redirect_data(&mut rig, 2, revoked.dma(0), T_OUT);
    let (calls, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!((calls, refused), (1 + 1 + 8 + 1, 2));
    assert_eq!(rig.request_errors() - errors_before, 2);
    for i in 0..8 {
        assert_eq!(rig.status_of(i), u8::from(i == 2), "write {i}");
    }
    rig.slot = 0;
    rig.next_desc = 0;
    place_reads(&mut rig, None);
    assert_eq!(copy_calls(|| rig.raw.notify(0)), (1 + 1 + 1, 0));
    for i in 0..8 {
        let want = if i == 2 { 3 } else { 0xa0 + i as u8 };
        assert_eq!(
            rig.mem.read((DATA + 8 + i) * PAGE_SIZE, PAGE_SIZE),
            vec![want; PAGE_SIZE],
            "sector {}",
            8 * i
        );
    }
    scenario::assert_no_violations();
}

#[test]
fn a_read_into_a_read_only_grant_fails_only_its_request_in_a_batch() {
    let mut rig = Rig::copied(16);
    write_and_read_back(&mut rig, 8);
    // Request 6 reads into a page the driver granted read-only: Xen refuses the copy into
    // it, in the group and again by itself; the page is never written.
    let read_only = Granted::new(FRONTEND, 1, true);
    read_only.write(0, &[0x5a; PAGE_SIZE]);
    place_reads(&mut rig, None);
    redirect_data(&mut rig, 6, read_only.dma(0), T_IN);
    let (calls, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!((calls, refused), (1 + 1 + 8 + 1, 2));
    assert_eq!(read_only.read(0, PAGE_SIZE), vec![0x5a; PAGE_SIZE]);
    assert_eq!(rig.queue.used(16 + 6).1, 1, "status byte only");
    assert_reads(&mut rig, &[6]);
    scenario::assert_no_violations();
}

#[test]
fn copy_route_requests_of_one_pass_on_the_same_sectors_take_effect_in_order() {
    let mut rig = Rig::copied(5);
    // Sector 16 holds 0x77 before the pass.
    rig.fill(DATA, 1, 0x77);
    rig.place(T_OUT, 16, DATA, 1, false);
    rig.raw.notify(0);
    rig.slot = 0;
    rig.next_desc = 0;
    // One pass: a read of sector 16, a write of new bytes to it, a read of it again,
    // a write of other bytes from the page the first read filled (to sector 24).
    rig.fill(DATA + 1, 1, 0);
    rig.fill(DATA + 2, 1, 0x99);
    rig.fill(DATA + 3, 1, 0);
    let first_read = rig.place(T_IN, 16, DATA + 1, 1, false);
    let write = rig.place(T_OUT, 16, DATA + 2, 1, false);
    let second_read = rig.place(T_IN, 16, DATA + 3, 1, false);
    let copy_on = rig.place(T_OUT, 24, DATA + 1, 1, false);
    // Headers and statuses one copy each; the data in four: each change of direction
    // copies what was gathered first.
    let (calls, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!((calls, refused), (1 + 4 + 1, 0));
    for slot in [first_read, write, second_read, copy_on] {
        assert_eq!(rig.status_of(slot), 0, "request {slot}");
    }
    let page = |rig: &Rig, n: usize| rig.mem.read((DATA + n) * PAGE_SIZE, PAGE_SIZE);
    assert_eq!(
        page(&rig, 1),
        vec![0x77; PAGE_SIZE],
        "the read before the write"
    );
    assert_eq!(
        page(&rig, 3),
        vec![0x99; PAGE_SIZE],
        "the read after the write"
    );
    rig.slot = 0;
    rig.next_desc = 0;
    rig.place(T_IN, 24, DATA + 4, 1, false);
    rig.raw.notify(0);
    assert_eq!(
        page(&rig, 4),
        vec![0x77; PAGE_SIZE],
        "written from what was read"
    );
    scenario::assert_no_violations();
}

#[test]
fn copy_route_gathers_the_data_of_multi_page_requests_32_pages_a_copy() {
    // 32 requests of 16 pages (indirect, as Linux sends 64 KiB). A chain touches 19
    // pages (table, header, data, status), so a batch's 520 take 27 chains and the next
    // the other 5: 432 data pages in 14 copies of up to 32, then 80 in 3.
    let mut rig = Rig::copied(2 * 32 * 16);
    for i in 0..32 {
        rig.fill(DATA + 16 * i, 16, i as u8 + 1);
        rig.place(T_OUT, 128 * i as u64, DATA + 16 * i, 16, true);
    }
    let (writes, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!(refused, 0);
    rig.slot = 0;
    rig.next_desc = 0;
    for i in 0..32 {
        rig.place(T_IN, 128 * i as u64, DATA + 16 * (32 + i), 16, true);
    }
    let (reads, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!(refused, 0);
    for i in 0..32 {
        assert_eq!(rig.status_of(i), 0, "request {i}");
        let at = (DATA + 16 * (32 + i)) * PAGE_SIZE;
        assert_eq!(
            rig.mem.read(at, 16 * PAGE_SIZE),
            vec![i as u8 + 1; 16 * PAGE_SIZE]
        );
    }
    // Per batch one header and one status copy.
    assert_eq!((writes, reads), (2 + 14 + 3 + 2, 2 + 14 + 3 + 2));
    scenario::assert_no_violations();
}
