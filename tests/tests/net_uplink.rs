//! The switch's uplink (the host's own NIC in the kernel): a `virtio-drivers` VirtIONet
//! frontend reaches "the wire" through it and back, a partial checksum from a frontend
//! with CSUM offload leaves complete, a NIC that refuses a frame loses nothing, and a
//! burst of TSO frames for the wire waits for the NIC instead of dropping.

use devices::features::net as nf;
use devices::net::frame::{fold, ones_complement_sum};
use stubvirt_tests::hal::GrantDmaHal;
use stubvirt_tests::net_fixture::{
    ethernet_frame, wire_frames, NetLayout, RawNet, LARGE_RX_AREA, MAC_A, RX_AREA,
};
use stubvirt_tests::scenario::{self, Rng, FRONTEND};
use stubvirt_tests::tcp_packets::{GsoFrame, Ip};
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

/// Linux's TCP sends TSO frames to the host's gateway, a unicast address learned on the
/// uplink's port. A burst of eight 64 KiB frames in one notification is more than the
/// port keeps (its share of GSO frames): the rest waits on the sender's ring, as for a
/// frontend receiver, and goes on as the NIC drains. Every segment reaches the wire, in
/// order; nothing drops (each drop is a segment TCP must send again).
#[test]
fn a_burst_of_tso_frames_for_the_wire_waits_for_the_nic_and_none_drops() {
    let machine = scenario::machine(&[FRONTEND]);
    scenario::add_net(&machine, FRONTEND, 0, MAC_A);
    let uplink = machine.borrow_mut().backend.add_uplink().unwrap();
    let tso = nf::CSUM | nf::HOST_TSO4;
    let layout = NetLayout {
        queue_size: 64,
        pages: 256,
    };
    let mut a = RawNet::with_layout(&machine, FRONTEND, tso, layout);
    // The gateway spoke first (an ARP reply, say): its MAC is the uplink's.
    let hello = ethernet_frame(MAC_A, GATEWAY, 60);
    assert!(machine.borrow_mut().backend.uplink_receive(uplink, &hello));
    let burst = devices::net::pool::GSO_FRAMES;
    let sent: Vec<GsoFrame> = (0..burst as u64)
        .map(|seed| {
            let mut payload = vec![0; 65483];
            Rng::new(seed).fill(&mut payload);
            GsoFrame::new(Ip::V4, GATEWAY, MAC_A, &payload, 1448)
        })
        .collect();
    let frames: Vec<([u8; 12], &[u8])> = sent.iter().map(|g| (g.header, &g.frame[..])).collect();
    let before = a.send_burst(LARGE_RX_AREA, &frames);
    let mut wire = Vec::new();
    for _ in 0..burst * 64 {
        let drained = wire_frames(&machine, uplink);
        if drained.is_empty() {
            break;
        }
        wire.extend(drained);
        machine.borrow_mut().run_until_idle();
    }
    let switch_port = machine.borrow().backend.switch().stats(1);
    assert_eq!(
        switch_port.dropped_backlog_full, 0,
        "nothing dropped for the wire"
    );
    assert_eq!(a.tx.used_idx().wrapping_sub(before), burst as u16);
    let mut at = 0;
    for frame in &sent {
        let count = frame.segment_count();
        frame.check_segments(&wire[at..at + count]);
        at += count;
    }
    assert_eq!(at, wire.len(), "no segment more");
    assert_eq!(machine.borrow().backend.next_deadline(), None);
    scenario::assert_no_violations();
}
