//! The register file's rules, with a RAM disk behind it and the in-crate test memory.

use super::*;
use crate::blk::backend::RamDisk;
use crate::blk::{BlkDevice, BlkOptions};
use crate::queue::{Descriptor, QueueError, DESC_F_NEXT};
use crate::test_utils::driver::{self, RING_FEATURES};
use crate::test_utils::{TestMemory, TestQueue};

type Disk = MmioDevice<BlkDevice<RamDisk>>;

fn device() -> (Disk, TestMemory) {
    let disk = BlkDevice::new(RamDisk::new(64, "unit"), BlkOptions::default());
    (MmioDevice::new(disk), TestMemory::new())
}

/// A FLUSH request made available on `ring`.
fn flush(mem: &TestMemory, ring: &mut TestQueue) -> u16 {
    let head = ring.add_chain(&[(16, false), (1, true)]);
    mem.put(ring.buffers(head)[0].addr, &[4, 0, 0, 0]);
    head
}

#[test]
fn device_features_are_read_a_page_at_a_time() {
    let (mut dev, mut mem) = device();
    let offered = dev.offered_features();
    let mut page = |sel| {
        driver::write(&mut dev, &mut mem, reg::DEVICE_FEATURES_SEL, sel);
        driver::read(&mut dev, reg::DEVICE_FEATURES)
    };
    assert_eq!(
        (page(0), page(1), page(2)),
        (offered as u32, (offered >> 32) as u32, 0)
    );
    assert_ne!(page(0) & (1 << 28), 0, "INDIRECT_DESC in the low page");
    assert_eq!(
        page(1) & 0b11,
        0b11,
        "VERSION_1 and ACCESS_PLATFORM in the high"
    );
}

#[test]
fn driver_features_are_assembled_from_both_pages_and_checked() {
    let (mut dev, mut mem) = device();
    assert_ne!(
        driver::negotiate(&mut dev, &mut mem, features::REQUIRED) & status::FEATURES_OK,
        0
    );
    let refused = [
        features::VERSION_1,
        features::REQUIRED | features::blk::MQ,
        features::REQUIRED | features::bit(50),
    ];
    for wanted in refused {
        let status = driver::negotiate(&mut dev, &mut mem, wanted);
        assert_eq!(status & status::FEATURES_OK, 0, "{wanted:#x} accepted");
    }

    // High page first, then the low one; a third page only takes zeroes.
    driver::write(&mut dev, &mut mem, reg::STATUS, 0);
    driver::write(
        &mut dev,
        &mut mem,
        reg::STATUS,
        status::ACKNOWLEDGE | status::DRIVER,
    );
    let mut features = |sel, value| {
        driver::write(&mut dev, &mut mem, reg::DRIVER_FEATURES_SEL, sel);
        dev.write(&mut mem, reg::DRIVER_FEATURES, 4, u64::from(value))
    };
    assert_eq!(features(1, (features::REQUIRED >> 32) as u32), Ok(()));
    assert_eq!(features(0, features::INDIRECT_DESC as u32), Ok(()));
    assert_eq!(features(2, 0), Ok(()));
    assert_eq!(features(2, 1), Err(MmioError::NotNow(reg::DRIVER_FEATURES)));
    let features_ok = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
    driver::write(&mut dev, &mut mem, reg::STATUS, features_ok);
    assert_eq!(
        dev.negotiated(),
        features::REQUIRED | features::INDIRECT_DESC
    );
    // Settled at FEATURES_OK.
    let late = dev.write(&mut mem, reg::DRIVER_FEATURES, 4, 0);
    assert_eq!(late, Err(MmioError::NotNow(reg::DRIVER_FEATURES)));
    assert_eq!(
        dev.negotiated(),
        features::REQUIRED | features::INDIRECT_DESC
    );
}

