//! virtio-blk cases `virtio-drivers` does not produce, with rings built by hand:
//! indirect chains, EVENT_IDX both ways, NO_INTERRUPT, DISCARD, WRITE_ZEROES, GET_ID,
//! FLUSH, descriptors split at odd places, several chains per notification, MQ.

use devices::blk::{STATUS_IOERR, STATUS_OK, STATUS_UNSUPP};
use devices::features::{EVENT_IDX, INDIRECT_DESC};
use devices::mmio::{reg, INT_USED_BUFFER};
use devices::queue::{DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE};
use stubvirt_tests::blk_fixture::*;
use stubvirt_tests::rings::Granted;
use stubvirt_tests::scenario::FRONTEND;

fn descriptor(addr: u64, len: u32, flags: u16, next: u16) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(16);
    bytes.extend_from_slice(&addr.to_le_bytes());
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(&flags.to_le_bytes());
    bytes.extend_from_slice(&next.to_le_bytes());
    bytes
}

fn interrupts(f: &BlkFixture) -> u64 {
    f.machine
        .borrow()
        .interrupts_for(FRONTEND, devices::topology::FIRST_SPI)
}

#[test]
fn indirect_chains_write_and_read() {
    let mut f = BlkFixture::new(INDIRECT_DESC);
    let table = Granted::new(FRONTEND, 1, true);
    let pattern: Vec<u8> = (0..2048u32).map(|i| (i % 251) as u8).collect();
    f.mem.write(DATA, &pattern);
    // OUT: header, data split 3 ways at odd lengths, status; all through the table.
    let header = f.header(0, T_OUT, 10);
    let status = f.status_addr(0);
    let entries = [
        descriptor(header, 16, DESC_F_NEXT, 1),
        descriptor(f.mem.dma(DATA), 1000, DESC_F_NEXT, 2),
        descriptor(f.mem.dma(DATA + 1000), 48, DESC_F_NEXT, 3),
        descriptor(f.mem.dma(DATA + 1048), 1000, DESC_F_NEXT, 4),
        descriptor(status, 1, DESC_F_WRITE, 0),
    ];
    table.write(0, &entries.concat());
    f.submit(
        0,
        &[(table.dma(0), 16 * entries.len() as u32, DESC_F_INDIRECT)],
    );
    assert_eq!(f.status_of(0), STATUS_OK);
    // IN through a table whose entries are out of order (next links jump around).
    let header = f.header(1, T_IN, 10);
    let status = f.status_addr(1);
    f.mem.write(DATA + 4096, &[0u8; 2048]);
    let entries = [
        descriptor(header, 16, DESC_F_NEXT, 2),
        descriptor(status, 1, DESC_F_WRITE, 0),
        descriptor(f.mem.dma(DATA + 4096), 2048, DESC_F_NEXT | DESC_F_WRITE, 1),
    ];
    table.write(0, &entries.concat());
    f.submit(0, &[(table.dma(0), 48, DESC_F_INDIRECT)]);
    assert_eq!(f.status_of(1), STATUS_OK);
    assert_eq!(f.mem.read(DATA + 4096, 2048), pattern);
    assert_eq!(f.last_used(0), Some((0, 2049)));
    f.assert_only_rings_mapped();
    f.assert_no_violations();
}

#[test]
fn event_idx_suppresses_interrupts_until_used_event() {
    let mut f = BlkFixture::new(EVENT_IDX);
    // The driver asks to hear only once used.idx passes 2.
    f.queues[0].set_used_event(2);
    let before = interrupts(&f);
    f.request(0, T_FLUSH, 0, (f.mem.dma(DATA), 0), false); // 2 descriptors effectively
    f.request(0, T_FLUSH, 0, (f.mem.dma(DATA), 0), false);
    assert_eq!(
        interrupts(&f),
        before,
        "used.idx 1 and 2 are not past used_event 2"
    );
    f.request(0, T_FLUSH, 0, (f.mem.dma(DATA), 0), false);
    assert_eq!(
        interrupts(&f),
        before + 1,
        "used.idx 3 crosses used_event 2"
    );
    // The device tells the driver where to notify next: avail_event = chains consumed.
    assert_eq!(f.queues[0].avail_event(), 3);
    assert_eq!(
        f.raw.read(reg::INTERRUPT_STATUS) & INT_USED_BUFFER,
        INT_USED_BUFFER
    );
    f.assert_no_violations();
}

