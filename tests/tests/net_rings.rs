//! virtio-net cases built by hand: rx buffers too small, MRG_RXBUF merging, unusable rx
//! buffers, oversized tx frames, checksum offload passed through or completed, broadcast.

use devices::features::net as nf;
use devices::net::frame::{fold, ones_complement_sum};
use devices::queue::DESC_F_WRITE;
use stubvirt_tests::net_fixture::{ethernet_frame as frame, RawNet, MAC_A, MAC_B, RX_AREA};
use stubvirt_tests::rings::Granted;
use stubvirt_tests::scenario::{self, FRONTEND, OTHER_FRONTEND};

fn pair(extra_a: u64, extra_b: u64) -> (scenario::Shared, RawNet, RawNet) {
    RawNet::pair(extra_a, extra_b)
}

fn counters(machine: &scenario::Shared, device: usize) -> devices::counters::Counters {
    machine.borrow().backend.counters(device).unwrap()
}

#[test]
fn frame_larger_than_the_rx_buffer_is_dropped_not_truncated() {
    let (machine, mut a, mut b) = pair(0, 0);
    b.post_rx(0, 12 + 100);
    a.send([0; 12], &frame(MAC_B, MAC_A, 200));
    assert!(
        b.used_rx().is_empty(),
        "buffer not consumed by a frame it cannot hold"
    );
    assert_eq!(counters(&machine, 1).rx_dropped_too_big, 1);
    // The same buffer then takes a frame that fits.
    let small = frame(MAC_B, MAC_A, 90);
    a.send([0; 12], &small);
    assert_eq!(b.used_rx(), vec![(0, 12 + 90)]);
    assert_eq!(b.mem.read(RX_AREA + 12, 90), small);
    scenario::assert_no_violations();
}

#[test]
fn mergeable_rx_buffers_carry_a_frame_in_pieces() {
    let (machine, mut a, mut b) = pair(0, nf::MRG_RXBUF);
    for i in 0..4 {
        b.post_rx(i * 1024, 512);
    }
    let big = frame(MAC_B, MAC_A, 1400);
    a.send([0; 12], &big);
    // 12 + 1400 = 1412 bytes: 512 + 512 + 388 in three buffers, num_buffers = 3.
    assert_eq!(b.used_rx(), vec![(0, 512), (1, 512), (2, 388)]);
    let header = b.mem.read(RX_AREA, 12);
    assert_eq!(
        u16::from_le_bytes([header[10], header[11]]),
        3,
        "num_buffers"
    );
    let mut received = b.mem.read(RX_AREA + 12, 500);
    received.extend(b.mem.read(RX_AREA + 1024, 512));
    received.extend(b.mem.read(RX_AREA + 2048, 388));
    assert_eq!(received, big);
    assert_eq!(counters(&machine, 1).frames_rx, 1);
    scenario::assert_no_violations();
}

#[test]
fn mergeable_frame_waits_when_too_few_buffers_are_posted() {
    let (machine, mut a, mut b) = pair(0, nf::MRG_RXBUF);
    b.post_rx(0, 512);
    let big = frame(MAC_B, MAC_A, 1000);
    a.send([0; 12], &big);
    assert!(
        b.used_rx().is_empty(),
        "one 512-byte buffer cannot take 1012 bytes: frame waits"
    );
    b.post_rx(1024, 512);
    b.post_rx(2048, 512);
    assert_eq!(b.used_rx(), vec![(0, 512), (1, 500)]);
    assert_eq!(counters(&machine, 1).rx_dropped_too_big, 0);
    scenario::assert_no_violations();
}

#[test]
fn unusable_rx_buffers_come_back_empty_and_the_frame_takes_the_next() {
    let (machine, mut a, mut b) = pair(0, 0);
    // A device-readable "rx buffer", then one granted read-only, then a good one.
    b.rx.set_desc(0, b.mem.dma(0), 1600, 0, 0);
    b.rx.push(0);
    let readonly = Granted::new(OTHER_FRONTEND, 1, true);
    b.rx.set_desc(1, readonly.dma(0), 1600, DESC_F_WRITE, 0);
    b.rx.push(1);
    b.rx.set_desc(2, b.mem.dma(4096), 1600, DESC_F_WRITE, 0);
    b.rx.push(2);
    b.posted = 3;
    b.raw.notify(0);
    let f = frame(MAC_B, MAC_A, 300);
    a.send([0; 12], &f);
    assert_eq!(b.used_rx(), vec![(0, 0), (1, 0), (2, 312)]);
    assert_eq!(b.mem.read(4096 + 12, 300), f);
    assert_eq!(
        readonly.read(0, 16),
        vec![0; 16],
        "read-only buffer untouched"
    );
    assert_eq!(counters(&machine, 1).request_errors, 2);
    scenario::assert_no_violations();
}

