//! Fault injection: every error Xen can return at the backend's grant hypercalls, failed
//! interrupt injection, storage failures, flooding and silent frontends. Each request
//! completes with the status that tells the truth, what was mapped is unmapped, and the
//! device keeps serving.

use devices::blk::backend::RamDisk;
use devices::blk::{STATUS_IOERR, STATUS_OK};
use devices::ioreq::STATE_IORESP_READY;
use devices::memory::MapError;
use devices::mmio::{reg, status};
use std::rc::Rc;
use stubvirt_tests::blk_fixture::*;
use stubvirt_tests::faulty_disk::{FaultPlan, FaultyDisk};
use stubvirt_tests::scenario::{self, Rng, FRONTEND};
use stubvirt_tests::world;

const MAP_ERRORS: [MapError; 6] = [
    MapError::BadGrantRef,
    MapError::PermissionDenied,
    MapError::NoSpace,
    MapError::Again,
    MapError::BadDomain,
    MapError::Other(-1),
];

#[test]
fn every_map_error_on_a_data_page_gives_ioerr_and_leaks_nothing() {
    for error in MAP_ERRORS {
        let mut f = BlkFixture::new(0);
        world::with(|w| {
            let gref = f.mem.gref + (DATA / 4096) as u32;
            w.faults.map_errors.insert(gref, error);
        });
        f.request(0, T_IN, 0, (f.mem.dma(DATA), 512), true);
        assert_eq!(f.status_of(0), STATUS_IOERR, "{error:?}");
        world::with(|w| w.faults.map_errors.clear());
        f.assert_only_rings_mapped();
        f.assert_queue_serves(0);
        f.assert_no_violations();
    }
}

#[test]
fn partial_failure_inside_a_batch_unmaps_the_rest() {
    // The request maps header, data (2 pages) and status in one batch; fail each entry in turn.
    for nth in 0..4u64 {
        let mut f = BlkFixture::new(0);
        world::with(|w| w.faults.map_entry_countdown = Some((nth, MapError::Again)));
        f.request(0, T_IN, 0, (f.mem.dma(DATA + 2048), 4096), true);
        let used = f.last_used(0);
        if nth == 3 {
            // The status byte itself could not be mapped: nothing to report it in.
            assert_eq!(used, Some((0, 0)), "entry {nth}");
            assert_eq!(f.status_of(0), 0xff);
        } else {
            assert_eq!(f.status_of(0), STATUS_IOERR, "entry {nth}");
        }
        f.assert_only_rings_mapped();
        f.assert_queue_serves(0);
        f.assert_no_violations();
    }
}

#[test]
fn map_failure_while_setting_up_rings_needs_reset_and_holds_nothing() {
    let f = BlkFixture::new(0);
    f.raw.negotiate(
        devices::features::VERSION_1
            | devices::features::ACCESS_PLATFORM
            | devices::features::blk::MQ,
    );
    let q = stubvirt_tests::rings::RawQueue::new(FRONTEND, QUEUE_SIZE);
    // Desc and avail map; the used ring's page fails.
    world::with(|w| w.faults.map_entry_countdown = Some((2, MapError::NoSpace)));
    f.raw.setup_queue(0, &q, QUEUE_SIZE);
    assert_eq!(f.raw.read(reg::QUEUE_READY), 0);
    assert_ne!(f.device_status() & status::NEEDS_RESET, 0);
    assert_eq!(
        f.counters().pages_held(),
        0,
        "desc and avail were unmapped again"
    );
    assert_eq!(
        world::with(|w| w.live_mappings()),
        3,
        "only device 1's rings"
    );
}

#[test]
fn refused_unmaps_are_counted_and_the_request_still_completes() {
    let mut f = BlkFixture::new(0);
    world::with(|w| w.faults.unmap_refusals = 2);
    f.mem.write(DATA, &[7u8; 512]);
    f.request(0, T_OUT, 1, (f.mem.dma(DATA), 512), false);
    assert_eq!(f.status_of(0), STATUS_OK, "the data reached the disk");
    let c = f.counters();
    assert_eq!(c.unmap_failures, 2);
    // Xen kept the two refused mappings; the device reported them, and holds no others.
    assert_eq!(
        world::with(|w| w.live_mappings()) as u64,
        9 + c.unmap_failures
    );
    f.assert_queue_serves(0);
}

