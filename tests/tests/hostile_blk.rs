//! Hostile frontends against virtio-blk: every case asserts the exact outcome, no panic,
//! no access outside the grants, and that the other queue and the other device keep
//! serving.

use devices::blk::{STATUS_IOERR, STATUS_OK, STATUS_UNSUPP};
use devices::grant::{GrantAddress, GrantRef};
use devices::mmio::{reg, status, INT_CONFIG_CHANGE};
use devices::queue::{DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE};
use stubvirt_tests::blk_fixture::*;
use stubvirt_tests::rings::Granted;
use stubvirt_tests::scenario::FRONTEND;
use stubvirt_tests::world;

/// After a broken queue: NEEDS_RESET, a config interrupt, nothing used, rings released;
/// queue 1 and device 1 unaffected.
fn assert_queue0_broken(f: &mut BlkFixture) {
    assert_ne!(
        f.device_status() & status::NEEDS_RESET,
        0,
        "NEEDS_RESET set"
    );
    assert_ne!(
        f.raw.read(reg::INTERRUPT_STATUS) & INT_CONFIG_CHANGE,
        0,
        "config interrupt"
    );
    assert_eq!(
        f.queues[0].used_idx(),
        0,
        "nothing completed on the broken queue"
    );
    assert_eq!(f.counters().queue_errors, 1);
    assert_eq!(
        f.raw.read(reg::QUEUE_SEL),
        0,
        "QueueSel is write-only: reads as 0"
    );
    f.raw.write(reg::QUEUE_SEL, 0);
    assert_eq!(
        f.raw.read(reg::QUEUE_READY),
        0,
        "broken queue no longer ready"
    );
    f.assert_queue_serves(1);
    f.assert_other_device_serves();
    f.assert_no_violations();
}

/// After a request answered with `status`: the chain came back, other paths serve.
fn assert_answered(f: &mut BlkFixture, expected: u8) {
    assert_eq!(f.status_of(0), expected);
    assert_eq!(
        f.last_used(0),
        Some((0, 1)),
        "head 0 used with the status byte"
    );
    assert_eq!(f.device_status() & status::NEEDS_RESET, 0);
    f.assert_only_rings_mapped();
    f.assert_queue_serves(0);
    f.assert_queue_serves(1);
    f.assert_other_device_serves();
    f.assert_no_violations();
}

#[test]
fn descriptor_loop_breaks_only_that_queue() {
    let mut f = BlkFixture::new(0);
    let header = f.header(0, T_IN, 0);
    f.queues[0].set_desc(0, header, 16, DESC_F_NEXT, 1);
    f.queues[0].set_desc(1, f.mem.dma(DATA), 512, DESC_F_NEXT | DESC_F_WRITE, 0);
    f.queues[0].push(0);
    f.raw.notify(0);
    assert_queue0_broken(&mut f);
}

#[test]
fn next_index_outside_the_table_breaks_the_queue() {
    let mut f = BlkFixture::new(0);
    let header = f.header(0, T_IN, 0);
    f.queues[0].set_desc(0, header, 16, DESC_F_NEXT, QUEUE_SIZE + 4);
    f.queues[0].push(0);
    f.raw.notify(0);
    assert_queue0_broken(&mut f);
}

#[test]
fn avail_index_running_past_the_ring_breaks_the_queue() {
    let mut f = BlkFixture::new(0);
    f.queues[0].set_avail_idx(QUEUE_SIZE + 1);
    f.raw.notify(0);
    assert_queue0_broken(&mut f);
}

#[test]
fn head_index_outside_the_table_breaks_the_queue() {
    let mut f = BlkFixture::new(0);
    f.queues[0].push(QUEUE_SIZE);
    f.raw.notify(0);
    assert_queue0_broken(&mut f);
}

#[test]
fn readable_descriptor_after_writable_breaks_the_queue() {
    let mut f = BlkFixture::new(0);
    let header = f.header(0, T_OUT, 0);
    let status_addr = f.status_addr(0);
    f.submit(0, &[(status_addr, 1, DESC_F_WRITE), (header, 16, 0)]);
    assert_queue0_broken(&mut f);
}

