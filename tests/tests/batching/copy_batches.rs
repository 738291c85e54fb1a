//! The copy route's batching: a pass's headers, data and status bytes each moved in
//! one grant copy per 32 pieces, a split header, requests on the same sectors taking
//! effect in order, and multi-page requests gathered 32 pages a copy.

use crate::rig::{copy_calls, write_and_read_back, Rig, DATA, T_IN, T_OUT};
use devices::grant::PAGE_SIZE;
use stubvirt_tests::scenario;

#[test]
fn copy_route_moves_the_headers_data_and_statuses_of_a_pass_in_one_copy_per_32() {
    // The headers of a pass one copy per 32, their data pages (one a request here) one
    // copy per 32, and their status bytes one per 32; a lone request's are its own read,
    // data copy and write. Reads and writes alike.
    for (depth, calls) in [(1, 3), (2, 1 + 1 + 1), (32, 1 + 1 + 1), (64, 2 + 2 + 2)] {
        let mut rig = Rig::copied(2 * depth);
        let (writes, reads) = write_and_read_back(&mut rig, depth);
        assert_eq!((writes, reads), (calls, calls), "QD {depth}");
        assert_eq!(rig.queue.used_idx() as usize, 2 * depth);
        scenario::assert_no_violations();
    }
}

#[test]
fn a_header_across_a_page_boundary_is_read_ahead_as_two_pieces() {
    // 32 headers of 33 pieces: two header copies. Two spare pages for the split header.
    let mut rig = Rig::copied(2 * 32 + 2);
    let spare = (DATA + 2 * 32) * PAGE_SIZE;
    for i in 0..32 {
        rig.fill(DATA + i, 1, i as u8 + 1);
        rig.place(T_OUT, 8 * i as u64, DATA + i, 1, false);
    }
    rig.raw.notify(0);
    rig.slot = 0;
    rig.next_desc = 0;
    for i in 0..32 {
        if i == 7 {
            // The header's first 8 bytes end the spare page, the rest start the next.
            let mut header = [0u8; 16];
            header[8..].copy_from_slice(&(8 * i as u64).to_le_bytes());
            rig.mem.write(spare + PAGE_SIZE - 8, &header);
            let at = rig.mem.dma(spare + PAGE_SIZE - 8);
            rig.place_with_header_at(T_IN, 0, DATA + 32 + i, at);
        } else {
            rig.place(T_IN, 8 * i as u64, DATA + 32 + i, 1, false);
        }
    }
    // Two header copies, one data copy, one status copy.
    let (calls, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!((calls, refused), (2 + 1 + 1, 0));
    for i in 0..32 {
        assert_eq!(rig.status_of(i), 0, "request {i}");
        assert_eq!(
            rig.mem.read((DATA + 32 + i) * PAGE_SIZE, PAGE_SIZE),
            vec![i as u8 + 1; PAGE_SIZE],
            "request {i}"
        );
    }
    scenario::assert_no_violations();
}

#[test]
fn copy_route_requests_of_one_pass_on_the_same_sectors_take_effect_in_order() {
    let mut rig = Rig::copied(5);
    // Sector 16 holds 0x77 before the pass.
    rig.fill(DATA, 1, 0x77);
    rig.place(T_OUT, 16, DATA, 1, false);
    rig.raw.notify(0);
    rig.slot = 0;
    rig.next_desc = 0;
    // One pass: a read of sector 16, a write of new bytes to it, a read of it again,
    // a write of other bytes from the page the first read filled (to sector 24).
    rig.fill(DATA + 1, 1, 0);
    rig.fill(DATA + 2, 1, 0x99);
    rig.fill(DATA + 3, 1, 0);
    let first_read = rig.place(T_IN, 16, DATA + 1, 1, false);
    let write = rig.place(T_OUT, 16, DATA + 2, 1, false);
    let second_read = rig.place(T_IN, 16, DATA + 3, 1, false);
    let copy_on = rig.place(T_OUT, 24, DATA + 1, 1, false);
    // Headers and statuses one copy each; the data in four: each change of direction
    // copies what was gathered first.
    let (calls, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!((calls, refused), (1 + 4 + 1, 0));
    for slot in [first_read, write, second_read, copy_on] {
        assert_eq!(rig.status_of(slot), 0, "request {slot}");
    }
    let page = |rig: &Rig, n: usize| rig.mem.read((DATA + n) * PAGE_SIZE, PAGE_SIZE);
    assert_eq!(
        page(&rig, 1),
        vec![0x77; PAGE_SIZE],
        "the read before the write"
    );
    assert_eq!(
        page(&rig, 3),
        vec![0x99; PAGE_SIZE],
        "the read after the write"
    );
    rig.slot = 0;
    rig.next_desc = 0;
    rig.place(T_IN, 24, DATA + 4, 1, false);
    rig.raw.notify(0);
    assert_eq!(
        page(&rig, 4),
        vec![0x77; PAGE_SIZE],
        "written from what was read"
    );
    scenario::assert_no_violations();
}

#[test]
fn copy_route_gathers_the_data_of_multi_page_requests_32_pages_a_copy() {
    // 32 requests of 16 pages (indirect, as Linux sends 64 KiB). A chain touches 19
    // pages (table, header, data, status), so a batch's 520 take 27 chains and the next
    // the other 5: 432 data pages in 14 copies of up to 32, then 80 in 3.
    let mut rig = Rig::copied(2 * 32 * 16);
    for i in 0..32 {
        rig.fill(DATA + 16 * i, 16, i as u8 + 1);
        rig.place(T_OUT, 128 * i as u64, DATA + 16 * i, 16, true);
    }
    let (writes, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!(refused, 0);
    rig.slot = 0;
    rig.next_desc = 0;
    for i in 0..32 {
        rig.place(T_IN, 128 * i as u64, DATA + 16 * (32 + i), 16, true);
    }
    let (reads, refused) = copy_calls(|| rig.raw.notify(0));
    assert_eq!(refused, 0);
    for i in 0..32 {
        assert_eq!(rig.status_of(i), 0, "request {i}");
        let at = (DATA + 16 * (32 + i)) * PAGE_SIZE;
        assert_eq!(
            rig.mem.read(at, 16 * PAGE_SIZE),
            vec![i as u8 + 1; 16 * PAGE_SIZE]
        );
    }
    // Per batch one header and one status copy.
    assert_eq!((writes, reads), (2 + 14 + 3 + 2, 2 + 14 + 3 + 2));
    scenario::assert_no_violations();
}