#[test]
fn failed_interrupt_injection_is_retried() {
    let mut f = BlkFixture::new(0);
    let spi = devices::topology::FIRST_SPI;
    let before = f.machine.borrow().interrupts_for(FRONTEND, spi);
    f.machine.borrow_mut().irq_refusals = 1;
    f.request(0, T_FLUSH, 0, (f.mem.dma(DATA), 0), false);
    assert_eq!(f.status_of(0), STATUS_OK);
    // The refusal happened; the retry in the next round delivered it.
    f.machine.borrow_mut().run_until_idle();
    assert_eq!(f.counters().interrupts_deferred, 1);
    assert_eq!(f.machine.borrow().interrupts_for(FRONTEND, spi), before + 1);
}

#[test]
fn failed_vcpu_notification_is_owed_and_retried_without_stalling_other_vcpus() {
    let mut f = BlkFixture::new(0);
    let (base, _) = scenario::window(0);
    let mut m = f.machine.borrow_mut();
    let (served, _) = m.vcpu_state(FRONTEND, 0).expect("vcpu 0");
    let ioreqs = m.ioreq_stats.ioreqs;
    m.refuse_notifications(FRONTEND, 0, 2);
    m.post(FRONTEND, 0, base + reg::MAGIC_VALUE, 4, false, 0);
    assert_eq!(m.serve_slots(), 1);
    // Answered, but the vcpu sleeps until a notification reaches it.
    assert_eq!(
        m.slot(FRONTEND, 0).map(|s| s.state),
        Some(STATE_IORESP_READY)
    );
    assert_eq!(m.try_collect(FRONTEND, 0), None);
    assert_eq!(m.vcpu_state(FRONTEND, 0), Some((served + 1, true)));
    // The other vcpu is served while the retry fails once more.
    m.post(FRONTEND, 1, base + reg::VERSION, 4, false, 0);
    assert_eq!(m.serve_slots(), 1);
    assert_eq!(m.collect(FRONTEND, 1), 2);
    assert_eq!(m.try_collect(FRONTEND, 0), None);
    // The next pass delivers the owed notification; the access is not served twice.
    assert_eq!(m.serve_slots(), 0);
    assert_eq!(m.collect(FRONTEND, 0), 0x7472_6976);
    assert_eq!(m.vcpu_state(FRONTEND, 0), Some((served + 1, false)));
    assert_eq!(m.ioreq_stats.notify_failures, 2);
    assert_eq!(m.ioreq_stats.ioreqs, ioreqs + 2);
    drop(m);
    f.assert_queue_serves(0);
}

#[test]
fn a_register_write_whose_notification_failed_takes_effect_once() {
    let mut f = BlkFixture::new(0);
    let (base, _) = scenario::window(0);
    let doorbells = |c: devices::counters::Counters| c.notifications + c.ignored_notifications;
    let before = doorbells(f.counters());
    let mut m = f.machine.borrow_mut();
    m.refuse_notifications(FRONTEND, 1, 1);
    m.post(FRONTEND, 1, base + reg::QUEUE_NOTIFY, 4, true, 0);
    m.serve_slots();
    m.run_until_idle();
    assert_eq!(m.try_collect(FRONTEND, 1), None);
    m.serve_slots();
    m.run_until_idle();
    m.collect(FRONTEND, 1);
    drop(m);
    assert_eq!(doorbells(f.counters()), before + 1);
    f.assert_queue_serves(0);
}

fn faulty() -> (BlkFixture, Rc<FaultPlan>) {
    let plan = Rc::new(FaultPlan::default());
    let disk = FaultyDisk {
        disk: RamDisk::new(SECTORS, "faulty"),
        plan: plan.clone(),
    };
    (BlkFixture::with_disk(0, Box::new(disk)), plan)
}