#[test]
fn indirect_table_longer_than_the_queue_breaks_the_queue() {
    let mut f = BlkFixture::new(devices::features::INDIRECT_DESC);
    let table = Granted::new(FRONTEND, 1, true);
    let entries = u32::from(QUEUE_SIZE) + 1;
    f.submit(0, &[(table.dma(0), 16 * entries, DESC_F_INDIRECT)]);
    assert_queue0_broken(&mut f);
}

#[test]
fn indirect_inside_indirect_breaks_the_queue() {
    let mut f = BlkFixture::new(devices::features::INDIRECT_DESC);
    let table = Granted::new(FRONTEND, 1, false);
    let mut entry = Vec::new();
    entry.extend_from_slice(&table.dma(0).to_le_bytes());
    entry.extend_from_slice(&16u32.to_le_bytes());
    entry.extend_from_slice(&DESC_F_INDIRECT.to_le_bytes());
    entry.extend_from_slice(&0u16.to_le_bytes());
    table.write(0, &entry);
    f.submit(0, &[(table.dma(0), 16, DESC_F_INDIRECT)]);
    assert_queue0_broken(&mut f);
}

#[test]
fn descriptor_loop_inside_an_indirect_table_breaks_the_queue() {
    let mut f = BlkFixture::new(devices::features::INDIRECT_DESC);
    let table = Granted::new(FRONTEND, 1, false);
    let header = f.header(0, T_IN, 0);
    let entries = [
        (header, 16, DESC_F_NEXT, 1u16),
        (f.mem.dma(DATA), 512, DESC_F_NEXT | DESC_F_WRITE, 0),
    ];
    for (k, (addr, len, flags, next)) in entries.into_iter().enumerate() {
        let mut entry = Vec::new();
        entry.extend_from_slice(&addr.to_le_bytes());
        entry.extend_from_slice(&u32::to_le_bytes(len));
        entry.extend_from_slice(&flags.to_le_bytes());
        entry.extend_from_slice(&next.to_le_bytes());
        table.write(16 * k, &entry);
    }
    f.submit(0, &[(table.dma(0), 32, DESC_F_INDIRECT)]);
    assert_queue0_broken(&mut f);
}

#[test]
fn indirect_without_negotiating_it_breaks_the_queue() {
    let mut f = BlkFixture::new(0);
    let table = Granted::new(FRONTEND, 1, true);
    f.submit(0, &[(table.dma(0), 48, DESC_F_INDIRECT)]);
    assert_queue0_broken(&mut f);
}

#[test]
fn address_without_the_grant_bit_is_refused_with_ioerr() {
    let mut f = BlkFixture::new(0);
    f.request(0, T_IN, 0, (0x4000_0000, 512), true);
    assert_answered(&mut f, STATUS_IOERR);
    // The plain address was never mapped: no map request reached Xen for it.
    assert_eq!(f.counters().map_failures, 0);
}

#[test]
fn unknown_grant_reference_is_refused_with_ioerr() {
    let mut f = BlkFixture::new(0);
    let bogus = GrantAddress::encode(GrantRef(4_000_000), 0);
    f.request(0, T_IN, 0, (bogus, 512), true);
    assert_eq!(f.counters().map_failures, 1);
    assert_answered(&mut f, STATUS_IOERR);
}

#[test]
fn lengths_that_overflow_are_refused_with_ioerr() {
    let mut f = BlkFixture::new(0);
    let last_gref = GrantAddress::encode(GrantRef(u32::MAX), 0x800);
    f.request(0, T_IN, 0, (last_gref, 4096), true);
    assert_eq!(f.status_of(0), STATUS_IOERR);
    // A length far beyond what any chain may map.
    f.request(0, T_OUT, 0, (f.mem.dma(DATA), u32::MAX), false);
    assert_answered(&mut f, STATUS_IOERR);
}

#[test]
fn read_only_grant_for_a_device_writable_buffer_is_refused() {
    let mut f = BlkFixture::new(0);
    let readonly = Granted::new(FRONTEND, 1, true);
    readonly.write(0, &[0x11; 512]);
    f.request(0, T_IN, 0, (readonly.dma(0), 512), true);
    assert_eq!(
        readonly.read(0, 512),
        vec![0x11; 512],
        "read-only buffer untouched"
    );
    assert_eq!(f.counters().map_failures, 1);
    assert_answered(&mut f, STATUS_IOERR);
}