#[test]
fn a_device_without_indirect_descriptors_neither_offers_nor_accepts_them() {
    let (dev, mut mem) = device();
    let mut dev = dev.without_indirect_descriptors();
    assert_eq!(dev.offered_features() & features::INDIRECT_DESC, 0);
    assert_ne!(dev.offered_features() & features::EVENT_IDX, 0);
    let wanted = features::REQUIRED | features::INDIRECT_DESC;
    let status = driver::negotiate(&mut dev, &mut mem, wanted);
    assert_eq!(status & status::FEATURES_OK, 0, "INDIRECT_DESC accepted");
    let status = driver::negotiate(&mut dev, &mut mem, features::REQUIRED | features::EVENT_IDX);
    assert_ne!(status & status::FEATURES_OK, 0);
}

#[test]
fn status_only_gains_bits_and_in_order() {
    let (mut dev, mut mem) = device();
    let early = dev.write(&mut mem, reg::DRIVER_FEATURES, 4, 1);
    assert_eq!(
        early,
        Err(MmioError::NotNow(reg::DRIVER_FEATURES)),
        "before DRIVER"
    );
    driver::write(&mut dev, &mut mem, reg::STATUS, status::ACKNOWLEDGE);
    let bad = |from, to| Err(MmioError::BadStatus { from, to });
    let cleared = u64::from(status::DRIVER);
    assert_eq!(dev.write(&mut mem, reg::STATUS, 4, cleared), bad(1, 2));
    let skipped = status::ACKNOWLEDGE | status::DRIVER | status::DRIVER_OK;
    let write = dev.write(&mut mem, reg::STATUS, 4, u64::from(skipped));
    assert_eq!(write, bad(1, skipped), "DRIVER_OK before FEATURES_OK");
    let claimed = status::ACKNOWLEDGE | status::NEEDS_RESET;
    let write = dev.write(&mut mem, reg::STATUS, 4, u64::from(claimed));
    assert_eq!(write, bad(1, claimed), "NEEDS_RESET is the device's");
    assert_eq!(dev.status(), status::ACKNOWLEDGE);
    assert_eq!(dev.counters().mmio_errors, 4);
}

#[test]
fn a_queue_of_a_bad_size_is_refused_with_needs_reset() {
    for size in [6, 512] {
        let (mut dev, mut mem) = device();
        let ring = TestQueue::new(&mem, size);
        let early = dev.write(&mut mem, reg::QUEUE_READY, 4, 1);
        assert_eq!(
            early,
            Err(MmioError::NotNow(reg::QUEUE_READY)),
            "before FEATURES_OK"
        );
        driver::negotiate(&mut dev, &mut mem, RING_FEATURES);
        driver::set_queue(&mut dev, &mut mem, 0, &ring);
        assert_eq!(driver::read(&mut dev, reg::QUEUE_READY), 0);
        assert_ne!(dev.status() & status::NEEDS_RESET, 0);
        assert_eq!((mem.live_mappings(), mem.map_batches()), (0, 0));
        assert_eq!(dev.counters().queue_errors, 1);
        // The driver may go on writing status without the bit: it stays.
        let running = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
        driver::write(&mut dev, &mut mem, reg::STATUS, running | status::DRIVER_OK);
        assert_ne!(dev.status() & status::NEEDS_RESET, 0);
    }
}

#[test]
fn queue_registers_are_writable_between_features_ok_and_ready() {
    let (mut dev, mut mem) = device();
    let ring = TestQueue::new(&mem, 8);
    let num = |dev: &mut Disk, mem: &mut TestMemory| dev.write(mem, reg::QUEUE_NUM, 4, 8);
    assert_eq!(
        num(&mut dev, &mut mem),
        Err(MmioError::NotNow(reg::QUEUE_NUM))
    );
    driver::negotiate(&mut dev, &mut mem, RING_FEATURES);
    driver::set_queue(&mut dev, &mut mem, 0, &ring);
    assert_eq!(driver::read(&mut dev, reg::QUEUE_READY), 1);
    assert_eq!(mem.live_mappings(), 3);
    assert_eq!(
        num(&mut dev, &mut mem),
        Err(MmioError::NotNow(reg::QUEUE_NUM))
    );
    driver::write(&mut dev, &mut mem, reg::QUEUE_READY, 0);
    assert_eq!(mem.live_mappings(), 0);
    assert_eq!(num(&mut dev, &mut mem), Ok(()));
    // A queue the device does not have.
    driver::write(&mut dev, &mut mem, reg::QUEUE_SEL, 1);
    assert_eq!(driver::read(&mut dev, reg::QUEUE_NUM_MAX), 0);
    assert_eq!(
        num(&mut dev, &mut mem),
        Err(MmioError::NotNow(reg::QUEUE_NUM))
    );
}

