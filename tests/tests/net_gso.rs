//! TCP segmentation offload through the switch (virtio 1.2 section 5.1.6): 64 KiB GSO
//! frames to a peer with GUEST_TSO4 arrive whole with their header; to a peer without
//! it (a `virtio-drivers` frontend, a hand-driven one with or without GUEST_CSUM) and to
//! the uplink they arrive cut into MSS segments, checked against an independent
//! reference; malformed GSO headers are dropped and counted; FEATURES_OK is refused for
//! a TSO bit without the checksum offload it needs.

use devices::features::{self, net as nf};
use devices::mmio::status;
use devices::net::TX_BLOCK_LIMIT_NS;
use stubvirt_tests::hal::GrantDmaHal;
use stubvirt_tests::net_fixture::{NetLayout, RawNet, LARGE_RX_AREA, MAC_A, MAC_B};
use stubvirt_tests::rings::RawDriver;
use stubvirt_tests::scenario::{self, Rng, FRONTEND, OTHER_FRONTEND};
use stubvirt_tests::tcp_packets::{complete_partial, GsoFrame, Ip};
use stubvirt_tests::transport::XenMmioTransport;
use virtio_drivers::device::net::VirtIONet;

/// TCP payload of the largest GSO packet: IPv4 total length 65535 (20 + 32 + 65483);
/// IPv6 64 KiB of IP packet (40 + 32 + 65464).
const MAX_PAYLOAD_V4: usize = 65483;
const MAX_PAYLOAD_V6: usize = 65464;
/// The MSS of MTU 1500 with 32 bytes of TCP header.
const MSS_V4: u16 = 1448;
const MSS_V6: u16 = 1428;
const HOST_TSO: u64 = nf::CSUM | nf::HOST_TSO4 | nf::HOST_TSO6;

fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0; len];
    Rng::new(seed).fill(&mut bytes);
    bytes
}

fn max_frame(ip: Ip, dst: [u8; 6], src: [u8; 6]) -> GsoFrame {
    match ip {
        Ip::V4 => GsoFrame::new(ip, dst, src, &payload(MAX_PAYLOAD_V4, 1), MSS_V4),
        Ip::V6 => GsoFrame::new(ip, dst, src, &payload(MAX_PAYLOAD_V6, 2), MSS_V6),
    }
}

fn counters(machine: &scenario::Shared, device: usize) -> devices::counters::Counters {
    machine.borrow().backend.counters(device).unwrap()
}

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

const V4_L4: usize = 14 + 20;
const V6_L4: usize = 14 + 40;

/// A small GSO frame with one change made to its header or bytes.
type Spoil = fn(&mut [u8; 12], &mut Vec<u8>);

fn set16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

