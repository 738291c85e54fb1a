//! GSO frames delivered: whole with their header to a GUEST_TSO4 peer (merged buffers,
//! or one big buffer without MRG_RXBUF), and as MSS segments checked against the
//! reference to peers without TSO (a `virtio-drivers` frontend, hand-driven ones with
//! or without GUEST_CSUM) and to the uplink.

use crate::{counters, max_frame, payload, segments, HOST_TSO, MSS_V6};
use devices::features::net as nf;
use stubvirt_tests::hal::GrantDmaHal;
use stubvirt_tests::net_fixture::{NetLayout, RawNet, LARGE_RX_AREA, MAC_A, MAC_B};
use stubvirt_tests::scenario::{self, FRONTEND, OTHER_FRONTEND};
use stubvirt_tests::tcp_packets::{complete_partial, GsoFrame, Ip};
use stubvirt_tests::transport::XenMmioTransport;
use virtio_drivers::device::net::VirtIONet;

#[test]
fn a_64k_gso_frame_reaches_a_tso_peer_whole_in_merged_buffers() {
    let receiver = nf::GUEST_CSUM | nf::GUEST_TSO4 | nf::MRG_RXBUF;
    let (machine, mut a, mut b) = RawNet::pair_with(HOST_TSO, receiver, NetLayout::GSO);
    let gso = max_frame(Ip::V4, MAC_B, MAC_A);
    assert_eq!(gso.frame.len(), 14 + 65535);
    for i in 0..9 {
        b.post_rx(LARGE_RX_AREA + i * 8192, 8192);
    }
    a.send(gso.header, &gso.frame);
    // 12 + 65549 bytes: eight full 8 KiB buffers and 25 bytes in a ninth.
    let used = b.used_rx();
    assert_eq!(used.len(), 9, "{used:?}");
    assert_eq!(used[8].1, 25);
    let got = b.received(0, 9);
    assert_eq!(
        &got[..10],
        &gso.header[..10],
        "GSO header passed on unchanged"
    );
    assert_eq!(u16::from_le_bytes([got[10], got[11]]), 9, "num_buffers");
    assert!(got[12..] == gso.frame[..], "the frame arrives byte-exact");
    let (ca, cb) = (counters(&machine, 0), counters(&machine, 1));
    assert_eq!((ca.frames_tx, cb.frames_rx, cb.gso_segments), (1, 1, 0));
    assert_eq!(ca.request_errors + cb.rx_dropped_too_big, 0);
    scenario::assert_no_violations();
}

#[test]
fn without_mrg_rxbuf_a_gso_frame_needs_one_big_buffer() {
    let receiver = nf::GUEST_CSUM | nf::GUEST_TSO6;
    let (machine, mut a, mut b) = RawNet::pair_with(HOST_TSO, receiver, NetLayout::GSO);
    let gso = max_frame(Ip::V6, MAC_B, MAC_A);
    assert_eq!(gso.frame.len(), 14 + 65536);
    // Half the size the spec asks a driver without MRG_RXBUF to post: dropped, counted.
    b.post_rx(LARGE_RX_AREA, 32 * 1024);
    a.send(gso.header, &gso.frame);
    assert!(b.used_rx().is_empty(), "a frame is never truncated");
    assert_eq!(counters(&machine, 1).rx_dropped_too_big, 1);
    // The spec's 65562 bytes (after the unused small one) take it whole.
    b.post_rx(LARGE_RX_AREA + 32 * 1024, 65562);
    a.send(gso.header, &gso.frame);
    assert!(
        b.used_rx().is_empty(),
        "the small buffer is first: dropped again"
    );
    assert_eq!(counters(&machine, 1).rx_dropped_too_big, 2);
    let small = GsoFrame::new(Ip::V6, MAC_B, MAC_A, &payload(1000, 3), MSS_V6);
    a.send(small.header, &small.frame);
    a.send(gso.header, &gso.frame);
    let used = b.used_rx();
    assert_eq!(
        used,
        vec![(0, 12 + small.frame.len() as u32), (1, 12 + 65550)]
    );
    let got = b.received(1, 1);
    assert_eq!(&got[..10], &gso.header[..10]);
    assert!(got[12..] == gso.frame[..]);
    scenario::assert_no_violations();
}

#[test]
fn a_virtio_drivers_peer_without_tso_gets_checksummed_segments() {
    let machine = scenario::machine(&[FRONTEND, OTHER_FRONTEND]);
    scenario::add_net(&machine, FRONTEND, 0, MAC_A);
    scenario::add_net(&machine, OTHER_FRONTEND, 0, MAC_B);
    let mut a = RawNet::with_layout(&machine, FRONTEND, HOST_TSO, NetLayout::GSO);
    let (base, _) = scenario::window(0);
    let transport = XenMmioTransport::probe(machine.clone(), OTHER_FRONTEND, 1, base).unwrap();
    // virtio-drivers negotiates no offloads: no GUEST_TSO, no GUEST_CSUM, no MRG_RXBUF.
    let mut b = VirtIONet::<GrantDmaHal<2>, _, 16>::new(transport, 2048).unwrap();
    let gso = max_frame(Ip::V4, MAC_B, MAC_A);
    a.send(gso.header, &gso.frame);
    // 46 segments through 16 rx buffers: the frame waits half cut while they come back.
    let mut segments = Vec::new();
    while let Ok(rx) = b.receive() {
        segments.push(rx.packet().to_vec());
        b.recycle_rx_buffer(rx).unwrap();
    }
    gso.check_segments(&segments);
    let cb = counters(&machine, 1);
    assert_eq!((cb.frames_rx, cb.gso_segments), (46, 46));
    assert_eq!(counters(&machine, 0).frames_tx, 1);
    scenario::assert_no_violations();
}