#[test]
fn reset_releases_every_mapping_and_clears_the_registers() {
    let (mut dev, mut mem) = device();
    let mut ring = TestQueue::new(&mem, 8);
    driver::bring_up(&mut dev, &mut mem, RING_FEATURES, &[&ring]);
    let head = flush(&mem, &mut ring);
    driver::write(&mut dev, &mut mem, reg::QUEUE_NOTIFY, 0);
    dev.process(&mut mem, &mut ());
    assert_eq!(ring.used(), [(u32::from(head), 1)]);
    assert!(dev.interrupt_level());
    flush(&mem, &mut ring);
    driver::write(&mut dev, &mut mem, reg::QUEUE_NOTIFY, 0);

    driver::write(&mut dev, &mut mem, reg::STATUS, 0);
    assert_eq!(mem.live_mappings(), 0);
    assert_eq!(dev.counters().pages_held(), 0);
    assert_eq!(dev.status(), 0);
    assert_eq!(driver::read(&mut dev, reg::QUEUE_READY), 0);
    assert!(!dev.interrupt_level() && !dev.has_pending());
    assert_eq!(dev.negotiated(), 0);
    // And up again on fresh rings.
    let ring = TestQueue::new(&mem, 8);
    driver::bring_up(&mut dev, &mut mem, RING_FEATURES, &[&ring]);
    assert_eq!(mem.live_mappings(), 3);
    assert!(mem.violations().is_empty(), "{:?}", mem.violations());
}

#[test]
fn queue_reset_needs_ring_reset_and_releases_that_queue() {
    let (mut dev, mut mem) = device();
    let ring = TestQueue::new(&mem, 8);
    driver::bring_up(&mut dev, &mut mem, RING_FEATURES, &[&ring]);
    let reset = dev.write(&mut mem, reg::QUEUE_RESET, 4, 1);
    assert_eq!(reset, Err(MmioError::NotNow(reg::QUEUE_RESET)));
    assert_eq!(mem.live_mappings(), 3);

    let wanted = RING_FEATURES | features::RING_RESET;
    driver::bring_up(&mut dev, &mut mem, wanted, &[&ring]);
    driver::write(&mut dev, &mut mem, reg::QUEUE_RESET, 1);
    assert_eq!(mem.live_mappings(), 0);
    assert_eq!(driver::read(&mut dev, reg::QUEUE_READY), 0);
    assert_eq!(driver::read(&mut dev, reg::QUEUE_RESET), 0, "done at once");
    let ring = TestQueue::new(&mem, 8);
    driver::set_queue(&mut dev, &mut mem, 0, &ring);
    assert_eq!(mem.live_mappings(), 3);
}

#[test]
fn accesses_of_the_wrong_width_direction_or_place_are_refused() {
    let (mut dev, mut mem) = device();
    let width = |offset, size| Err(MmioError::BadWidth { offset, size });
    assert_eq!(dev.read(reg::STATUS, 2), width(reg::STATUS, 2));
    assert_eq!(dev.read(reg::STATUS + 2, 4), width(reg::STATUS + 2, 4));
    let write_magic = dev.write(&mut mem, reg::MAGIC_VALUE, 4, 0);
    assert_eq!(
        write_magic,
        Err(MmioError::WrongDirection(reg::MAGIC_VALUE))
    );
    let notify = dev.read(reg::QUEUE_NOTIFY, 4);
    assert_eq!(notify, Err(MmioError::WrongDirection(reg::QUEUE_NOTIFY)));
    assert_eq!(dev.read(0x0f0, 4), Err(MmioError::OutOfRange(0x0f0)));
    // Config space: its own widths, naturally aligned, read-only, 60 bytes for blk.
    assert_eq!(dev.read(reg::CONFIG, 8), Ok(64), "capacity in sectors");
    assert_eq!(dev.read(reg::CONFIG + 1, 2), width(reg::CONFIG + 1, 2));
    assert_eq!(
        dev.read(reg::CONFIG + 60, 4),
        Err(MmioError::OutOfRange(reg::CONFIG + 60))
    );
    let write_config = dev.write(&mut mem, reg::CONFIG, 8, 1);
    assert_eq!(write_config, Err(MmioError::WrongDirection(reg::CONFIG)));
    assert_eq!(dev.counters().mmio_errors, 8);
}