#[test]
fn no_interrupt_flag_suppresses_interrupts_without_event_idx() {
    let mut f = BlkFixture::new(0);
    f.queues[0].set_avail_flags(1);
    let before = interrupts(&f);
    f.request(0, T_FLUSH, 0, (f.mem.dma(DATA), 0), false);
    assert_eq!(f.status_of(0), STATUS_OK);
    assert_eq!(interrupts(&f), before);
    f.queues[0].set_avail_flags(0);
    f.request(0, T_FLUSH, 0, (f.mem.dma(DATA), 0), false);
    assert_eq!(interrupts(&f), before + 1);
}

#[test]
fn several_chains_in_one_notification_complete_with_one_interrupt() {
    let mut f = BlkFixture::new(0);
    // Four FLUSH chains (header + status), made available before one doorbell.
    for slot in 0..4u16 {
        let header = f.header(slot as usize, T_FLUSH, 0);
        let status = f.status_addr(slot as usize);
        let base = slot * 2;
        let q = &mut f.queues[0];
        q.set_desc(base, header, 16, DESC_F_NEXT, base + 1);
        q.set_desc(base + 1, status, 1, DESC_F_WRITE, 0);
    }
    let before = interrupts(&f);
    for slot in 0..4u16 {
        f.queues[0].push(slot * 2);
    }
    f.raw.notify(0);
    assert_eq!(f.queues[0].used_idx(), 4);
    for slot in 0..4 {
        assert_eq!(f.status_of(slot), STATUS_OK);
    }
    assert_eq!(
        interrupts(&f),
        before + 1,
        "one interrupt for the whole pass"
    );
    f.assert_no_violations();
}

#[test]
fn discard_and_write_zeroes_clear_exactly_their_ranges() {
    let mut f = BlkFixture::new(0);
    let ones = vec![0xffu8; 4096];
    f.mem.write(DATA, &ones);
    f.request(0, T_OUT, 0, (f.mem.dma(DATA), 4096), false); // sectors 0..8 = 0xff
    assert_eq!(f.status_of(0), STATUS_OK);
    // Segments: {sector, num_sectors, flags}
    let segment = |sector: u64, count: u32, flags: u32| {
        let mut b = Vec::new();
        b.extend_from_slice(&sector.to_le_bytes());
        b.extend_from_slice(&count.to_le_bytes());
        b.extend_from_slice(&flags.to_le_bytes());
        b
    };
    f.mem
        .write(DATA + 4096, &[segment(1, 1, 0), segment(5, 2, 0)].concat());
    f.request(0, T_DISCARD, 0, (f.mem.dma(DATA + 4096), 32), false);
    assert_eq!(f.status_of(0), STATUS_OK);
    f.mem.write(DATA + 4096, &segment(3, 1, 1));
    f.request(0, T_WRITE_ZEROES, 0, (f.mem.dma(DATA + 4096), 16), false);
    assert_eq!(f.status_of(0), STATUS_OK);
    f.request(0, T_IN, 0, (f.mem.dma(DATA), 4096), true);
    let back = f.mem.read(DATA, 4096);
    for sector in 0..8 {
        let zero = [1, 3, 5, 6].contains(&sector);
        let bytes = &back[sector * 512..(sector + 1) * 512];
        assert!(
            bytes.iter().all(|&b| b == if zero { 0 } else { 0xff }),
            "sector {sector}"
        );
    }
    // A segment past the end, or with a reserved flag, fails without touching anything.
    f.mem.write(
        DATA + 4096,
        &[segment(0, 1, 0), segment(SECTORS, 1, 0)].concat(),
    );
    f.request(0, T_DISCARD, 0, (f.mem.dma(DATA + 4096), 32), false);
    assert_eq!(f.status_of(0), STATUS_IOERR);
    f.mem.write(DATA + 4096, &segment(0, 1, 2));
    f.request(0, T_WRITE_ZEROES, 0, (f.mem.dma(DATA + 4096), 16), false);
    assert_eq!(f.status_of(0), STATUS_UNSUPP);
    f.request(0, T_IN, 0, (f.mem.dma(DATA), 512), true);
    assert!(
        f.mem.read(DATA, 512).iter().all(|&b| b == 0xff),
        "sector 0 untouched"
    );
    f.assert_no_violations();
}