#[test]
fn hand_driven_peers_without_tso_get_segments_partial_or_complete() {
    // (IP version, the receiver's features): GUEST_CSUM gets partial TCP checksums;
    // GUEST_TSO4 does not take an IPv6 frame whole.
    let cases = [
        (Ip::V4, nf::GUEST_CSUM),
        (Ip::V6, nf::GUEST_CSUM | nf::GUEST_TSO4),
        (Ip::V6, 0),
    ];
    for (ip, receiver) in cases {
        let (machine, mut a, mut b) = RawNet::pair_with(HOST_TSO, receiver, NetLayout::GSO);
        let gso = max_frame(ip, MAC_B, MAC_A);
        a.send(gso.header, &gso.frame);
        let frames = b.drain_frames(2048, false);
        let partial = receiver & nf::GUEST_CSUM != 0;
        let segments: Vec<Vec<u8>> = frames
            .into_iter()
            .map(|received| {
                let (header, frame) = received.split_at(12);
                let mut frame = frame.to_vec();
                assert_eq!(header[0], u8::from(partial), "{ip:?}: NEEDS_CSUM");
                assert_eq!(&header[1..6], &[0; 5], "{ip:?}: a segment is not GSO");
                if partial {
                    let start = u16::from_le_bytes([header[6], header[7]]);
                    let offset = u16::from_le_bytes([header[8], header[9]]);
                    assert_eq!((usize::from(start), offset), (gso.l4, 16));
                    complete_partial(&mut frame, start.into(), offset.into());
                }
                frame
            })
            .collect();
        gso.check_segments(&segments);
        assert_eq!(
            counters(&machine, 1).gso_segments,
            gso.segment_count() as u64
        );
        scenario::assert_no_violations();
    }
}

#[test]
fn the_uplink_gets_segments_with_complete_checksums_and_a_busy_nic_loses_none() {
    let machine = scenario::machine(&[FRONTEND]);
    scenario::add_net(&machine, FRONTEND, 0, MAC_A);
    let uplink = machine.borrow_mut().backend.add_uplink().unwrap();
    let mut a = RawNet::with_layout(&machine, FRONTEND, HOST_TSO, NetLayout::GSO);
    let mut total = 0;
    for ip in [Ip::V4, Ip::V6] {
        let gso = max_frame(ip, MAC_B, MAC_A);
        a.send(gso.header, &gso.frame);
        let mut wire = Vec::new();
        let mut transmit = |accept: usize| {
            machine
                .borrow_mut()
                .backend
                .uplink_transmit(uplink, &mut |bytes| {
                    if wire.len() >= accept {
                        return false;
                    }
                    wire.push(bytes.to_vec());
                    true
                })
        };
        // The NIC takes 10 segments, then is busy: the rest waits, nothing is lost.
        assert_eq!(transmit(10), 10);
        assert!(machine.borrow().backend.uplink_pending(uplink));
        let rest = gso.segment_count() - 10;
        assert_eq!(transmit(usize::MAX), rest);
        assert!(!machine.borrow().backend.uplink_pending(uplink));
        gso.check_segments(&wire);
        total += gso.segment_count() as u64;
    }
    let stats = machine.borrow().backend.uplink_stats(uplink).unwrap();
    assert_eq!(stats.segments_out, total);
    assert_eq!(stats.frames_out, total);
    assert_eq!(stats.checksums_completed, total);
    assert_eq!(stats.dropped_out, 0);
    scenario::assert_no_violations();
}

/// The smallest gso_size taken, 64: a 1000-byte payload arrives as 16 segments.
#[test]
fn the_smallest_gso_size_is_still_segmented() {
    let (machine, mut a, mut b) = RawNet::pair_with(HOST_TSO, 0, NetLayout::GSO);
    assert_eq!(devices::net::gso::MIN_GSO_SIZE, 64);
    let gso = GsoFrame::new(Ip::V4, MAC_B, MAC_A, &payload(1000, 3), 64);
    assert_eq!(gso.segment_count(), 16);
    a.send(gso.header, &gso.frame);
    gso.check_segments(&segments(b.drain_frames(2048, false)));
    assert_eq!(counters(&machine, 1).gso_segments, 16);
    assert_eq!(counters(&machine, 0).request_errors, 0);
    scenario::assert_no_violations();
}
