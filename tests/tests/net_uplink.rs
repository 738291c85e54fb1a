//! The switch's uplink (the host's own NIC in the kernel): a `virtio-drivers` VirtIONet
//! frontend reaches "the wire" through it and back, a partial checksum from a frontend
//! with CSUM offload leaves complete, and a NIC that refuses a frame loses nothing.

use devices::features::net as nf;
use devices::net::frame::{fold, ones_complement_sum};
use stubvirt_tests::hal::GrantDmaHal;
use stubvirt_tests::net_fixture::{wire_frames, RawNet, MAC_A, RX_AREA};
use stubvirt_tests::scenario::{self, Rng, FRONTEND};
use stubvirt_tests::transport::XenMmioTransport;
use virtio_drivers::device::net::VirtIONet;

/// IPv4.
const ETHER_TYPE: u16 = 0x0800;
const QUEUE: usize = 16;
const GATEWAY: [u8; 6] = [0x52, 0x55, 0x0a, 0, 2, 2];
const GUEST: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa];

/// A frame of this suite's EtherType.
fn frame(dst: [u8; 6], src: [u8; 6], len: usize, rng: &mut Rng) -> Vec<u8> {
    scenario::frame(dst, src, ETHER_TYPE, len, rng)
}

#[test]
fn a_virtio_drivers_frontend_talks_to_the_wire_both_ways() {
    let machine = scenario::machine(&[FRONTEND]);
    scenario::add_net(&machine, FRONTEND, 0, GUEST);
    let uplink = machine.borrow_mut().backend.add_uplink().unwrap();
    let (base, _) = scenario::window(0);
    let transport = XenMmioTransport::probe(machine.clone(), FRONTEND, 0, base).unwrap();
    let mut net = VirtIONet::<GrantDmaHal<1>, _, QUEUE>::new(transport, 2048).unwrap();
    let mut rng = Rng::new(3);
    let mut wire_got = 0;
    for len in (60..=1514).step_by(97) {
        // Frontend -> wire: unknown destination, flooded to the uplink (the only other port).
        let out = frame(GATEWAY, GUEST, len, &mut rng);
        let mut tx = net.new_tx_buffer(len);
        tx.packet_mut().copy_from_slice(&out);
        net.send(tx).unwrap();
        let sent = wire_frames(&machine, uplink);
        assert_eq!(sent, [out], "frame of {len} bytes reached the wire intact");
        wire_got += 1;
        // Wire -> frontend: the gateway answers; the guest's MAC was learned.
        let back = frame(GUEST, GATEWAY, len, &mut rng);
        assert!(machine.borrow_mut().backend.uplink_receive(uplink, &back));
        machine.borrow_mut().run_until_idle();
        let rx = net
            .receive()
            .expect("the frontend received the wire's frame");
        assert_eq!(rx.packet(), &back[..], "frame of {len} bytes from the wire");
        net.recycle_rx_buffer(rx).unwrap();
    }
    let m = machine.borrow();
    let stats = m.backend.uplink_stats(uplink).unwrap();
    assert_eq!((stats.frames_out, stats.frames_in), (wire_got, wire_got));
    assert_eq!(stats.dropped_in, 0);
    let counters = m.backend.counters(0).unwrap();
    assert_eq!(counters.request_errors, 0);
    scenario::assert_no_violations();
}

#[test]
fn partial_checksums_leave_complete_and_a_busy_nic_keeps_the_frame() {
    let machine = scenario::machine(&[FRONTEND]);
    scenario::add_net(&machine, FRONTEND, 0, MAC_A);
    let uplink = machine.borrow_mut().backend.add_uplink().unwrap();
    let mut a = RawNet::new(&machine, FRONTEND, nf::CSUM);
    // A UDP frame as Linux leaves it with CSUM: the field holds the pseudo-header sum.
    let mut rng = Rng::new(9);
    let mut f = frame(GATEWAY, MAC_A, 14 + 20 + 8 + 100, &mut rng);
    let l4 = 14 + 20;
    f[l4 + 6..l4 + 8].copy_from_slice(&0x4321u16.to_be_bytes());
    let mut header = [0u8; 12];
    header[0] = 1; // VIRTIO_NET_HDR_F_NEEDS_CSUM
    header[6..8].copy_from_slice(&(l4 as u16).to_le_bytes());
    header[8..10].copy_from_slice(&6u16.to_le_bytes());
    a.send(header, &f);
    let refused = machine
        .borrow_mut()
        .backend
        .uplink_transmit(uplink, &mut |_| false);
    assert_eq!(refused, 0);
    assert!(machine.borrow().backend.uplink_pending(uplink));
    let mut wire = Vec::new();
    machine
        .borrow_mut()
        .backend
        .uplink_transmit(uplink, &mut |bytes| {
            wire.extend_from_slice(bytes);
            true
        });
    assert_eq!(wire.len(), f.len());
    assert_eq!(&wire[..l4 + 6], &f[..l4 + 6], "headers unchanged");
    assert_eq!(&wire[l4 + 8..], &f[l4 + 8..], "payload unchanged");
    assert_eq!(
        fold(ones_complement_sum(&wire[l4..]) + 0x4321),
        0xffff,
        "the checksum verifies with the pseudo-header sum"
    );
    assert_eq!(
        machine
            .borrow()
            .backend
            .uplink_stats(uplink)
            .unwrap()
            .checksums_completed,
        1
    );
    // A runt from the wire is dropped and counted; the next frame still arrives.
    a.post_rx(0, 2048);
    assert!(!machine
        .borrow_mut()
        .backend
        .uplink_receive(uplink, &[0; 10]));
    let good = frame(MAC_A, GATEWAY, 60, &mut rng);
    assert!(machine.borrow_mut().backend.uplink_receive(uplink, &good));
    machine.borrow_mut().run_until_idle();
    assert_eq!(a.used_rx(), vec![(0, 12 + 60)]);
    assert_eq!(a.mem.read(RX_AREA + 12, 60), good);
    scenario::assert_no_violations();
}
