//! Target 2 (net): fuzzer-built tx and rx rings behind doorbells. Oracle: no access
//! outside the grants; a frame that arrives is exactly a frame that was sent; a used
//! entry names only a head made available on that same ring, never more often than
//! offered; once the devices are reset nothing at all is mapped; a well-formed frame
//! afterwards passes.

use super::address;
use crate::net_fixture::{RawNet, MAC_A, MAC_B, QUEUE_SIZE};
use crate::scenario;
use crate::world;
use arbitrary::Unstructured;
use devices::features::{net as nf, EVENT_IDX, INDIRECT_DESC};
use devices::mmio::status;

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let extra = INDIRECT_DESC
        | nf::MRG_RXBUF
        | if u.arbitrary().unwrap_or(false) {
            EVENT_IDX
        } else {
            0
        };
    let (machine, mut a, mut b) = RawNet::pair(extra, extra);
    // Heads offered on b's rx ring ([0]) and a's tx ring ([1]); nothing else is offered.
    let mut offered = [[0u32; QUEUE_SIZE as usize + 1]; 2];
    super::pick_route(
        &machine,
        &[scenario::FRONTEND, scenario::OTHER_FRONTEND],
        data,
    );
    for (net, queue) in [(&mut a, 1u32), (&mut b, 0u32)] {
        for _ in 0..u.int_in_range(0..=4u8).unwrap_or(0) {
            let at = u.int_in_range(0..=16 * 4096 - 16).unwrap_or(0);
            let mut bytes: [u8; 16] = u.arbitrary().unwrap_or([0; 16]);
            if u.ratio(1, 2).unwrap_or(false) {
                bytes[..8].copy_from_slice(&address(&mut u, &net.mem, 16).to_le_bytes());
            }
            net.mem.write(at, &bytes);
        }
        let ring = if queue == 0 { &net.rx } else { &net.tx };
        for index in 0..QUEUE_SIZE {
            let addr = address(&mut u, &net.mem, 16);
            let len = u.int_in_range(0..=4096u32).unwrap_or(0);
            let flags = u16::from(u.int_in_range(0..=7u8).unwrap_or(0));
            let next = u.int_in_range(0..=QUEUE_SIZE + 1).unwrap_or(0);
            ring.set_desc(index, addr, len, flags, next);
        }
        let heads = u.int_in_range(0..=QUEUE_SIZE).unwrap_or(0);
        let ring = if queue == 0 { &mut net.rx } else { &mut net.tx };
        for _ in 0..heads {
            let head = u.int_in_range(0..=QUEUE_SIZE).unwrap_or(0);
            offered[usize::from(queue == 1)][usize::from(head)] += 1;
            ring.push(head);
        }
    }
    world::with(|w| w.grants_written.clear());
    b.raw.notify(0);
    a.raw.notify(1);
    let none = [0u32; QUEUE_SIZE as usize + 1];
    let rings = [
        (&a.rx, &none, "a rx"),
        (&a.tx, &offered[1], "a tx"),
        (&b.rx, &offered[0], "b rx"),
        (&b.tx, &none, "b tx"),
    ];
    for (ring, offered, name) in rings {
        // A receive buffer that names a ring of its own driver: that driver overwrote its
        // used entries with frame bytes, and they say nothing about the device.
        if ring.rings_written() {
            continue;
        }
        let mut used = [0u32; QUEUE_SIZE as usize + 1];
        for n in 0..ring.used_idx() {
            let id = ring.used(n).0;
            assert!(id < u32::from(QUEUE_SIZE), "{name}: used id {id} valid");
            used[id as usize] += 1;
            assert!(
                used[id as usize] <= offered[id as usize],
                "{name}: head {id} used more often than made available on this ring"
            );
        }
    }
    let held: u64 = (0..2)
        .map(|d| {
            machine
                .borrow()
                .backend
                .counters(d)
                .expect("device")
                .pages_held()
        })
        .sum();
    assert_eq!(held, world::with(|w| w.live_mappings()) as u64);
    scenario::assert_no_violations();
    // Recovery: the drivers reset (as they must after NEEDS_RESET, and may anyway):
    // nothing stays mapped, no scratch holds a chain; then a good frame passes.
    for net in [&a, &b] {
        net.raw.write(devices::mmio::reg::STATUS, 0);
    }
    assert_eq!(
        world::with(|w| w.live_mappings()),
        0,
        "nothing mapped after reset"
    );
    for net in [&mut a, &mut b] {
        net.restart(extra);
        assert_eq!(net.raw.status() & status::NEEDS_RESET, 0);
    }
    b.post_rx(0, 2048);
    let frame: Vec<u8> = MAC_B
        .iter()
        .chain(MAC_A.iter())
        .copied()
        .chain([0x88, 0xb5])
        .chain(0..50)
        .collect();
    a.send([0; 12], &frame);
    assert_eq!(b.received(0, b.rx.used_idx())[12..], frame[..]);
    scenario::assert_no_violations();
}
