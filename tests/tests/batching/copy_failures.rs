//! The copy route's failures: a header, data page or status byte Xen refuses (or a
//! failed group copy) fails only its own request, the others falling back to their
//! own copies.

use crate::rig::{copy_calls, write_and_read_back, Rig, DATA, T_IN, T_OUT};
use devices::grant::{GrantAddress, GrantRef, PAGE_SIZE};
use devices::queue::{DESC_F_NEXT, DESC_F_WRITE};
use stubvirt_tests::rings::Granted;
use stubvirt_tests::scenario::{self, FRONTEND};
use stubvirt_tests::world;

/// Fails the `nth` copy hypercall from now (0: the next).
fn fail_copy(nth: u64) {
    world::with(|w| w.faults.copy_countdown = Some(nth));
}

/// Reads of pages written by `write_and_read_back(rig, 8)`, placed (not notified): the
/// header of request `bad_header`, if any, names a grant that was never made.
fn place_reads(rig: &mut Rig, bad_header: Option<usize>) {
    let never_granted = GrantAddress::encode(GrantRef(4_000_000), 0);
    for i in 0..8 {
        rig.fill(DATA + 8 + i, 1, 0);
        if bad_header == Some(i) {
            rig.place_with_header_at(T_IN, 8 * i as u64, DATA + 8 + i, never_granted);
        } else {
            rig.place(T_IN, 8 * i as u64, DATA + 8 + i, 1, false);
        }
    }
}

/// Request `i` of `place_reads` read what was written (status OK), or failed (IOERR)
/// without touching its buffer.
fn assert_reads(rig: &mut Rig, failed: &[usize]) {
    for i in 0..8 {
        let (status, byte) = if failed.contains(&i) {
            (1, 0)
        } else {
            (0, i as u8 + 1)
        };
        assert_eq!(rig.status_of(i), status, "request {i}");
        assert_eq!(
            rig.mem.read((DATA + 8 + i) * PAGE_SIZE, PAGE_SIZE),
            vec![byte; PAGE_SIZE],
            "request {i}"
        );
    }
    rig.slot = 0;
    rig.next_desc = 0;
}

