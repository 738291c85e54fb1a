//! A frontend whose domain goes away (crashed, shut down) while its devices hold mapped
//! rings and frames wait for it: the backend detaches it, releases everything it held,
//! and the other frontends keep being served, on both buffer routes.

use devices::backend::{BackendError, Detached, DeviceIndex, Frontends, MmioRequest};
use devices::blk::backend::RamDisk;
use devices::blk::BlkOptions;
use stubvirt_tests::hal::GrantDmaHal;
use stubvirt_tests::scenario::{self, Rng};
use stubvirt_tests::transport::XenMmioTransport;
use stubvirt_tests::world;
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::device::net::VirtIONet;

/// A local experimental EtherType.
const ETHER_TYPE: u16 = 0x88b5;
const QUEUE: usize = 16;
const RX_BUF: usize = 2048;
const GONE: u16 = 1;
const SURVIVOR: u16 = 2;
const PEER: u16 = 3;
const MAC_GONE: [u8; 6] = [0x02, 0, 0, 0, 0, 0x1];
const MAC_SURVIVOR: [u8; 6] = [0x02, 0, 0, 0, 0, 0x2];
const MAC_PEER: [u8; 6] = [0x02, 0, 0, 0, 0, 0x3];
const SECTORS: u64 = 256;

type Blk<const D: u16> = VirtIOBlk<GrantDmaHal<D>, XenMmioTransport>;
type Net<const D: u16> = VirtIONet<GrantDmaHal<D>, XenMmioTransport, QUEUE>;

/// A frame of this suite's EtherType.
fn frame(dst: [u8; 6], src: [u8; 6], len: usize, rng: &mut Rng) -> Vec<u8> {
    scenario::frame(dst, src, ETHER_TYPE, len, rng)
}

fn send<const D: u16>(net: &mut Net<D>, payload: &[u8]) {
    let mut tx = net.new_tx_buffer(payload.len());
    tx.packet_mut().copy_from_slice(payload);
    net.send(tx).expect("the backend takes the frame");
}

fn transport(machine: &scenario::Shared, domain: u16, n: u64) -> XenMmioTransport {
    let (base, _) = scenario::window(n);
    XenMmioTransport::probe(machine.clone(), domain, 0, base).expect("a device at the window")
}

/// Two frontends with a disk and a NIC each, a third with a NIC; `copy` puts every
/// frontend's buffers on the copy route.
/// Also returns the NICs of the frontend that goes and of the survivor.
fn world_of_three(
    copy: bool,
) -> (
    scenario::Shared,
    Blk<GONE>,
    Net<GONE>,
    Blk<SURVIVOR>,
    [DeviceIndex; 2],
) {
    let machine = scenario::machine(&[GONE, SURVIVOR, PEER]);
    let mut nics = Vec::new();
    for (domain, mac) in [(GONE, MAC_GONE), (SURVIVOR, MAC_SURVIVOR)] {
        let disk = RamDisk::new(SECTORS, "lifecycle");
        scenario::add_ram_disk(&machine, domain, 0, disk, BlkOptions::default());
        nics.push(scenario::add_net(&machine, domain, 1, mac));
    }
    scenario::add_net(&machine, PEER, 0, MAC_PEER);
    if copy {
        let mut m = machine.borrow_mut();
        for domain in [GONE, SURVIVOR, PEER] {
            m.frontends.copy_buffers(domain);
        }
    }
    let gone_blk = Blk::<GONE>::new(transport(&machine, GONE, 0)).unwrap();
    let gone_net = Net::<GONE>::new(transport(&machine, GONE, 1), RX_BUF).unwrap();
    let survivor_blk = Blk::<SURVIVOR>::new(transport(&machine, SURVIVOR, 0)).unwrap();
    (
        machine,
        gone_blk,
        gone_net,
        survivor_blk,
        [nics[0], nics[1]],
    )
}