#[test]
fn storage_failures_answer_ioerr_and_the_device_recovers() {
    let (mut f, plan) = faulty();
    plan.fail_reads.set(1);
    f.request(0, T_IN, 0, (f.mem.dma(DATA), 512), true);
    assert_eq!(f.status_of(0), STATUS_IOERR);
    plan.fail_writes.set(1);
    f.request(0, T_OUT, 0, (f.mem.dma(DATA), 512), false);
    assert_eq!(f.status_of(0), STATUS_IOERR);
    plan.fail_flushes.set(1);
    f.request(0, T_FLUSH, 0, (f.mem.dma(DATA), 0), false);
    assert_eq!(f.status_of(0), STATUS_IOERR);
    plan.short_io.set(1);
    f.request(0, T_IN, 0, (f.mem.dma(DATA), 1024), true);
    assert_eq!(f.status_of(0), STATUS_IOERR, "short read");
    assert_eq!(
        f.last_used(0),
        Some((0, 1)),
        "a failed read reports no data bytes"
    );
    assert_eq!(f.counters().storage_errors, 4);
    f.assert_only_rings_mapped();
    f.assert_queue_serves(0);
    f.assert_no_violations();
}

/// Random writes, reads and flushes with random storage and grant faults, checked against
/// a shadow: a write acknowledged OK is on the disk after FLUSH; a failed request changed
/// nothing unless it failed inside the storage layer mid-write (then its range is unknown
/// until rewritten).
#[test]
fn acknowledged_writes_survive_and_failed_requests_change_nothing_they_claim_not_to() {
    random_requests_against_a_shadow(false);
}

/// The same with request buffers by grant copy (the kernel's default) and failed copy
/// hypercalls among the faults. A write whose status copy failed was written but never
/// said so (its status byte stays as the driver left it): its range is unknown.
#[test]
fn acknowledged_writes_survive_with_the_copy_route_and_failed_copies() {
    random_requests_against_a_shadow(true);
}

/// Status byte the driver leaves before each request: still there afterwards means the
/// device's status copy failed.
const NO_STATUS: u8 = 0xff;

fn random_requests_against_a_shadow(copy: bool) {
    let (mut f, plan) = faulty();
    if copy {
        f.machine.borrow_mut().frontends.copy_buffers(FRONTEND);
    }
    let mut rng = Rng::new(99);
    let mut shadow = vec![0u8; (SECTORS * 512) as usize];
    let mut unknown = vec![false; SECTORS as usize];
    let (mut ok, mut failed) = (0, 0);
    for round in 0..400 {
        let sectors = 1 + rng.below(8) as usize;
        let start = rng.below(SECTORS - sectors as u64 + 1) as usize;
        let bytes = sectors * 512;
        match rng.below(10) {
            0 => plan.fail_writes.set(1),
            1 => plan.short_io.set(1),
            2 => world::with(|w| {
                w.faults.map_entry_countdown = Some((rng.below(4), MapError::Again))
            }),
            3 if copy => world::with(|w| w.faults.copy_countdown = Some(rng.below(3))),
            _ => {}
        }
        f.mem.write(STATUS, &[NO_STATUS]);
        let write = rng.below(2) == 0;
        if write {
            let mut data = vec![0u8; bytes];
            rng.fill(&mut data);
            f.mem.write(DATA, &data);
            let storage_errors = f.counters().storage_errors;
            f.request(
                0,
                T_OUT,
                start as u64,
                (f.mem.dma(DATA), bytes as u32),
                false,
            );
            let status = f.status_of(0);
            let range = start * 512..start * 512 + bytes;
            if status == NO_STATUS {
                unknown[start..start + sectors]
                    .iter_mut()
                    .for_each(|u| *u = true);
            } else if status == STATUS_OK {
                shadow[range].copy_from_slice(&data);
                unknown[start..start + sectors]
                    .iter_mut()
                    .for_each(|u| *u = false);
                ok += 1;
            } else {
                failed += 1;
                if f.counters().storage_errors > storage_errors {
                    // The storage layer failed mid-write: part of the range may be new.
                    unknown[start..start + sectors]
                        .iter_mut()
                        .for_each(|u| *u = true);
                }
                // Otherwise (grant or validation failure) the range must be unchanged,
                // which the shadow, left as it was, checks on every later read.
            }
        } else {
            f.mem.write(DATA, &vec![0u8; bytes]);
            f.request(0, T_IN, start as u64, (f.mem.dma(DATA), bytes as u32), true);
            if f.status_of(0) == STATUS_OK {
                let got = f.mem.read(DATA, bytes);
                for s in 0..sectors {
                    let sector = start + s;
                    if !unknown[sector] {
                        assert_eq!(
                            &got[s * 512..(s + 1) * 512],
                            &shadow[sector * 512..(sector + 1) * 512],
                            "round {round}: sector {sector}"
                        );
                    }
                }
            }
        }
        plan.fail_writes.set(0);
        plan.short_io.set(0);
        world::with(|w| {
            w.faults.map_entry_countdown = None;
            w.faults.copy_countdown = None;
        });
        if round % 50 == 49 {
            f.request(0, T_FLUSH, 0, (f.mem.dma(DATA), 0), false);
            assert_eq!(f.status_of(0), STATUS_OK);
        }
    }
    assert!(ok > 100 && failed > 20, "ok {ok} failed {failed}");
    f.assert_only_rings_mapped();
    f.assert_no_violations();
}

