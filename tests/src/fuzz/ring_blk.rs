//! Target 2 (blk): split-ring contents behind a doorbell: descriptor tables, avail ring,
//! indirect tables and request bytes, all fuzzer-chosen. Oracles: no access outside the
//! grants, no chain completed more often than it was offered, only rings stay mapped,
//! and a well-formed request afterwards succeeds (after a reset if the queue broke).

use super::address;
use crate::blk_fixture::{BlkFixture, QUEUE_SIZE};
use crate::world;
use arbitrary::Unstructured;
use devices::features::{EVENT_IDX, INDIRECT_DESC};
use devices::mmio::status;

const PAGES: usize = 8;

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let features = INDIRECT_DESC
        | if u.arbitrary().unwrap_or(false) {
            EVENT_IDX
        } else {
            0
        };
    let mut f = BlkFixture::new(features);
    super::pick_route(&f.machine, &[crate::scenario::FRONTEND], data);
    let rounds = u.int_in_range(1..=4u8).unwrap_or(1);
    for _ in 0..rounds {
        // Scribble request headers, indirect tables, anything, into the scratch pages.
        for _ in 0..u.int_in_range(0..=6u8).unwrap_or(0) {
            let at = u.int_in_range(0..=PAGES * 4096 - 16).unwrap_or(0);
            let mut bytes: [u8; 16] = u.arbitrary().unwrap_or([0; 16]);
            if u.ratio(1, 2).unwrap_or(false) {
                // Often a plausible indirect descriptor.
                bytes[..8].copy_from_slice(&address(&mut u, &f.mem, PAGES).to_le_bytes());
            }
            f.mem.write(at, &bytes);
        }
        for index in 0..QUEUE_SIZE {
            let addr = address(&mut u, &f.mem, PAGES);
            let len = if u.ratio(3, 4).unwrap_or(true) {
                u.int_in_range(0..=8192u32).unwrap_or(0)
            } else {
                u.arbitrary().unwrap_or(0)
            };
            let flags = u16::from(u.int_in_range(0..=7u8).unwrap_or(0));
            let next = u.int_in_range(0..=QUEUE_SIZE + 2).unwrap_or(0);
            f.queues[0].set_desc(index, addr, len, flags, next);
        }
        let before = f.queues[0].used_idx();
        let mut offered = vec![0u32; usize::from(QUEUE_SIZE) + 4];
        let heads = u.int_in_range(0..=QUEUE_SIZE).unwrap_or(0);
        for _ in 0..heads {
            let head = u.int_in_range(0..=QUEUE_SIZE + 1).unwrap_or(0);
            offered[usize::from(head)] += 1;
            f.queues[0].push(head);
        }
        // Sometimes the driver lies about avail.idx: then whatever the ring slots hold is
        // offered too, up to a queue's worth (more breaks the queue).
        let lied = u.ratio(1, 16).unwrap_or(false);
        if lied {
            let idx = u.arbitrary().unwrap_or(0);
            f.queues[0].set_avail_idx(idx);
        }
        world::with(|w| w.grants_written.clear());
        f.raw.notify(0);
        // A driver whose buffers name its own used ring overwrites its own used entries
        // with disk data: what it reads back there says nothing about the device.
        let own_ring_overwritten = f.queues[0].rings_written();
        let completed = f.queues[0].used_idx().wrapping_sub(before);
        let bound = if lied || own_ring_overwritten {
            u16::MAX
        } else {
            heads
        };
        assert!(
            completed <= bound,
            "{completed} completions for {bound} chains offered"
        );
        let mut seen = vec![0u32; usize::from(QUEUE_SIZE) + 4];
        for n in (0..completed).take_while(|_| !own_ring_overwritten) {
            let (id, _len) = f.queues[0].used(before.wrapping_add(n));
            assert!(
                id < u32::from(QUEUE_SIZE),
                "used id {id} was never a valid head"
            );
            seen[id as usize] += 1;
            // Which heads a lying avail.idx offers is unknown; otherwise count exactly.
            assert!(
                lied || seen[id as usize] <= offered[id as usize],
                "chain {id} completed twice"
            );
        }
        let held: u64 = (0..2)
            .map(|d| {
                f.machine
                    .borrow()
                    .backend
                    .counters(d)
                    .expect("device")
                    .pages_held()
            })
            .sum();
        assert_eq!(
            held,
            world::with(|w| w.live_mappings()) as u64,
            "device and Xen agree on mappings"
        );
        crate::scenario::assert_no_violations();
        if f.device_status() & status::NEEDS_RESET != 0 {
            f.restart(features);
        }
    }
    f.restart(features);
    f.assert_queue_serves(0);
    f.assert_queue_serves(1);
    f.assert_other_device_serves();
    f.assert_only_rings_mapped();
    f.assert_no_violations();
}
