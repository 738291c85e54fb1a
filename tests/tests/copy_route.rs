//! The kernel's default route to request buffers, `GNTTABOP_copy` instead of mapping
//! (`devices::copy_route::CopyRoute`), over the simulated Xen's grant copy: the same
//! device code, the same frontends, and Xen's refusals of bad grants found at the copy.

use devices::blk::backend::RamDisk;
use devices::blk::BlkOptions;
use devices::grant::{GrantAddress, GrantRef};
use devices::queue::DESC_F_WRITE;
use stubvirt_tests::blk_fixture::{BlkFixture, DATA, STATUS, T_IN, T_OUT};
use stubvirt_tests::hal::GrantDmaHal;
use stubvirt_tests::net_fixture::{RawNet, MAC_A, MAC_B, RX_AREA};
use stubvirt_tests::rings::Granted;
use stubvirt_tests::scenario::{self, Rng, FRONTEND, OTHER_FRONTEND};
use stubvirt_tests::transport::XenMmioTransport;
use stubvirt_tests::world;
use virtio_drivers::device::blk::{VirtIOBlk, SECTOR_SIZE};
use virtio_drivers::device::net::VirtIONet;

const STATUS_OK: u8 = 0;
const STATUS_IOERR: u8 = 1;

#[test]
fn virtio_drivers_blk_matches_a_shadow_and_maps_only_rings() {
    const SECTORS: u64 = 1024;
    let machine = scenario::machine(&[FRONTEND]);
    machine.borrow_mut().frontends.copy_buffers(FRONTEND);
    scenario::add_ram_disk(
        &machine,
        FRONTEND,
        0,
        RamDisk::new(SECTORS, "copied"),
        BlkOptions::default(),
    );
    let (base, _) = scenario::window(0);
    let transport = XenMmioTransport::probe(machine.clone(), FRONTEND, 0, base).unwrap();
    let mut driver = VirtIOBlk::<GrantDmaHal<1>, _>::new(transport).unwrap();
    let mut shadow = vec![0u8; (SECTORS * 512) as usize];
    let mut rng = Rng::new(21);
    for round in 0..120 {
        let sectors = [1usize, 3, 8, 17, 64][rng.below(5) as usize];
        let start = rng.below(SECTORS - sectors as u64 + 1) as usize;
        let range = start * SECTOR_SIZE..(start + sectors) * SECTOR_SIZE;
        let mut data = vec![0u8; sectors * SECTOR_SIZE];
        if round % 3 == 0 {
            driver.read_blocks(start, &mut data).unwrap();
            assert!(data == shadow[range], "round {round}: read differs");
        } else {
            rng.fill(&mut data);
            driver.write_blocks(start, &data).unwrap();
            shadow[range].copy_from_slice(&data);
        }
        let m = machine.borrow();
        assert_eq!(m.frontends.copied_pages_live(FRONTEND), Some(0));
    }
    let m = machine.borrow();
    let counters = m.backend.counters(0).unwrap();
    assert_eq!(counters.request_errors, 0);
    // Buffers were copied, never mapped: Xen mapped the rings and one indirect table per
    // request (virtio-drivers makes every chain indirect), no header, data or status page.
    let (calls, copies, refused, map_entries) = world::with(|w| {
        let s = w.stats;
        (s.copy_calls, s.copies, s.copies_refused, s.map_entries)
    });
    // Header, data (all its pages in one call) and status: three copy hypercalls a
    // request at QD 1, however many pages the data spans (batching.rs: fewer at QD 32).
    assert!(copies >= 3 * 120, "{copies} pieces copied for 120 requests");
    assert!(calls <= 3 * 120, "{calls} copy hypercalls for 120 requests");
    assert!(copies > calls + 120, "multi-page data went in one call");
    assert_eq!(refused, 0);
    assert!(
        map_entries <= 6 + 120,
        "{map_entries} pages mapped: only rings and indirect tables"
    );
    assert_eq!(
        counters.pages_held(),
        world::with(|w| w.live_mappings()) as u64
    );
    scenario::assert_no_violations();
}

