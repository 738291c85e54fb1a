//! What is refused: malformed GSO headers and packets are dropped and counted with the
//! next frame passing, and FEATURES_OK is refused for a TSO bit without the checksum
//! offload it needs.

use crate::{counters, payload};
use devices::features::{self, net as nf};
use devices::mmio::status;
use stubvirt_tests::net_fixture::{NetLayout, RawNet, LARGE_RX_AREA, MAC_A, MAC_B};
use stubvirt_tests::rings::RawDriver;
use stubvirt_tests::scenario::{self, FRONTEND};
use stubvirt_tests::tcp_packets::{GsoFrame, Ip};

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