#[test]
fn sectors_past_the_end_are_refused_and_change_nothing() {
    let mut f = BlkFixture::new(0);
    f.mem.write(DATA, &[0xee; 1024]);
    f.request(0, T_OUT, SECTORS - 1, (f.mem.dma(DATA), 1024), false);
    assert_eq!(f.status_of(0), STATUS_IOERR);
    f.request(0, T_IN, u64::MAX / 256, (f.mem.dma(DATA), 512), true);
    assert_eq!(f.status_of(0), STATUS_IOERR);
    // The last sector still reads as zeroes: the failed write changed nothing.
    f.request(0, T_IN, SECTORS - 1, (f.mem.dma(DATA), 512), true);
    assert_eq!(f.status_of(0), STATUS_OK);
    assert_eq!(f.mem.read(DATA, 512), vec![0; 512]);
    f.assert_only_rings_mapped();
    f.assert_queue_serves(1);
    f.assert_other_device_serves();
    f.assert_no_violations();
}

#[test]
fn data_length_not_a_multiple_of_the_sector_is_refused() {
    let mut f = BlkFixture::new(0);
    f.request(0, T_IN, 0, (f.mem.dma(DATA), 100), true);
    assert_answered(&mut f, STATUS_IOERR);
}

#[test]
fn unknown_request_type_is_unsupported() {
    let mut f = BlkFixture::new(0);
    f.request(0, 77, 0, (f.mem.dma(DATA), 512), true);
    assert_answered(&mut f, STATUS_UNSUPP);
}

#[test]
fn chain_without_a_status_byte_comes_back_empty() {
    let mut f = BlkFixture::new(0);
    let header = f.header(0, T_OUT, 0);
    f.submit(0, &[(header, 16, 0), (f.mem.dma(DATA), 512, 0)]);
    assert_eq!(f.last_used(0), Some((0, 0)));
    assert_eq!(f.counters().request_errors, 1);
    f.assert_queue_serves(0);
    f.assert_no_violations();
}

#[test]
fn unreachable_indirect_table_comes_back_empty() {
    let mut f = BlkFixture::new(devices::features::INDIRECT_DESC);
    let bogus = GrantAddress::encode(GrantRef(3_000_000), 0);
    f.submit(0, &[(bogus, 48, DESC_F_INDIRECT)]);
    assert_eq!(f.last_used(0), Some((0, 0)));
    assert_eq!(f.counters().request_errors, 1);
    f.assert_queue_serves(0);
    f.assert_no_violations();
}

#[test]
fn grant_revoked_between_notify_and_processing_fails_the_request() {
    let mut f = BlkFixture::new(0);
    let data = Granted::new(FRONTEND, 1, false);
    let header = f.header(0, T_IN, 0);
    let status_addr = f.status_addr(0);
    f.place(
        0,
        &[
            (header, 16, 0),
            (data.dma(0), 512, DESC_F_WRITE),
            (status_addr, 1, DESC_F_WRITE),
        ],
    );
    // The doorbell is served (queue marked pending) but the backend has not run yet.
    f.doorbell_without_serving();
    data.revoke();
    f.machine.borrow_mut().run_until_idle();
    assert_answered(&mut f, STATUS_IOERR);
}

#[test]
fn reset_in_the_middle_of_io_releases_everything() {
    let mut f = BlkFixture::new(0);
    let header = f.header(0, T_OUT, 2);
    let status_addr = f.status_addr(0);
    f.place(
        0,
        &[
            (header, 16, 0),
            (f.mem.dma(DATA), 512, 0),
            (status_addr, 1, DESC_F_WRITE),
        ],
    );
    {
        let (base, _) = stubvirt_tests::scenario::window(0);
        let mut m = f.machine.borrow_mut();
        // Doorbell and reset reach the backend in one batch of ioreqs (two vcpus).
        m.post(FRONTEND, 0, base + reg::QUEUE_NOTIFY, 4, true, 0);
        m.post(FRONTEND, 1, base + reg::STATUS, 4, true, 0);
        m.serve_slots();
        m.collect(FRONTEND, 0);
        m.collect(FRONTEND, 1);
        m.run_until_idle();
    }
    assert_eq!(f.device_status(), 0);
    assert_eq!(f.queues[0].used_idx(), 0, "nothing completes after reset");
    assert_eq!(f.counters().pages_held(), 0, "device 0 holds no mapping");
    // The driver can start over.
    let status = f
        .raw
        .negotiate(devices::features::VERSION_1 | devices::features::ACCESS_PLATFORM);
    assert_ne!(status & status::FEATURES_OK, 0);
    let fresh = stubvirt_tests::rings::RawQueue::new(FRONTEND, QUEUE_SIZE);
    f.raw.setup_queue(0, &fresh, QUEUE_SIZE);
    f.raw.driver_ok();
    f.queues[0] = fresh;
    f.assert_queue_serves(0);
    f.assert_other_device_serves();
    f.assert_no_violations();
}