/// The fixture with device 0's request buffers reached by copy.
/// What the kernel offers (indirect descriptors off): the same driver then puts each
/// request's descriptors in the ring, and Xen maps nothing but the rings.
#[test]
fn without_indirect_descriptors_only_the_rings_are_mapped() {
    const SECTORS: u64 = 256;
    let machine = scenario::machine(&[FRONTEND]);
    machine.borrow_mut().frontends.copy_buffers(FRONTEND);
    machine
        .borrow_mut()
        .backend
        .offer_indirect_descriptors(false);
    scenario::add_ram_disk(
        &machine,
        FRONTEND,
        0,
        RamDisk::new(SECTORS, "direct"),
        BlkOptions::default(),
    );
    let (base, _) = scenario::window(0);
    let transport = XenMmioTransport::probe(machine.clone(), FRONTEND, 0, base).unwrap();
    let mut driver = VirtIOBlk::<GrantDmaHal<1>, _>::new(transport).unwrap();
    let mut rng = Rng::new(5);
    for round in 0..40 {
        let start = rng.below(SECTORS - 8);
        let mut data = vec![0u8; 8 * SECTOR_SIZE];
        rng.fill(&mut data);
        driver.write_blocks(start as usize, &data).unwrap();
        let mut back = vec![0u8; data.len()];
        driver.read_blocks(start as usize, &mut back).unwrap();
        assert!(back == data, "round {round}: read differs");
    }
    let m = machine.borrow();
    assert_eq!(m.backend.counters(0).unwrap().request_errors, 0);
    let map_entries = world::with(|w| w.stats.map_entries);
    // The rings (descriptor table, avail, used) and nothing per request.
    assert!(
        map_entries <= 6,
        "{map_entries} pages mapped for 80 requests"
    );
    scenario::assert_no_violations();
}

fn copied_fixture() -> BlkFixture {
    let f = BlkFixture::new(0);
    f.machine.borrow_mut().frontends.copy_buffers(FRONTEND);
    f
}

#[test]
fn read_only_grant_for_a_device_writable_buffer_fails_at_the_copy() {
    let mut f = copied_fixture();
    let readonly = Granted::new(FRONTEND, 1, true);
    readonly.write(0, &[0x11; 512]);
    f.request(0, T_IN, 0, (readonly.dma(0), 512), true);
    assert_eq!(f.status_of(0), STATUS_IOERR);
    assert_eq!(readonly.read(0, 512), vec![0x11; 512], "buffer untouched");
    assert_eq!(
        world::with(|w| w.stats.copies_refused),
        1,
        "Xen refused the copy into a read-only grant"
    );
    f.assert_queue_serves(0);
    f.assert_queue_serves(1);
    f.assert_other_device_serves();
    f.assert_no_violations();
}

#[test]
fn unknown_and_revoked_grants_are_refused_by_xen_and_answered_ioerr() {
    let mut f = copied_fixture();
    let bogus = GrantAddress::encode(GrantRef(4_000_000), 0);
    f.request(0, T_IN, 0, (bogus, 512), true);
    assert_eq!(f.status_of(0), STATUS_IOERR);
    assert_eq!(world::with(|w| w.stats.copies_refused), 1);
    // Revoked after the doorbell was served, before the queue ran.
    let data = Granted::new(FRONTEND, 1, false);
    data.write(0, &[0x22; 512]);
    let (header, status) = (f.header(0, T_OUT, 3), f.status_addr(0));
    f.place(
        0,
        &[
            (header, 16, 0),
            (data.dma(0), 512, 0),
            (status, 1, DESC_F_WRITE),
        ],
    );
    // The doorbell is served (queue marked pending) but the backend has not run yet.
    f.doorbell_without_serving();
    data.revoke();
    f.machine.borrow_mut().run_until_idle();
    assert_eq!(f.status_of(0), STATUS_IOERR);
    // Nothing reached sector 3.
    f.request(0, T_IN, 3, (f.mem.dma(DATA), 512), true);
    assert_eq!(f.status_of(0), STATUS_OK);
    assert_eq!(f.mem.read(DATA, 512), vec![0; 512]);
    f.mem.write(DATA, &[0x33; 512]);
    f.request(0, T_OUT, 3, (f.mem.dma(DATA), 512), false);
    assert_eq!(f.status_of(0), STATUS_OK);
    f.assert_other_device_serves();
    f.assert_no_violations();
}

