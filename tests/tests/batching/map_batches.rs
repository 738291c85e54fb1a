//! Grant maps batched across the chains of one pass: shared map and unmap batches,
//! ring order kept, chains that do not fit (or find the grant window full) waiting for
//! the next batch, a broken chain, and the EVENT_IDX re-arm at the quota boundary.

use crate::rig::{stats, Rig, DATA, HEADERS, QUEUE_SIZE, T_IN, T_OUT};
use devices::blk::STATUS_IOERR;
use devices::grant::PAGE_SIZE;
use devices::memory::MapError;
use devices::mmio::status;
use devices::queue::DESC_F_NEXT;
use stubvirt_tests::scenario;
use stubvirt_tests::world;

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
