//! The switch's 64 KiB GSO buffers shared fairly: a flooded frame reaches each port as
//! it can take it, and receivers that take nothing hold only their share, so the others
//! and the sender never run short.

use crate::{max_frame, segments, HOST_TSO};
use devices::features::net as nf;
use devices::net::TX_BLOCK_LIMIT_NS;
use stubvirt_tests::net_fixture::{NetLayout, RawNet, MAC_A, MAC_B};
use stubvirt_tests::scenario::{self, FRONTEND, OTHER_FRONTEND};
use stubvirt_tests::tcp_packets::Ip;

const MAC_C: [u8; 6] = [0x02, 0, 0, 0, 1, 0xc];

/// A (HOST_TSO), B (with `b_features`) and C (no offloads) on a switch with a fourth,
/// unused port.
fn three_frontends(b_features: u64) -> (scenario::Shared, RawNet, RawNet, RawNet) {
    let machine = scenario::machine(&[FRONTEND, OTHER_FRONTEND, 3]);
    for (domain, mac) in [(FRONTEND, MAC_A), (OTHER_FRONTEND, MAC_B), (3, MAC_C)] {
        scenario::add_net(&machine, domain, 0, mac);
    }
    let layout = NetLayout::GSO;
    let a = RawNet::with_layout(&machine, FRONTEND, HOST_TSO, layout);
    let b = RawNet::with_layout(&machine, OTHER_FRONTEND, b_features, layout);
    let c = RawNet::with_layout(&machine, 3, 0, layout);
    (machine, a, b, c)
}

fn dropped_no_pool(machine: &scenario::Shared, device: usize) -> u64 {
    machine
        .borrow()
        .backend
        .port_stats(device)
        .unwrap()
        .dropped_no_pool
}

#[test]
fn a_flooded_gso_frame_reaches_each_port_as_it_can_take_it() {
    let tso = nf::GUEST_CSUM | nf::GUEST_TSO4 | nf::MRG_RXBUF;
    let (machine, mut a, mut b, mut c) = three_frontends(tso);
    // A broadcast: flooded to B and C (not to the switch's unused port).
    let gso = max_frame(Ip::V4, [0xff; 6], MAC_A);
    a.send(gso.header, &gso.frame);
    let whole = b.drain_frames(8192, true);
    assert_eq!(whole.len(), 1);
    assert_eq!(&whole[0][..10], &gso.header[..10]);
    assert!(whole[0][12..] == gso.frame[..], "B got the frame whole");
    gso.check_segments(&segments(c.drain_frames(2048, false)));
    // Port 3 of the switch has no device: had it been flooded too, it would hold a
    // large buffer now, and the pool would be short of one for good.
    assert_eq!(dropped_no_pool(&machine, 0), 0);
    for _ in 0..devices::net::pool::GSO_FRAMES {
        a.send(gso.header, &gso.frame);
        assert_eq!(b.drain_frames(8192, true).len(), 1);
        assert_eq!(c.drain_frames(2048, false).len(), gso.segment_count());
    }
    assert_eq!(dropped_no_pool(&machine, 0), 0);
    scenario::assert_no_violations();
}

#[test]
fn a_receiver_that_takes_nothing_holds_only_part_of_the_gso_buffers() {
    let (machine, mut a, mut b, mut c) = three_frontends(0);
    // Everyone makes itself known (A first, so the others answer it alone); B then
    // never posts an rx buffer.
    let hello = |dst: [u8; 6], src: [u8; 6]| {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f
    };
    a.send([0; 12], &hello([0xff; 6], MAC_A));
    b.send([0; 12], &hello(MAC_A, MAC_B));
    c.send([0; 12], &hello(MAC_A, MAC_C));
    assert_eq!(c.drain_frames(2048, false).len(), 1, "A's broadcast");
    let to_b = max_frame(Ip::V4, MAC_B, MAC_A);
    for _ in 0..devices::net::pool::GSO_FRAMES {
        a.send(to_b.header, &to_b.frame);
    }
    // A waits for B, until B has drained nothing for the limit: then the frame A waited
    // with drops, and the ones after it at once.
    machine.borrow_mut().advance(TX_BLOCK_LIMIT_NS);
    let stats = machine.borrow().backend.port_stats(1).unwrap();
    let kept = machine.borrow().backend.switch().gso_share() as u64;
    let sent = devices::net::pool::GSO_FRAMES as u64;
    assert_eq!(
        stats.dropped_backlog_full,
        sent - kept,
        "B's backlog keeps {kept}"
    );
    // The other large buffers are still there for C.
    let to_c = max_frame(Ip::V6, MAC_C, MAC_A);
    a.send(to_c.header, &to_c.frame);
    to_c.check_segments(&segments(c.drain_frames(2048, false)));
    assert_eq!(dropped_no_pool(&machine, 0), 0);
    // B finally takes its frames: the ones kept, whole and in order, as segments.
    let got = b.drain_frames(2048, false);
    assert_eq!(got.len(), 1 + to_b.segment_count() * kept as usize);
    for frame in got[1..].chunks(to_b.segment_count()) {
        to_b.check_segments(&segments(frame.to_vec()));
    }
    scenario::assert_no_violations();
}

const MAC_D: [u8; 6] = [0x02, 0, 0, 0, 1, 0xd];

/// Two receivers that take nothing, each sent more 64 KiB frames than it may keep: the
/// large buffers they hold together leave enough for the others, so a third receiver
/// still gets A's TSO frames and A never runs out of a buffer to send from.
#[test]
fn two_stalled_receivers_cannot_starve_the_others_of_gso_buffers() {
    let machine = scenario::machine(&[FRONTEND, OTHER_FRONTEND, 3, 4]);
    let macs = [
        (FRONTEND, MAC_A),
        (OTHER_FRONTEND, MAC_B),
        (3, MAC_C),
        (4, MAC_D),
    ];
    for (domain, mac) in macs {
        scenario::add_net(&machine, domain, 0, mac);
    }
    let layout = NetLayout::GSO;
    let mut a = RawNet::with_layout(&machine, FRONTEND, HOST_TSO, layout);
    let _b = RawNet::with_layout(&machine, OTHER_FRONTEND, 0, layout);
    let _c = RawNet::with_layout(&machine, 3, 0, layout);
    let mut d = RawNet::with_layout(&machine, 4, 0, layout);
    for stalled in [MAC_B, MAC_C] {
        let gso = max_frame(Ip::V4, stalled, MAC_A);
        for _ in 0..devices::net::pool::GSO_FRAMES {
            a.send(gso.header, &gso.frame);
        }
        machine.borrow_mut().advance(TX_BLOCK_LIMIT_NS);
    }
    let to_d = max_frame(Ip::V6, MAC_D, MAC_A);
    for _ in 0..devices::net::pool::GSO_FRAMES {
        a.send(to_d.header, &to_d.frame);
        to_d.check_segments(&segments(d.drain_frames(2048, false)));
    }
    assert_eq!(dropped_no_pool(&machine, 0), 0, "A always had a buffer");
    scenario::assert_no_violations();
}
