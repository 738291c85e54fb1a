//! A disk that takes several transfers at once (the host's physical disk; here
//! `QueuedDisk`, which ends them late and out of order): the reads and writes of a batch
//! are all in flight together, each ends within its batch, a failed one fails only its
//! request, and a flush or a request too large for the free room waits for the next pass.

use crate::rig::{write_and_read_back, Rig, DATA, T_IN, T_OUT};
use devices::blk::{STATUS_IOERR, STATUS_OK};
use devices::grant::PAGE_SIZE;
use std::rc::Rc;
use stubvirt_tests::queued_disk::{QueuedDisk, TransferLog};
use stubvirt_tests::scenario::FRONTEND;

const T_FLUSH: u32 = 4;
const CHUNK: usize = 64 * 1024;

fn rig(room: usize, chunk: usize, copied: bool) -> (Rig, Rc<TransferLog>) {
    let disk = QueuedDisk::new(8192, room, chunk);
    let log = disk.log.clone();
    let rig = Rig::over(Box::new(disk), 64);
    if copied {
        rig.machine.borrow_mut().frontends.copy_buffers(FRONTEND);
    }
    (rig, log)
}

/// Makes what was placed available with one notification; nothing stays in flight.
fn serve(rig: &mut Rig, log: &TransferLog) {
    rig.raw.notify(0);
    assert_eq!(log.in_flight.get(), 0, "a transfer outlived its pass");
    rig.slot = 0;
    rig.next_desc = 0;
}

#[test]
fn the_requests_of_a_batch_are_in_flight_together_and_may_end_out_of_order() {
    for copied in [false, true] {
        let (mut rig, log) = rig(16, CHUNK, copied);
        // Checks every status and the data read back.
        write_and_read_back(&mut rig, 8);
        assert_eq!(log.in_flight.get(), 0);
        assert_eq!(log.most_in_flight.get(), 8, "copied={copied}");
        let started = log.started.borrow().clone();
        let mut ended = log.ended.borrow().clone();
        assert_ne!(ended, started, "the disk ended them newest first");
        ended.sort_unstable();
        let mut expected = started;
        expected.sort_unstable();
        assert_eq!(ended, expected, "every transfer ended once");
    }
}

#[test]
fn a_request_larger_than_a_chunk_is_in_flight_as_one_transfer_per_chunk() {
    let (mut rig, log) = rig(16, PAGE_SIZE, false);
    let pattern: Vec<u8> = (0..4 * PAGE_SIZE).map(|i| (i / 7) as u8).collect();
    rig.mem.write(DATA * PAGE_SIZE, &pattern);
    rig.place(T_OUT, 40, DATA, 4, true);
    serve(&mut rig, &log);
    assert_eq!(rig.status_of(0), STATUS_OK);
    assert_eq!(log.most_in_flight.get(), 4);
    rig.fill(DATA + 4, 4, 0);
    rig.place(T_IN, 40, DATA + 4, 4, false);
    serve(&mut rig, &log);
    assert_eq!(rig.status_of(0), STATUS_OK);
    assert_eq!(rig.mem.read((DATA + 4) * PAGE_SIZE, 4 * PAGE_SIZE), pattern);
}

#[test]
fn a_failed_transfer_fails_only_its_request() {
    let (mut rig, log) = rig(16, CHUNK, false);
    write_and_read_back(&mut rig, 6);
    let errors = rig.request_errors();
    // Request 3 reads sector 24.
    log.fail_at.set(Some(24 * 512 + 100));
    for i in 0..6 {
        rig.fill(DATA + 6 + i, 1, 0);
        rig.place(T_IN, 8 * i as u64, DATA + 6 + i, 1, false);
    }
    serve(&mut rig, &log);
    for i in 0..6 {
        let (status, byte) = if i == 3 {
            (STATUS_IOERR, 0)
        } else {
            (STATUS_OK, i as u8 + 1)
        };
        assert_eq!(rig.status_of(i), status, "request {i}");
        let read = rig.mem.read((DATA + 6 + i) * PAGE_SIZE, PAGE_SIZE);
        if i != 3 {
            assert_eq!(read, vec![byte; PAGE_SIZE], "request {i}");
        }
    }
    assert_eq!(rig.request_errors(), errors + 1);
    // The disk mends: the same queue serves the request again.
    log.fail_at.set(None);
    rig.place(T_IN, 24, DATA + 9, 1, false);
    serve(&mut rig, &log);
    assert_eq!(rig.status_of(0), STATUS_OK);
    assert_eq!(
        rig.mem.read((DATA + 9) * PAGE_SIZE, PAGE_SIZE),
        vec![4; PAGE_SIZE]
    );
}

#[test]
fn a_flush_waits_for_the_writes_in_flight_before_it() {
    let (mut rig, log) = rig(16, CHUNK, false);
    for i in 0..6 {
        rig.fill(DATA + i, 1, 0x10 + i as u8);
    }
    for i in 0..4 {
        rig.place(T_OUT, 8 * i as u64, DATA + i, 1, false);
    }
    rig.place(T_FLUSH, 0, DATA, 0, false);
    for i in 4..6 {
        rig.place(T_OUT, 8 * i as u64, DATA + i, 1, false);
    }
    serve(&mut rig, &log);
    for i in 0..7 {
        assert_eq!(rig.status_of(i), STATUS_OK, "request {i}");
    }
    // The disk's own flush asserts no transfer is in flight.
    assert_eq!(
        *log.flushes.borrow(),
        [4],
        "after the four writes before it"
    );
    assert_eq!(log.ended.borrow().len(), 6);
    assert_eq!(log.most_in_flight.get(), 4);
}

#[test]
fn a_request_larger_than_the_free_room_waits_then_goes_whole() {
    let (mut rig, log) = rig(4, PAGE_SIZE, false);
    let pattern: Vec<u8> = (0..8 * PAGE_SIZE).map(|i| (i / 3) as u8).collect();
    rig.mem.write((DATA + 1) * PAGE_SIZE, &pattern);
    rig.fill(DATA, 1, 0xaa);
    // One transfer in flight; the next request needs 8 of a room of 4: it waits for the
    // next pass and is then written whole (the disk asserts nothing is in flight).
    rig.place(T_OUT, 0, DATA, 1, false);
    rig.place(T_OUT, 8, DATA + 1, 8, true);
    serve(&mut rig, &log);
    assert_eq!((rig.status_of(0), rig.status_of(1)), (STATUS_OK, STATUS_OK));
    assert_eq!(log.most_in_flight.get(), 1);
    rig.fill(DATA + 9, 9, 0);
    rig.place(T_IN, 0, DATA + 9, 9, true);
    serve(&mut rig, &log);
    assert_eq!(rig.status_of(0), STATUS_OK);
    assert_eq!(
        rig.mem.read((DATA + 9) * PAGE_SIZE, PAGE_SIZE),
        vec![0xaa; PAGE_SIZE]
    );
    assert_eq!(
        rig.mem.read((DATA + 10) * PAGE_SIZE, 8 * PAGE_SIZE),
        pattern
    );
}
