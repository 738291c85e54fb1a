//! virtio-net against a hostile frontend or wire: error paths that must release what they
//! loaded, spoofed source MACs, flags only a device may set, and an EVENT_IDX frontend
//! waiting on a merged frame.

use devices::features::net as nf;
use stubvirt_tests::net_fixture::{ethernet_frame as frame, wire_frames, RawNet, MAC_A, MAC_B};
use stubvirt_tests::scenario::{self, FRONTEND, OTHER_FRONTEND};

fn pages_held(machine: &scenario::Shared, device: usize) -> u64 {
    machine
        .borrow()
        .backend
        .counters(device)
        .unwrap()
        .pages_held()
}

/// A merged frame whose second buffer is an avail entry naming no descriptor: the first
/// rx buffer was loaded (mapped) when the ring turned out broken. It must be released
/// there, not left in the device's scratch for a reset to forget and for the next tx
/// pass to complete into the tx used ring.
#[test]
fn a_failed_merge_releases_its_first_buffer_and_tx_never_completes_it() {
    let (machine, mut a, mut b) = RawNet::pair(0, nf::MRG_RXBUF);
    let rings = pages_held(&machine, 1);
    b.post_rx(0, 512);
    // An avail entry naming descriptor 200 of a 16-entry ring.
    b.rx.push(200);
    b.raw.notify(0);
    a.send([0; 12], &frame(MAC_B, MAC_A, 1000));
    assert_ne!(
        b.raw.status() & devices::mmio::status::NEEDS_RESET,
        0,
        "the broken rx ring is reported"
    );
    // The broken rx queue stopped and unmapped its rings; the rx buffer loaded before the
    // ring broke was released on the error path: only the tx queue's rings (as many
    // pages as rx's, same size) stay mapped.
    assert_eq!(
        pages_held(&machine, 1),
        rings / 2,
        "only tx's rings stay mapped"
    );
    b.raw.write(devices::mmio::reg::STATUS, 0);
    assert_eq!(pages_held(&machine, 1), 0, "reset leaves nothing mapped");

    // After the reset, a tx frame from b completes only its own chain on the tx ring.
    b.restart(nf::MRG_RXBUF);
    a.post_rx(0, 1600);
    let f = frame(MAC_A, MAC_B, 100);
    b.send([0; 12], &f);
    assert_eq!(b.tx.used_idx(), 1);
    assert_eq!(b.tx.used(0), (0, 0), "tx used ring holds the tx head only");
    assert_eq!(a.used_rx(), vec![(0, 12 + 100)]);
    scenario::assert_no_violations();
}

const MAC_C: [u8; 6] = [0x02, 0, 0, 0, 1, 0xc];

/// Frontends A, B, C (domains 1, 2, 3) on the switch, plus the uplink.
fn three_and_wire() -> (scenario::Shared, RawNet, RawNet, RawNet, usize) {
    let machine = scenario::machine(&[FRONTEND, OTHER_FRONTEND, 3]);
    for (domain, mac) in [(FRONTEND, MAC_A), (OTHER_FRONTEND, MAC_B), (3, MAC_C)] {
        scenario::add_net(&machine, domain, 0, mac);
    }
    let uplink = machine.borrow_mut().backend.add_uplink().unwrap();
    let a = RawNet::new(&machine, FRONTEND, 0);
    let b = RawNet::new(&machine, OTHER_FRONTEND, 0);
    let c = RawNet::new(&machine, 3, 0);
    (machine, a, b, c, uplink)
}

fn post(net: &mut RawNet) {
    for i in 0..4 {
        net.post_rx(i * 2048, 1600);
    }
}

/// A frontend sending with another frontend's MAC as its source: dropped and counted;
/// the address stays where it belongs, so traffic for B still reaches B.
#[test]
fn a_spoofed_source_is_dropped_and_cannot_steal_another_guests_traffic() {
    let (machine, mut a, mut b, mut c, uplink) = three_and_wire();
    for net in [&mut a, &mut b, &mut c] {
        post(net);
    }
    a.send([0; 12], &frame([0xff; 6], MAC_B, 100));
    assert!(b.used_rx().is_empty() && c.used_rx().is_empty());
    assert!(wire_frames(&machine, uplink).is_empty());
    let stats = machine.borrow().backend.port_stats(0).unwrap();
    assert_eq!(stats.dropped_spoofed, 1);
    let for_b = frame(MAC_B, MAC_C, 120);
    c.send([0; 12], &for_b);
    assert_eq!(b.used_rx(), vec![(0, 12 + 120)], "B's unicast reaches B");
    assert!(a.used_rx().is_empty(), "and never the spoofer");
    scenario::assert_no_violations();
}