fn set_le16(header: &mut [u8; 12], at: usize, value: u16) {
    header[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

/// Sends each spoiled frame, then a good one: the bad one is completed, counted and not
/// delivered; the good one still goes through.
fn refused_one_by_one(
    a: &mut RawNet,
    b: &mut RawNet,
    machine: &scenario::Shared,
    ip: Ip,
    cases: &[(&str, Spoil)],
) {
    let good = GsoFrame::new(ip, MAC_B, MAC_A, &payload(1000, 7), 1000);
    for (what, spoil) in cases {
        let errors = counters(machine, 0).request_errors;
        let sent = a.tx.used_idx();
        let delivered = b.rx.used_idx();
        let (mut header, mut frame) = (good.header, good.frame.clone());
        spoil(&mut header, &mut frame);
        a.send(header, &frame);
        assert_eq!(
            a.tx.used_idx(),
            sent.wrapping_add(1),
            "{what}: chain completed"
        );
        assert_eq!(
            counters(machine, 0).request_errors,
            errors + 1,
            "{what}: counted"
        );
        b.post_rx(LARGE_RX_AREA + usize::from(b.next_rx_desc()) * 2048, 2048);
        assert_eq!(b.rx.used_idx(), delivered, "{what}: not delivered");
        a.send(good.header, &good.frame);
        assert_eq!(
            b.rx.used_idx(),
            delivered.wrapping_add(1),
            "{what}: next frame passes"
        );
        good.check_segments(&[b.received(delivered, 1)[12..].to_vec()]);
    }
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

#[test]
fn malformed_gso_headers_are_dropped_and_counted_and_the_queue_goes_on() {
    let (machine, mut a, mut b) = RawNet::pair_with(nf::CSUM | nf::HOST_TSO4, 0, NetLayout::GSO);
    let v4_cases: &[(&str, Spoil)] = &[
        ("gso_type UDP (UFO not offered)", |h, _| h[1] = 3),
        ("gso_type UDP_L4 (USO not offered)", |h, _| h[1] = 5),
        ("gso_type 2 (unknown)", |h, _| h[1] = 2),
        ("ECN bit (HOST_ECN not offered)", |h, _| h[1] |= 0x80),
        ("TCPV6 without HOST_TSO6", |h, _| h[1] = 4),
        ("no NEEDS_CSUM", |h, _| h[0] = 0),
        ("gso_size 0", |h, _| set_le16(h, 4, 0)),
        ("gso_size 1: a segment per payload byte", |h, _| {
            set_le16(h, 4, 1)
        }),
        ("gso_size 63", |h, _| set_le16(h, 4, 63)),
        ("segments beyond the MTU", |h, f| {
            set_le16(h, 4, 1467);
            f.resize(f.len() + 1000, 0);
            let total = (f.len() - 14) as u16;
            set16(f, 16, total);
        }),
        ("hdr_len beyond the frame", |h, f| {
            set_le16(h, 2, f.len() as u16 + 1)
        }),
        ("csum_start not TCP", |h, _| set_le16(h, 6, 14)),
        ("csum_offset not the TCP checksum", |h, _| set_le16(h, 8, 6)),
        ("EtherType IPv6 for TCPV4", |_, f| set16(f, 12, 0x86dd)),
        ("not IP at all", |_, f| set16(f, 12, 0x88b5)),
        ("IP version 6 in an IPv4 header", |_, f| f[14] = 0x65),
        ("IPv4 header length 16", |_, f| f[14] = 0x44),
        ("IPv4 fragment (MF)", |_, f| f[20] |= 0x20),
        ("IPv4 fragment offset", |_, f| f[21] = 1),
        ("UDP, not TCP", |_, f| f[23] = 17),
        ("total length beyond the frame", |_, f| {
            f.truncate(f.len() - 100)
        }),
        ("TCP data offset 16 bytes", |_, f| f[V4_L4 + 12] = 0x40),
        ("TCP header beyond the packet", |_, f| {
            f.truncate(14 + 20 + 24);
            set16(f, 16, 44);
        }),
        ("headers only, no payload", |_, f| {
            f.truncate(14 + 20 + 32);
            set16(f, 16, 52);
        }),
        ("frame longer than 64 KiB of IP", |_, f| {
            f.resize(14 + 65537, 0)
        }),
        ("shorter than an IPv4 header", |_, f| f.truncate(30)),
    ];
    refused_one_by_one(&mut a, &mut b, &machine, Ip::V4, v4_cases);
    a.restart(nf::CSUM | nf::HOST_TSO6);
    let v6_cases: &[(&str, Spoil)] = &[
        ("TCPV4 without HOST_TSO4", |h, _| h[1] = 1),
        ("extension header before TCP", |_, f| f[20] = 0),
        ("IP version 4 in an IPv6 header", |_, f| f[14] = 0x40),
        ("payload length beyond the frame", |_, f| set16(f, 18, 2000)),
        ("csum_start at the IPv6 header", |h, _| set_le16(h, 6, 14)),
        ("TCP data offset 0", |_, f| f[V6_L4 + 12] = 0),
    ];
    refused_one_by_one(&mut a, &mut b, &machine, Ip::V6, v6_cases);
    // A driver without HOST_TSO at all has no GSO frame accepted.
    a.restart(nf::CSUM);
    let errors = counters(&machine, 0).request_errors;
    let good = GsoFrame::new(Ip::V6, MAC_B, MAC_A, &payload(1000, 7), 1000);
    a.send(good.header, &good.frame);
    assert_eq!(
        counters(&machine, 0).request_errors,
        errors + 1,
        "no HOST_TSO at all"
    );
    assert_eq!(counters(&machine, 1).queue_errors, 0);
    scenario::assert_no_violations();
}

#[test]
fn features_ok_is_refused_for_tso_without_its_checksum_offload() {
    let machine = scenario::machine(&[FRONTEND]);
    scenario::add_net(&machine, FRONTEND, 0, MAC_A);
    let (base, _) = scenario::window(0);
    let raw = RawDriver::new(&machine, FRONTEND, base);
    let offered = raw.device_features();
    let base_features = features::VERSION_1 | features::ACCESS_PLATFORM;
    for (tso, needs) in [
        (nf::HOST_TSO4, nf::CSUM),
        (nf::HOST_TSO6, nf::CSUM),
        (nf::GUEST_TSO4, nf::GUEST_CSUM),
        (nf::GUEST_TSO6, nf::GUEST_CSUM),
    ] {
        assert_ne!(offered & tso, 0, "bit {} offered", tso.trailing_zeros());
        let refused = raw.negotiate(base_features | tso);
        assert_eq!(
            refused & status::FEATURES_OK,
            0,
            "bit {} alone",
            tso.trailing_zeros()
        );
        // The other direction's checksum does not do.
        let other = (nf::CSUM | nf::GUEST_CSUM) & !needs;
        let refused = raw.negotiate(base_features | tso | other);
        assert_eq!(
            refused & status::FEATURES_OK,
            0,
            "bit {} with the wrong csum",
            tso.trailing_zeros()
        );
        let accepted = raw.negotiate(base_features | tso | needs);
        assert_ne!(
            accepted & status::FEATURES_OK,
            0,
            "bit {} with its csum",
            tso.trailing_zeros()
        );
    }
    raw.write(devices::mmio::reg::STATUS, 0);
}

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

/// The frames a driver without GUEST_CSUM received, without their virtio header.
fn segments(frames: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    frames.into_iter().map(|f| f[12..].to_vec()).collect()
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