#[test]
fn oversized_and_runt_tx_frames_are_dropped_and_counted() {
    let (machine, mut a, mut b) = pair(0, 0);
    b.post_rx(0, 2048);
    a.send([0; 12], &frame(MAC_B, MAC_A, 1500 + 18 + 1));
    a.send([0; 12], &frame(MAC_B, MAC_A, 14)[..10]);
    assert_eq!(a.tx.used_idx(), 2, "both tx chains returned");
    assert_eq!(counters(&machine, 0).request_errors, 2);
    assert_eq!(counters(&machine, 0).frames_tx, 0);
    assert!(b.used_rx().is_empty());
    a.send([0; 12], &frame(MAC_B, MAC_A, 1518));
    assert_eq!(
        b.used_rx(),
        vec![(0, 12 + 1518)],
        "the largest legal frame passes"
    );
    scenario::assert_no_violations();
}

/// A UDP/IPv4 frame with a partial checksum as Linux leaves it for CSUM offload.
fn partial_checksum_frame() -> (Vec<u8>, [u8; 12], u16) {
    let mut f = frame(MAC_B, MAC_A, 14 + 20 + 8 + 40);
    let l4 = 14 + 20;
    let csum_offset = 6u16; // UDP checksum field
                            // Field holds the pseudo-header sum (any value works for the check below).
    f[l4 + 6..l4 + 8].copy_from_slice(&0x1234u16.to_be_bytes());
    let expected = !fold(ones_complement_sum(&f[l4..]));
    let mut header = [0u8; 12];
    header[0] = 1; // NEEDS_CSUM
    header[6..8].copy_from_slice(&(l4 as u16).to_le_bytes());
    header[8..10].copy_from_slice(&csum_offset.to_le_bytes());
    (f, header, expected)
}

#[test]
fn partial_checksums_pass_to_a_driver_with_guest_csum() {
    let (_machine, mut a, mut b) = pair(nf::CSUM, nf::GUEST_CSUM);
    b.post_rx(0, 2048);
    let (f, header, _) = partial_checksum_frame();
    a.send(header, &f);
    let got = b.mem.read(RX_AREA, 12);
    assert_eq!(got[0], 1, "NEEDS_CSUM passed through");
    assert_eq!(&got[6..10], &header[6..10], "csum_start/offset unchanged");
    assert_eq!(b.mem.read(RX_AREA + 12, f.len()), f, "payload unchanged");
}

#[test]
fn partial_checksums_are_completed_for_a_driver_without_guest_csum() {
    let (_machine, mut a, mut b) = pair(nf::CSUM, 0);
    b.post_rx(0, 2048);
    let (f, header, expected) = partial_checksum_frame();
    a.send(header, &f);
    let got = b.mem.read(RX_AREA, 12);
    assert_eq!(
        got[0], 0,
        "no NEEDS_CSUM for a driver that did not negotiate it"
    );
    let l4 = 14 + 20;
    let body = b.mem.read(RX_AREA + 12, f.len());
    assert_eq!(u16::from_be_bytes([body[l4 + 6], body[l4 + 7]]), expected);
    // With the pseudo-header sum the field started with, the checksum verifies.
    assert_eq!(
        fold(ones_complement_sum(&body[l4..]) + 0x1234),
        0xffff,
        "checksum verifies"
    );
}

#[test]
fn broadcast_reaches_every_other_port_and_not_the_sender() {
    let machine = scenario::machine(&[FRONTEND, OTHER_FRONTEND, 3]);
    scenario::add_net(&machine, FRONTEND, 0, MAC_A);
    scenario::add_net(&machine, OTHER_FRONTEND, 0, MAC_B);
    scenario::add_net(&machine, 3, 0, [0x02, 0, 0, 0, 1, 0xc]);
    let mut a = RawNet::new(&machine, FRONTEND, 0);
    let mut b = RawNet::new(&machine, OTHER_FRONTEND, 0);
    let mut c = RawNet::new(&machine, 3, 0);
    for net in [&mut a, &mut b, &mut c] {
        net.post_rx(0, 2048);
    }
    let f = frame([0xff; 6], MAC_A, 64);
    a.send([0; 12], &f);
    assert!(a.used_rx().is_empty());
    assert_eq!(b.used_rx(), vec![(0, 76)]);
    assert_eq!(c.used_rx(), vec![(0, 76)]);
    assert_eq!(c.mem.read(12, 64), f);
    // B answers A by unicast: C does not see it (A was learned from the broadcast).
    b.post_rx(4096, 2048);
    c.post_rx(4096, 2048);
    a.post_rx(4096, 2048);
    b.send([0; 12], &frame(MAC_A, MAC_B, 64));
    assert_eq!(a.used_rx().len(), 1);
    assert_eq!(c.used_rx().len(), 1, "no flood of a learned unicast");
    scenario::assert_no_violations();
}