#[test]
fn a_header_xen_refuses_fails_only_its_request_in_a_batch() {
    let mut rig = Rig::copied(16);
    write_and_read_back(&mut rig, 8);
    place_reads(&mut rig, Some(5));
    // The group copy is refused; each header is then read by its own request, the
    // bad one refused again: 1 + 8 headers, the 7 data pages together, the 8 statuses
    // together.
    let (calls, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!((calls, refused), (1 + 8 + 1 + 1, 2));
    assert_reads(&mut rig, &[5]);
    // The next batch is served as usual.
    place_reads(&mut rig, None);
    assert_eq!(copy_calls(|| rig.raw.notify(0)), (1 + 1 + 1, 0));
    assert_reads(&mut rig, &[]);
    scenario::assert_no_violations();
}

#[test]
fn a_failed_header_copy_falls_back_to_each_requests_own_read() {
    let mut rig = Rig::copied(16);
    write_and_read_back(&mut rig, 8);
    // The pass's first copy, the group's, fails: every request reads its own header
    // (never stale bytes of the previous batch's writes, nor zeros: those would be
    // writes, or reads of sector 0) and succeeds.
    place_reads(&mut rig, None);
    fail_copy(0);
    let (calls, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!((calls, refused), (1 + 8 + 1 + 1, 1));
    assert_reads(&mut rig, &[]);
    // With request 5's header never granted the group fails; request 1's own header
    // read (the pass's copy 2, after the group's and request 0's header) is failed too:
    // only those two fail, the other 6 data pages go together.
    place_reads(&mut rig, Some(5));
    fail_copy(2);
    let (calls, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!((calls, refused), (1 + 8 + 1 + 1, 3));
    assert_reads(&mut rig, &[1, 5]);
    assert_eq!(world::with(|w| w.faults.copy_countdown), None);
    scenario::assert_no_violations();
}

#[test]
fn a_failed_status_copy_falls_back_to_each_requests_own_write() {
    let mut rig = Rig::copied(16);
    write_and_read_back(&mut rig, 8);
    // The pass's copies: the headers' (0), the data's (1), the statuses' (2), failed:
    // each status is then written by itself.
    place_reads(&mut rig, None);
    fail_copy(2);
    let (calls, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!((calls, refused), (1 + 1 + 1 + 8, 1));
    assert_reads(&mut rig, &[]);
    for n in 0..8 {
        assert_eq!(
            rig.queue.used(16 + n).1,
            PAGE_SIZE as u32 + 1,
            "request {n}"
        );
    }
    scenario::assert_no_violations();
}

#[test]
fn a_status_byte_xen_refuses_fails_only_its_request() {
    let mut rig = Rig::copied(16);
    write_and_read_back(&mut rig, 8);
    let read_only = Granted::new(FRONTEND, 1, true);
    let errors_before = rig.request_errors();
    place_reads(&mut rig, None);
    // Request 3's status descriptor (direct chains of three) names a page granted
    // read-only: the statuses' group copy is refused, each status is then written by
    // itself, and only request 3's is refused again.
    rig.queue
        .set_desc(3 * 3 + 2, read_only.dma(0), 1, DESC_F_WRITE, 0);
    let (calls, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!((calls, refused), (1 + 1 + 1 + 8, 2));
    for n in 0..8u16 {
        let expected = if n == 3 { 0 } else { PAGE_SIZE as u32 + 1 };
        assert_eq!(rig.queue.used(16 + n).1, expected, "request {n}");
        if n != 3 {
            assert_eq!(rig.status_of(usize::from(n)), 0, "request {n}");
        }
    }
    assert_eq!(
        read_only.read(0, 1),
        vec![0],
        "a read-only grant is never written"
    );
    assert_eq!(rig.request_errors() - errors_before, 1);
    scenario::assert_no_violations();
}

/// Points the data descriptor of request `n` of a batch of direct one-page chains (three
/// descriptors each, as `place` lays them) at `addr`.
fn redirect_data(rig: &mut Rig, n: u16, addr: u64, kind: u32) {
    let flags = if kind == T_IN { DESC_F_WRITE } else { 0 };
    rig.queue.set_desc(
        3 * n + 1,
        addr,
        PAGE_SIZE as u32,
        flags | DESC_F_NEXT,
        3 * n + 2,
    );
}

#[test]
fn a_data_copy_xen_refuses_fails_only_its_request_in_a_batch() {
    let mut rig = Rig::copied(16);
    write_and_read_back(&mut rig, 8);
    // Request 5's buffer was granted, then revoked before the queue ran: the data
    // group's copy is refused, each request's data is then copied by itself, and only
    // request 5's is refused again.
    let revoked = Granted::new(FRONTEND, 1, false);
    revoked.revoke();
    let errors_before = rig.request_errors();
    place_reads(&mut rig, None);
    redirect_data(&mut rig, 5, revoked.dma(0), T_IN);
    let (calls, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!((calls, refused), (1 + 1 + 8 + 1, 2));
    for n in 0..8u16 {
        let expected = if n == 5 { 1 } else { PAGE_SIZE as u32 + 1 };
        assert_eq!(rig.queue.used(16 + n).1, expected, "request {n}");
    }
    assert_reads(&mut rig, &[5]);
    assert_eq!(rig.request_errors() - errors_before, 1);

    // The same for writes: request 2's source page revoked. The others reach the disk,
    // request 2's sectors are not written (Xen refused the copy into them).
    for i in 0..8 {
        rig.fill(DATA + i, 1, 0xa0 + i as u8);
        rig.place(T_OUT, 8 * i as u64, DATA + i, 1, false);
    }
    redirect_data(&mut rig, 2, revoked.dma(0), T_OUT);
    let (calls, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!((calls, refused), (1 + 1 + 8 + 1, 2));
    assert_eq!(rig.request_errors() - errors_before, 2);
    for i in 0..8 {
        assert_eq!(rig.status_of(i), u8::from(i == 2), "write {i}");
    }
    rig.slot = 0;
    rig.next_desc = 0;
    place_reads(&mut rig, None);
    assert_eq!(copy_calls(|| rig.raw.notify(0)), (1 + 1 + 1, 0));
    for i in 0..8 {
        let want = if i == 2 { 3 } else { 0xa0 + i as u8 };
        assert_eq!(
            rig.mem.read((DATA + 8 + i) * PAGE_SIZE, PAGE_SIZE),
            vec![want; PAGE_SIZE],
            "sector {}",
            8 * i
        );
    }
    scenario::assert_no_violations();
}

#[test]
fn a_read_into_a_read_only_grant_fails_only_its_request_in_a_batch() {
    let mut rig = Rig::copied(16);
    write_and_read_back(&mut rig, 8);
    // Request 6 reads into a page the driver granted read-only: Xen refuses the copy into
    // it, in the group and again by itself; the page is never written.
    let read_only = Granted::new(FRONTEND, 1, true);
    read_only.write(0, &[0x5a; PAGE_SIZE]);
    place_reads(&mut rig, None);
    redirect_data(&mut rig, 6, read_only.dma(0), T_IN);
    let (calls, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!((calls, refused), (1 + 1 + 8 + 1, 2));
    assert_eq!(read_only.read(0, PAGE_SIZE), vec![0x5a; PAGE_SIZE]);
    assert_eq!(rig.queue.used(16 + 6).1, 1, "status byte only");
    assert_reads(&mut rig, &[6]);
    scenario::assert_no_violations();
}
