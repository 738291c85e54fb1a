//! virtio-net driven by two independent `virtio-drivers` VirtIONet frontends in two
//! domains, exchanging frames of every size through stubvirt's L2 switch.

use stubvirt_tests::hal::GrantDmaHal;
use stubvirt_tests::scenario::{self, Rng, FRONTEND, OTHER_FRONTEND};
use stubvirt_tests::transport::XenMmioTransport;
use stubvirt_tests::world;
use virtio_drivers::device::net::VirtIONet;

/// A local experimental EtherType.
const ETHER_TYPE: u16 = 0x88b5;
const QUEUE: usize = 16;
const RX_BUF: usize = 2048;
const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb];

type NetA = VirtIONet<GrantDmaHal<1>, XenMmioTransport, QUEUE>;
type NetB = VirtIONet<GrantDmaHal<2>, XenMmioTransport, QUEUE>;

/// A frame of this suite's EtherType.
fn frame(dst: [u8; 6], src: [u8; 6], len: usize, rng: &mut Rng) -> Vec<u8> {
    scenario::frame(dst, src, ETHER_TYPE, len, rng)
}

fn two_frontends() -> (scenario::Shared, NetA, NetB) {
    let machine = scenario::machine(&[FRONTEND, OTHER_FRONTEND]);
    scenario::add_net(&machine, FRONTEND, 0, MAC_A);
    scenario::add_net(&machine, OTHER_FRONTEND, 0, MAC_B);
    let (base, _) = scenario::window(0);
    let a = XenMmioTransport::probe(machine.clone(), FRONTEND, 0, base).unwrap();
    let b = XenMmioTransport::probe(machine.clone(), OTHER_FRONTEND, 1, base).unwrap();
    let a = NetA::new(a, RX_BUF).expect("frontend A initialises");
    let b = NetB::new(b, RX_BUF).expect("frontend B initialises");
    (machine, a, b)
}

#[test]
fn frames_of_every_size_cross_the_switch_intact() {
    let (machine, mut a, mut b) = two_frontends();
    assert_eq!(a.mac_address(), MAC_A);
    assert_eq!(b.mac_address(), MAC_B);
    let mut rng = Rng::new(11);
    let mut sent = 0;
    for len in (60..=1514).step_by(7).chain([1514]) {
        // Alternate directions; each side learns the other's MAC on the way.
        let (payload, from_a) = if len % 2 == 0 {
            (frame(MAC_B, MAC_A, len, &mut rng), true)
        } else {
            (frame(MAC_A, MAC_B, len, &mut rng), false)
        };
        if from_a {
            let mut tx = a.new_tx_buffer(len);
            tx.packet_mut().copy_from_slice(&payload);
            a.send(tx).unwrap();
            let rx = b.receive().expect("B received the frame");
            assert_eq!(rx.packet(), &payload[..], "frame of {len} bytes A->B");
            b.recycle_rx_buffer(rx).unwrap();
        } else {
            let mut tx = b.new_tx_buffer(len);
            tx.packet_mut().copy_from_slice(&payload);
            b.send(tx).unwrap();
            let rx = a.receive().expect("A received the frame");
            assert_eq!(rx.packet(), &payload[..], "frame of {len} bytes B->A");
            a.recycle_rx_buffer(rx).unwrap();
        }
        sent += 1;
    }
    let m = machine.borrow();
    let (ca, cb) = (
        m.backend.counters(0).unwrap(),
        m.backend.counters(1).unwrap(),
    );
    assert_eq!(ca.frames_tx + cb.frames_tx, sent);
    assert_eq!(ca.frames_rx + cb.frames_rx, sent);
    assert_eq!(ca.request_errors + cb.request_errors, 0);
    assert_eq!(ca.rx_dropped_too_big + cb.rx_dropped_too_big, 0);
    assert!(m.interrupts_for(FRONTEND, devices::topology::FIRST_SPI) > 0);
    assert!(m.interrupts_for(OTHER_FRONTEND, devices::topology::FIRST_SPI) > 0);
    scenario::assert_no_violations();
    println!(
        "net A: {ca:?}\nnet B: {cb:?}\nhypercalls: {:?}",
        world::with(|w| w.stats)
    );
}

/// B takes nothing for a while: A's frames fill B's rx ring, then its port's backlog;
/// none drops. (A frame beyond that would hold A's tx queue back, which `virtio-drivers`
/// waits out in `send`: tests/tests/net_backpressure.rs drives that by hand.)
#[test]
fn frames_wait_for_rx_buffers_in_the_backlog_and_arrive_in_order() {
    let (machine, mut a, mut b) = two_frontends();
    let mut rng = Rng::new(5);
    let total = QUEUE + devices::net::switch::BACKLOG;
    let mut frames = Vec::new();
    for _ in 0..total {
        let payload = frame(MAC_B, MAC_A, 100, &mut rng);
        let mut tx = a.new_tx_buffer(payload.len());
        tx.packet_mut().copy_from_slice(&payload);
        a.send(tx).unwrap();
        frames.push(payload);
    }
    let stats = machine.borrow().backend.port_stats(1).unwrap();
    assert_eq!(stats.dropped_backlog_full, 0);
    // B now drains: first what sat in its rx ring, then the backlog as buffers come back.
    for (index, expected) in frames.iter().enumerate() {
        let rx = b
            .receive()
            .unwrap_or_else(|e| panic!("frame {index}: {e:?}"));
        assert_eq!(rx.packet(), &expected[..], "frame {index} in order");
        b.recycle_rx_buffer(rx).unwrap();
    }
    assert!(b.receive().is_err(), "nothing more");
    scenario::assert_no_violations();
}