#[test]
fn a_flood_of_doorbells_does_no_work_without_chains() {
    let mut f = BlkFixture::new(0);
    let before = f.counters();
    for _ in 0..500 {
        f.raw.notify(0);
    }
    let after = f.counters();
    assert_eq!(after.notifications - before.notifications, 500);
    assert_eq!(after.requests, before.requests);
    assert_eq!(after.map_batches, before.map_batches);
    f.assert_queue_serves(0);
}

#[test]
fn a_frontend_that_never_rings_again_leaves_nothing_mapped() {
    let mut f = BlkFixture::new(0);
    let header = f.header(0, T_FLUSH, 0);
    let status_addr = f.status_addr(0);
    f.place(
        0,
        &[
            (header, 16, 0),
            (status_addr, 1, devices::queue::DESC_F_WRITE),
        ],
    );
    f.machine.borrow_mut().run_until_idle();
    assert_eq!(f.queues[0].used_idx(), 0, "no doorbell, no polling");
    f.assert_only_rings_mapped();
}

#[test]
fn one_busy_queue_cannot_starve_another_device() {
    use devices::device::QUOTA_PER_PASS;
    use devices::queue::{DESC_F_NEXT, DESC_F_WRITE};
    let machine = scenario::machine(&[FRONTEND]);
    scenario::add_ram_disk(
        &machine,
        FRONTEND,
        0,
        RamDisk::new(8, "busy"),
        Default::default(),
    );
    scenario::add_ram_disk(
        &machine,
        FRONTEND,
        1,
        RamDisk::new(8, "quiet"),
        Default::default(),
    );
    let features = devices::features::VERSION_1 | devices::features::ACCESS_PLATFORM;
    let mut queues = Vec::new();
    let mem = stubvirt_tests::rings::Granted::new(FRONTEND, 2, false);
    for n in 0..2u64 {
        let raw = stubvirt_tests::rings::RawDriver::new(&machine, FRONTEND, scenario::window(n).0);
        raw.negotiate(features);
        let q = stubvirt_tests::rings::RawQueue::new(FRONTEND, 256);
        raw.setup_queue(0, &q, 256);
        raw.driver_ok();
        queues.push((raw, q));
    }
    // 200 FLUSH chains on device 0 and one on device 1, all sharing one header and status.
    mem.write(0, &[4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    for (_, q) in queues.iter_mut() {
        q.set_desc(0, mem.dma(0), 16, DESC_F_NEXT, 1);
        q.set_desc(1, mem.dma(4096), 1, DESC_F_WRITE, 0);
    }
    for _ in 0..200 {
        queues[0].1.push(0);
    }
    queues[1].1.push(0);
    {
        // Both doorbells arrive (two vcpus), then the backend runs one round.
        let mut m = machine.borrow_mut();
        m.post(
            FRONTEND,
            0,
            scenario::window(0).0 + reg::QUEUE_NOTIFY,
            4,
            true,
            0,
        );
        m.post(
            FRONTEND,
            1,
            scenario::window(1).0 + reg::QUEUE_NOTIFY,
            4,
            true,
            0,
        );
        m.serve_slots();
        m.collect(FRONTEND, 0);
        m.collect(FRONTEND, 1);
        let more = m.run_once();
        assert!(more, "device 0 has work left after one round");
    }
    assert_eq!(
        queues[0].1.used_idx(),
        QUOTA_PER_PASS as u16,
        "one round serves one quota"
    );
    assert_eq!(
        queues[1].1.used_idx(),
        1,
        "device 1 served in the same round"
    );
    machine.borrow_mut().run_until_idle();
    assert_eq!(queues[0].1.used_idx(), 200);
    scenario::assert_no_violations();
}