#[test]
fn bad_queue_sizes_are_refused_with_needs_reset() {
    for size in [0u16, 6, 512] {
        let mut f = BlkFixture::new(0);
        f.raw.negotiate(
            devices::features::VERSION_1
                | devices::features::ACCESS_PLATFORM
                | devices::features::blk::MQ,
        );
        let q = stubvirt_tests::rings::RawQueue::new(FRONTEND, 8);
        f.raw.setup_queue(0, &q, size);
        assert_eq!(f.raw.read(reg::QUEUE_READY), 0, "size {size} refused");
        assert_ne!(
            f.device_status() & status::NEEDS_RESET,
            0,
            "size {size}: NEEDS_RESET"
        );
        assert_eq!(
            f.counters().pages_held(),
            0,
            "nothing stays mapped for size {size}"
        );
        f.assert_other_device_serves();
        f.assert_no_violations();
    }
}

#[test]
fn ring_addresses_without_grants_are_refused() {
    let mut f = BlkFixture::new(0);
    f.raw.negotiate(
        devices::features::VERSION_1
            | devices::features::ACCESS_PLATFORM
            | devices::features::blk::MQ,
    );
    f.raw.write(reg::QUEUE_SEL, 0);
    f.raw.write(reg::QUEUE_NUM, 8);
    f.raw.write64(reg::QUEUE_DESC_LOW, 0x4000_0000);
    f.raw.write64(reg::QUEUE_DRIVER_LOW, 0x4000_1000);
    f.raw.write64(reg::QUEUE_DEVICE_LOW, 0x4000_2000);
    f.raw.write(reg::QUEUE_READY, 1);
    assert_eq!(f.raw.read(reg::QUEUE_READY), 0);
    assert_ne!(f.device_status() & status::NEEDS_RESET, 0);
    assert_eq!(
        world::with(|w| w.stats.map_failures),
        0,
        "no map was even tried"
    );
    f.assert_other_device_serves();
}

#[test]
fn notify_of_a_queue_never_made_ready_is_ignored() {
    let mut f = BlkFixture::new(0);
    let before = f.counters();
    f.raw.notify(3); // no such queue
    f.raw.write(reg::STATUS, 0);
    f.raw.notify(0); // reset: queue 0 not ready any more
    let after = f.counters();
    assert_eq!(
        after.ignored_notifications - before.ignored_notifications,
        2
    );
    assert_eq!(
        after.map_batches, before.map_batches,
        "no mapping attempted"
    );
    f.assert_other_device_serves();
    f.assert_no_violations();
}

#[test]
fn features_not_offered_are_refused_at_features_ok() {
    let f = BlkFixture::new(0);
    let offered = f.raw.device_features();
    let status_back = f.raw.negotiate(offered | (1 << 50));
    assert_eq!(status_back & status::FEATURES_OK, 0, "unknown bit refused");
    let status_back = f.raw.negotiate(devices::features::VERSION_1);
    assert_eq!(
        status_back & status::FEATURES_OK,
        0,
        "ACCESS_PLATFORM is required"
    );
    let status_back = f.raw.negotiate(devices::features::ACCESS_PLATFORM);
    assert_eq!(
        status_back & status::FEATURES_OK,
        0,
        "VERSION_1 is required"
    );
    // DRIVER_OK without FEATURES_OK is refused too.
    f.raw.write(
        reg::STATUS,
        status::ACKNOWLEDGE | status::DRIVER | status::DRIVER_OK,
    );
    assert_eq!(f.raw.status() & status::DRIVER_OK, 0);
    let status_back = f
        .raw
        .negotiate(devices::features::VERSION_1 | devices::features::ACCESS_PLATFORM);
    assert_ne!(status_back & status::FEATURES_OK, 0);
}