/// A wire host claiming a frontend's MAC, and a wire flooding the MAC table with random
/// sources: frontend-to-frontend unicast still goes straight to its port, and unicast to
/// an address the switch does not know reaches the wire only, no other frontend.
#[test]
fn the_wire_cannot_claim_a_guest_address_or_turn_unicast_into_floods() {
    let (machine, mut a, mut b, mut c, uplink) = three_and_wire();
    for net in [&mut a, &mut b, &mut c] {
        post(net);
    }
    let backend = |bytes: &[u8]| machine.borrow_mut().backend.uplink_receive(uplink, bytes);
    assert!(backend(&frame(MAC_C, MAC_A, 80)));
    for n in 0..300u32 {
        let mut source = [0x02, 0xee, 0, 0, 0, 0];
        source[2..].copy_from_slice(&n.to_be_bytes());
        assert!(backend(&frame(MAC_C, source, 60)));
    }
    machine.borrow_mut().run_until_idle();
    let c_before = c.used_rx().len();
    let for_a = frame(MAC_A, MAC_B, 90);
    b.send([0; 12], &for_a);
    assert_eq!(a.used_rx(), vec![(0, 12 + 90)], "A's unicast reaches A");
    assert!(wire_frames(&machine, uplink).is_empty(), "not the wire");
    assert_eq!(c.used_rx().len(), c_before, "and not C");
    // An address nobody announced: the wire only.
    b.send([0; 12], &frame([0x02, 0, 0, 0, 9, 9], MAC_B, 70));
    assert_eq!(wire_frames(&machine, uplink).len(), 1);
    assert_eq!(a.used_rx().len(), 1);
    assert_eq!(c.used_rx().len(), c_before);
    scenario::assert_no_violations();
}

/// Flags only the device may set (DATA_VALID, RSC_INFO) in a sender's header never reach
/// a receiver: a driver without GUEST_CSUM must see flags 0 (virtio 1.2 5.1.6.4.2), one
/// with it only NEEDS_CSUM.
#[test]
fn header_flags_only_a_device_may_set_are_not_passed_on() {
    const DATA_VALID: u8 = 2;
    const RSC_INFO: u8 = 4;
    for guest_csum in [0, nf::GUEST_CSUM] {
        let (_machine, mut a, mut b) = RawNet::pair(nf::CSUM, guest_csum);
        b.post_rx(0, 1600);
        let mut header = [0u8; 12];
        header[0] = DATA_VALID | RSC_INFO;
        a.send(header, &frame(MAC_B, MAC_A, 200));
        assert_eq!(b.used_rx(), vec![(0, 12 + 200)]);
        assert_eq!(b.received(0, 1)[0], 0, "flags with GUEST_CSUM={guest_csum}");
        scenario::assert_no_violations();
    }
}

/// A merged frame waiting for its second rx buffer (the first was popped and put back):
/// with EVENT_IDX, avail_event must name the next buffer the driver adds, or the driver
/// (which kicks only when avail.idx passes avail_event) never kicks, and the frame
/// waits for the backend's idle poll.
#[test]
fn a_waiting_merged_frame_asks_for_a_kick_at_the_next_buffer() {
    let (_machine, mut a, mut b) = RawNet::pair(0, nf::MRG_RXBUF | devices::features::EVENT_IDX);
    b.post_rx(0, 512);
    a.send([0; 12], &frame(MAC_B, MAC_A, 1000));
    assert!(
        b.used_rx().is_empty(),
        "1012 bytes wait for a second buffer"
    );
    // Linux's vring_need_event(avail_event, new, old) as the driver adds buffer 2.
    let event = b.rx.avail_event();
    let (old, new) = (1u16, 2u16);
    assert!(
        new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old),
        "avail_event {event}: adding the next buffer would not kick the device"
    );
    b.post_rx(1024, 512);
    assert_eq!(b.used_rx(), vec![(0, 512), (1, 500)]);
    scenario::assert_no_violations();
}