#[test]
fn doorbells_before_driver_ok_are_ignored_then_caught_up() {
    let (mut dev, mut mem) = device();
    let mut ring = TestQueue::new(&mem, 8);
    driver::negotiate(&mut dev, &mut mem, RING_FEATURES);
    driver::set_queue(&mut dev, &mut mem, 0, &ring);
    let head = flush(&mem, &mut ring);
    let early = dev.write(&mut mem, reg::QUEUE_NOTIFY, 4, 0);
    assert_eq!(early, Err(MmioError::NotNow(reg::QUEUE_NOTIFY)));
    assert_eq!(dev.counters().ignored_notifications, 1);
    assert!(!dev.has_pending());
    let running = driver::read(&mut dev, reg::STATUS) | status::DRIVER_OK;
    driver::write(&mut dev, &mut mem, reg::STATUS, running);
    assert!(dev.has_pending(), "DRIVER_OK looks at the rings");
    dev.process(&mut mem, &mut ());
    assert_eq!(ring.used(), [(u32::from(head), 1)]);
    assert_eq!(
        driver::read(&mut dev, reg::INTERRUPT_STATUS),
        INT_USED_BUFFER
    );
    assert!(dev.take_interrupt() && !dev.take_interrupt(), "one edge");
    driver::write(&mut dev, &mut mem, reg::INTERRUPT_ACK, INT_USED_BUFFER);
    assert!(!dev.interrupt_level());
}

#[test]
fn a_broken_ring_lets_go_of_its_rings_and_asks_for_a_reset() {
    let (mut dev, mut mem) = device();
    let mut ring = TestQueue::new(&mem, 8);
    driver::bring_up(&mut dev, &mut mem, RING_FEATURES, &[&ring]);
    // A chain that loops back on itself.
    let head = ring.add_chain(&[(16, false), (1, true)]);
    let looping = Descriptor {
        addr: ring.buffers(head)[1].addr,
        len: 1,
        flags: DESC_F_NEXT,
        next: head,
    };
    ring.set_descriptor(head + 1, looping);
    driver::write(&mut dev, &mut mem, reg::QUEUE_NOTIFY, 0);
    let outcome = dev.process(&mut mem, &mut ());
    assert_eq!(outcome.broken, Some(QueueError::ChainLoop));
    assert_ne!(dev.status() & status::NEEDS_RESET, 0);
    assert_eq!(
        driver::read(&mut dev, reg::INTERRUPT_STATUS),
        INT_CONFIG_CHANGE
    );
    assert_eq!(mem.live_mappings(), 0, "rings released at once");
    assert_eq!(driver::read(&mut dev, reg::QUEUE_READY), 0);
    assert!(ring.used().is_empty());
}

#[test]
fn a_queue_size_past_16_bits_is_refused_not_truncated() {
    let (mut dev, mut mem) = device();
    let ring = TestQueue::new(&mem, 8);
    driver::negotiate(&mut dev, &mut mem, RING_FEATURES);
    driver::set_queue(&mut dev, &mut mem, 0, &ring);
    driver::write(&mut dev, &mut mem, reg::QUEUE_READY, 0);
    // 0x1_0008 is no queue size, whatever its low half says.
    driver::write(&mut dev, &mut mem, reg::QUEUE_NUM, 0x1_0008);
    driver::write(&mut dev, &mut mem, reg::QUEUE_READY, 1);
    assert_eq!(driver::read(&mut dev, reg::QUEUE_READY), 0);
    assert_ne!(dev.status() & status::NEEDS_RESET, 0);
    assert_eq!(mem.live_mappings(), 0);
}