#[test]
fn get_id_fits_the_buffer_the_driver_gave() {
    let mut f = BlkFixture::new(0);
    f.mem.write(DATA, &[0xaa; 20]);
    f.request(0, T_GET_ID, 0, (f.mem.dma(DATA), 20), true);
    assert_eq!(f.status_of(0), STATUS_OK);
    assert_eq!(&f.mem.read(DATA, 3), b"raw");
    assert_eq!(f.last_used(0), Some((0, 21)));
    // A shorter buffer gets a truncated id, never more bytes than it has.
    f.mem.write(DATA + 100, &[0xaa; 4]);
    f.request(0, T_GET_ID, 0, (f.mem.dma(DATA + 100), 2), true);
    assert_eq!(f.mem.read(DATA + 100, 4), vec![b'r', b'a', 0xaa, 0xaa]);
    f.assert_no_violations();
}

#[test]
fn both_queues_of_a_multiqueue_device_serve() {
    let mut f = BlkFixture::new(0);
    f.assert_queue_serves(0);
    f.assert_queue_serves(1);
    // Data written through queue 1 is visible through queue 0.
    f.mem.write(DATA, &[0x42; 512]);
    f.request(1, T_OUT, 20, (f.mem.dma(DATA), 512), false);
    f.mem.write(DATA, &[0; 512]);
    f.request(0, T_IN, 20, (f.mem.dma(DATA), 512), true);
    assert_eq!(f.mem.read(DATA, 512), vec![0x42; 512]);
}

#[test]
fn a_buffer_spanning_pages_is_mapped_in_one_batch() {
    let mut f = BlkFixture::new(0);
    let batches_before = stubvirt_tests::world::with(|w| w.stats.map_batches);
    // 3 KiB starting 1 KiB before a page boundary: two grants, one map batch.
    f.request(0, T_IN, 0, (f.mem.dma(DATA + 3072), 3072), true);
    assert_eq!(f.status_of(0), STATUS_OK);
    let stats = stubvirt_tests::world::with(|w| w.stats);
    assert_eq!(stats.map_batches - batches_before, 1);
    f.assert_only_rings_mapped();
}

#[test]
fn chains_made_available_before_driver_ok_are_served_at_driver_ok() {
    use devices::mmio::status;
    let mut f = BlkFixture::new(0);
    let status_back = f
        .raw
        .negotiate(devices::features::VERSION_1 | devices::features::ACCESS_PLATFORM);
    assert_ne!(status_back & status::FEATURES_OK, 0);
    let q = stubvirt_tests::rings::RawQueue::new(FRONTEND, QUEUE_SIZE);
    f.raw.setup_queue(0, &q, QUEUE_SIZE);
    f.queues[0] = q;
    f.request(0, T_FLUSH, 0, (f.mem.dma(DATA), 0), false);
    assert_eq!(
        f.queues[0].used_idx(),
        0,
        "doorbell before DRIVER_OK is ignored"
    );
    assert_eq!(f.counters().ignored_notifications, 1);
    f.raw.driver_ok();
    assert_eq!(f.queues[0].used_idx(), 1, "served once the driver is ready");
    assert_eq!(f.status_of(0), STATUS_OK);
}

#[test]
fn queue_reset_releases_one_queue_and_it_can_be_set_up_again() {
    let mut f = BlkFixture::new(devices::features::RING_RESET);
    f.assert_queue_serves(0);
    let held = f.counters().pages_held();
    f.raw.write(reg::QUEUE_SEL, 0);
    f.raw.write(reg::QUEUE_RESET, 1);
    assert_eq!(f.raw.read(reg::QUEUE_RESET), 0, "reset completed");
    assert_eq!(f.raw.read(reg::QUEUE_READY), 0);
    assert_eq!(
        f.counters().pages_held(),
        held - 3,
        "queue 0's rings unmapped"
    );
    f.assert_queue_serves(1);
    let q = stubvirt_tests::rings::RawQueue::new(FRONTEND, QUEUE_SIZE);
    f.raw.setup_queue(0, &q, QUEUE_SIZE);
    f.queues[0] = q;
    f.assert_queue_serves(0);
    f.assert_no_violations();
}