fn a_gone_frontend_is_released(copy: bool) {
    let (machine, mut gone_blk, gone_net, mut survivor_blk, [gone_nic, survivor_nic]) =
        world_of_three(copy);
    let mut survivor_net = Net::<SURVIVOR>::new(transport(&machine, SURVIVOR, 1), RX_BUF).unwrap();
    let mut peer_net = Net::<PEER>::new(transport(&machine, PEER, 0), RX_BUF).unwrap();
    let mut rng = Rng::new(19);

    // The frontend that will go away has used its disk, and more frames were sent to it
    // than its rx ring takes: some wait in its switch backlog.
    let mut data = vec![0u8; 4096];
    rng.fill(&mut data);
    gone_blk.write_blocks(0, &data).unwrap();
    for _ in 0..QUEUE + 8 {
        send(
            &mut survivor_net,
            &frame(MAC_GONE, MAC_SURVIVOR, 300, &mut rng),
        );
    }
    assert!(world::with(|w| w.live_mappings_of(GONE)) > 0);
    let (_, irq) = scenario::window(1);
    let irqs_before = machine.borrow().interrupts_for(GONE, irq);

    let detached = machine.borrow_mut().detach_frontend(GONE);
    let gone_port = machine.borrow().backend.port_stats(gone_nic);
    // The gone domain's driver never runs again (not even its reset on drop).
    std::mem::forget((gone_blk, gone_net));
    assert_eq!(
        detached,
        Some(Detached {
            devices: 2,
            pages_held: 0
        })
    );
    assert_eq!(
        world::with(|w| w.live_mappings_of(GONE)),
        0,
        "every page of the gone frontend is unmapped"
    );
    // Its windows answer nothing any more.
    let (base, _) = scenario::window(0);
    let request = MmioRequest {
        frontend: GONE,
        addr: base,
        size: 4,
        write: false,
        data: 0,
    };
    {
        let mut guard = machine.borrow_mut();
        let m = &mut *guard;
        assert_eq!(
            m.backend.mmio(&request, &mut m.frontends),
            Err(BackendError::NoDevice {
                frontend: GONE,
                addr: base
            })
        );
    }

    // Frames for its address end at the switch: far more than the frame pool holds, and
    // the pool is not drained by them.
    for _ in 0..600 {
        send(
            &mut survivor_net,
            &frame(MAC_GONE, MAC_SURVIVOR, 300, &mut rng),
        );
    }
    // The survivor's disk and NIC still work.
    let mut back = vec![0u8; 4096];
    survivor_blk.write_blocks(8, &data).unwrap();
    survivor_blk.read_blocks(8, &mut back).unwrap();
    assert_eq!(back, data);
    for len in [60, 700, 1514] {
        let payload = frame(MAC_PEER, MAC_SURVIVOR, len, &mut rng);
        send(&mut survivor_net, &payload);
        let rx = peer_net
            .receive()
            .expect("the peer receives the survivor's frame");
        assert_eq!(rx.packet(), &payload[..]);
        peer_net.recycle_rx_buffer(rx).unwrap();
    }
    let m = machine.borrow();
    assert_eq!(
        m.interrupts_for(GONE, irq),
        irqs_before,
        "no interrupt for a gone frontend"
    );
    let survivor_port = m
        .backend
        .port_stats(survivor_nic)
        .expect("the survivor's NIC");
    assert_eq!(survivor_port.dropped_no_pool, 0);
    assert_eq!(
        m.backend.port_stats(gone_nic),
        gone_port,
        "nothing was queued for the gone frontend's port"
    );
    drop(m);
    scenario::assert_no_violations();
}

#[test]
fn a_gone_frontend_is_released_and_the_others_keep_working_mapped() {
    a_gone_frontend_is_released(false);
}

#[test]
fn a_gone_frontend_is_released_and_the_others_keep_working_copied() {
    a_gone_frontend_is_released(true);
}

#[test]
fn detaching_twice_or_an_unknown_frontend_releases_nothing_more() {
    let (machine, blk, net, _survivor, _) = world_of_three(false);
    let mut m = machine.borrow_mut();
    assert!(m.detach_frontend(GONE).is_some());
    std::mem::forget((blk, net));
    assert_eq!(m.detach_frontend(GONE), None, "its memory is gone with it");
    let m = &mut *m;
    let mut other = world::SimFrontends::default();
    other.add(GONE);
    let again = m.backend.detach_frontend(GONE, other.memory(GONE).unwrap());
    assert_eq!(again, Detached::default());
    assert_eq!(
        m.backend.detach_frontend(9, other.memory(GONE).unwrap()),
        Detached::default()
    );
}

/// A frontend created anew (xl gives it a new domain id) gets its NIC back on the port
/// the gone one held, even when every other port is taken; frames flow through it.
#[test]
fn a_frontend_created_anew_gets_the_gone_ones_switch_port() {
    const REBORN: u16 = 4;
    const MAC_REBORN: [u8; 6] = [0x02, 0, 0, 0, 0, 0x4];
    let (machine, blk, net, _survivor, _) = world_of_three(false);
    let uplink = machine.borrow_mut().backend.add_uplink();
    assert!(uplink.is_some(), "the fourth port");
    let mut m = machine.borrow_mut();
    m.detach_frontend(GONE).expect("GONE was served");
    std::mem::forget((blk, net));
    m.add_frontend(REBORN, 2);
    drop(m);
    let nic = scenario::add_net(&machine, REBORN, 0, MAC_REBORN);
    assert!(machine.borrow().backend.is_attached(nic));
    let mut reborn = Net::<REBORN>::new(transport(&machine, REBORN, 0), RX_BUF).unwrap();
    let mut peer = Net::<PEER>::new(transport(&machine, PEER, 0), RX_BUF).unwrap();
    let mut rng = Rng::new(4);
    let sent = frame(MAC_PEER, MAC_REBORN, 200, &mut rng);
    send(&mut reborn, &sent);
    let got = peer
        .receive()
        .expect("the peer receives the new frontend's frame");
    assert_eq!(got.packet(), &sent[..]);
    scenario::assert_no_violations();
}