#[test]
fn virtio_drivers_net_frames_cross_by_copy() {
    let machine = scenario::machine(&[FRONTEND, OTHER_FRONTEND]);
    for domain in [FRONTEND, OTHER_FRONTEND] {
        machine.borrow_mut().frontends.copy_buffers(domain);
    }
    let (mac_a, mac_b) = ([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb]);
    scenario::add_net(&machine, FRONTEND, 0, mac_a);
    scenario::add_net(&machine, OTHER_FRONTEND, 0, mac_b);
    let (base, _) = scenario::window(0);
    let a = XenMmioTransport::probe(machine.clone(), FRONTEND, 0, base).unwrap();
    let b = XenMmioTransport::probe(machine.clone(), OTHER_FRONTEND, 1, base).unwrap();
    let mut a = VirtIONet::<GrantDmaHal<1>, _, 16>::new(a, 2048).unwrap();
    let mut b = VirtIONet::<GrantDmaHal<2>, _, 16>::new(b, 2048).unwrap();
    let mut rng = Rng::new(4);
    for len in (60..=1514).step_by(131) {
        let mut payload = vec![0u8; len];
        rng.fill(&mut payload);
        payload[..6].copy_from_slice(&mac_b);
        payload[6..12].copy_from_slice(&mac_a);
        let mut tx = a.new_tx_buffer(len);
        tx.packet_mut().copy_from_slice(&payload);
        a.send(tx).unwrap();
        let rx = b.receive().expect("B received the frame");
        assert_eq!(rx.packet(), &payload[..], "frame of {len} bytes");
        b.recycle_rx_buffer(rx).unwrap();
    }
    assert!(world::with(|w| w.stats.copies) > 0);
    scenario::assert_no_violations();
}

/// Fails the `nth` copy hypercall from now (0: the next).
fn fail_copy(nth: u64) {
    world::with(|w| w.faults.copy_countdown = Some(nth));
}

#[test]
fn an_injected_copy_failure_fails_only_its_request() {
    let mut f = copied_fixture();
    // Each request copies header, data, status in that order: fail each in turn. Writes go
    // to sector 10 + nth, reads come from sector 20.
    for (nth, what) in [(0u64, "header"), (1, "data"), (2, "status")] {
        f.mem.write(DATA, &[0x44; 1024]);
        f.mem.write(STATUS, &[0xff]);
        fail_copy(nth);
        f.request(0, T_OUT, 10 + 2 * nth, (f.mem.dma(DATA), 1024), false);
        // A failed status copy leaves the byte as the driver left it; the chain still
        // comes back used.
        let expected = if nth < 2 { STATUS_IOERR } else { 0xff };
        assert_eq!(f.status_of(0), expected, "write, {what} copy failed");
        f.mem.write(STATUS, &[0xff]);
        fail_copy(nth);
        f.request(0, T_IN, 20, (f.mem.dma(DATA), 512), true);
        assert_eq!(f.status_of(0), expected, "read, {what} copy failed");
        assert_eq!(world::with(|w| w.faults.copy_countdown), None);
    }
    // A write whose header or data copy failed never reached the disk (nothing was
    // copied); the one whose status copy failed did (storage was written before it).
    for (sector, written) in [(10u64, false), (12, false), (14, true)] {
        f.request(0, T_IN, sector, (f.mem.dma(DATA), 1024), true);
        assert_eq!(f.status_of(0), STATUS_OK);
        let want = if written { 0x44 } else { 0 };
        assert_eq!(f.mem.read(DATA, 1024), vec![want; 1024], "sector {sector}");
    }
    f.assert_queue_serves(0);
    f.assert_queue_serves(1);
    f.assert_other_device_serves();
    f.assert_no_violations();
}

#[test]
fn an_injected_copy_failure_drops_one_frame_and_counts_it() {
    let (machine, mut a, mut b) = RawNet::pair(0, 0);
    for domain in [FRONTEND, OTHER_FRONTEND] {
        machine.borrow_mut().frontends.copy_buffers(domain);
    }
    b.post_rx(0, 2048);
    b.post_rx(2048, 2048);
    let mut frame = vec![0x5au8; 100];
    frame[..6].copy_from_slice(&MAC_B);
    frame[6..12].copy_from_slice(&MAC_A);
    // The tx chain's header copy fails: the frame is dropped, counted, its chain returned.
    fail_copy(0);
    a.send([0; 12], &frame);
    assert_eq!(a.tx.used_idx(), 1, "the failed chain came back");
    assert!(b.used_rx().is_empty(), "nothing delivered");
    assert_eq!(
        machine.borrow().backend.counters(0).unwrap().request_errors,
        1
    );
    a.send([0; 12], &frame);
    assert_eq!(b.used_rx(), vec![(0, 12 + 100)]);
    assert_eq!(b.mem.read(RX_AREA + 12, 100), frame);
    scenario::assert_no_violations();
}
