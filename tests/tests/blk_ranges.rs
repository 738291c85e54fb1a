//! DISCARD and WRITE_ZEROES from a hostile frontend: ranges that overlap or add up past the
//! device's limit are refused, and the bytes a pass may clear are bounded, so one ring of
//! range requests cannot keep the backend writing while every ioreq waits.

use devices::blk::backend::RamDisk;
use devices::blk::{PASS_BYTES, STATUS_IOERR, STATUS_OK};
use devices::queue::{DESC_F_NEXT, DESC_F_WRITE};
use stubvirt_tests::blk_fixture::{BlkFixture, DATA, T_DISCARD, T_IN, T_OUT, T_WRITE_ZEROES};

/// 32 MiB: one range request may clear all of it (65,536 sectors, the default limit).
const BIG_SECTORS: u64 = 1 << 16;

fn segment(sector: u64, count: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&sector.to_le_bytes());
    b.extend_from_slice(&count.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b
}

/// Device 0's first 4 KiB, read through queue 0.
fn first_page(f: &mut BlkFixture) -> Vec<u8> {
    f.mem.write(DATA + 8192, &[0x11; 4096]);
    f.request(0, T_IN, 0, (f.mem.dma(DATA + 8192), 4096), true);
    assert_eq!(f.status_of(0), STATUS_OK);
    f.mem.read(DATA + 8192, 4096)
}

/// Writes 0xee to the first 4 KiB, then sends one range request of `kind` with `segments`.
fn range_request(f: &mut BlkFixture, kind: u32, segments: &[Vec<u8>]) -> u8 {
    f.mem.write(DATA, &[0xee; 4096]);
    f.request(0, T_OUT, 0, (f.mem.dma(DATA), 4096), false);
    assert_eq!(f.status_of(0), STATUS_OK);
    let payload = segments.concat();
    f.mem.write(DATA + 4096, &payload);
    f.request(
        0,
        kind,
        0,
        (f.mem.dma(DATA + 4096), payload.len() as u32),
        false,
    );
    f.status_of(0)
}

#[test]
fn overlapping_ranges_are_refused_and_change_nothing() {
    let mut f = BlkFixture::new(0);
    for kind in [T_DISCARD, T_WRITE_ZEROES] {
        let status = range_request(&mut f, kind, &[segment(0, 2), segment(7, 1), segment(1, 4)]);
        assert_eq!(status, STATUS_IOERR, "type {kind}");
        // Nothing was cleared: not even the first, valid range.
        assert_eq!(first_page(&mut f), vec![0xee; 4096]);
    }
    f.assert_queue_serves(1);
    f.assert_no_violations();
}

#[test]
fn ranges_adding_up_past_the_limit_are_refused() {
    // 64 MiB: two ranges of 40,000 sectors fit the disk and each the 65,536-sector limit,
    // but together they are over it (Linux keeps to the limit per request).
    let mut f = BlkFixture::with_disk(0, Box::new(RamDisk::new(2 * BIG_SECTORS, "big")));
    let status = range_request(
        &mut f,
        T_WRITE_ZEROES,
        &[segment(0, 40_000), segment(40_000, 40_000)],
    );
    assert_eq!(status, STATUS_IOERR);
    assert_eq!(first_page(&mut f), vec![0xee; 4096]);
    // Within the limit, the same request clears.
    let status = range_request(
        &mut f,
        T_WRITE_ZEROES,
        &[segment(0, 40_000), segment(40_000, 25_536)],
    );
    assert_eq!(status, STATUS_OK);
    assert_eq!(first_page(&mut f), vec![0; 4096]);
    f.assert_no_violations();
}

/// Four requests, each clearing a whole 32 MiB disk, made available together: one pass
/// may clear at most PASS_BYTES (64 MiB), so they take two backend rounds, and all
/// complete.
#[test]
fn a_pass_clears_at_most_its_byte_budget() {
    assert_eq!(PASS_BYTES, 64 << 20);
    let mut f = BlkFixture::with_disk(0, Box::new(RamDisk::new(BIG_SECTORS, "big")));
    for i in 0..4u16 {
        // One readable descriptor (header + segment), one status byte.
        let at = DATA + 1024 * usize::from(i);
        let mut request = T_WRITE_ZEROES.to_le_bytes().to_vec();
        request.extend([0u8; 12]);
        request.extend(segment(0, BIG_SECTORS as u32));
        f.mem.write(at, &request);
        let status = f.status_addr(usize::from(i));
        let q = &mut f.queues[0];
        q.set_desc(2 * i, f.mem.dma(at), 32, DESC_F_NEXT, 2 * i + 1);
        q.set_desc(2 * i + 1, status, 1, DESC_F_WRITE, 0);
        q.push(2 * i);
    }
    let rounds = f.machine.borrow().rounds;
    f.raw.notify(0);
    let took = f.machine.borrow().rounds - rounds;
    for i in 0..4 {
        assert_eq!(f.status_of(i), STATUS_OK, "request {i}");
    }
    assert!(
        took >= 2,
        "4 x 32 MiB cleared in {took} round(s): more than {PASS_BYTES} bytes in one pass"
    );
    assert_eq!(f.queues[0].used_idx(), 4);
    f.assert_no_violations();
}
