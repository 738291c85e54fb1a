//! Target 3: virtio-blk request headers and data layouts over well-formed rings. Oracle:
//! a shadow of the disk. OK writes land exactly; OK reads return the shadow; anything
//! else changes nothing; the status byte is always OK, IOERR or UNSUPP.

use crate::blk_fixture::{BlkFixture, DATA, SECTORS, STATUS};
use arbitrary::Unstructured;
use devices::blk::{STATUS_IOERR, STATUS_OK, STATUS_UNSUPP};
use devices::queue::DESC_F_WRITE;

const KINDS: [u32; 8] = [0, 1, 4, 8, 11, 13, 14, 99];

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut f = BlkFixture::new(0);
    super::pick_route(&f.machine, &[crate::scenario::FRONTEND], data);
    let mut shadow = vec![0u8; (SECTORS * 512) as usize];
    while !u.is_empty() {
        let kind = *u.choose(&KINDS).unwrap_or(&0);
        let sector = if u.ratio(7, 8).unwrap_or(true) {
            u.int_in_range(0..=SECTORS + 2).unwrap_or(0)
        } else {
            u.arbitrary().unwrap_or(0)
        };
        let header = f.header(0, kind, sector);
        // Data split into up to 4 segments of fuzzer-chosen lengths, in the data pages.
        let segments = u.int_in_range(0..=4usize).unwrap_or(1);
        let device_writes = u.arbitrary().unwrap_or(false);
        let mut descs = vec![(header, 16u32, 0u16)];
        let mut at = DATA;
        let mut total = 0usize;
        for _ in 0..segments {
            let len = *u
                .choose(&[512usize, 512, 1024, 16, 100, 4096])
                .unwrap_or(&512);
            if at + len > 8 * 4096 {
                break;
            }
            let payload: Vec<u8> = (0..len).map(|_| u.arbitrary().unwrap_or(0)).collect();
            f.mem.write(at, &payload);
            descs.push((
                f.mem.dma(at),
                len as u32,
                if device_writes { DESC_F_WRITE } else { 0 },
            ));
            at += len;
            total += len;
        }
        let with_status = u.ratio(15, 16).unwrap_or(true);
        if with_status {
            descs.push((f.status_addr(0), 1, DESC_F_WRITE));
        }
        let sent = f.mem.read(DATA, total);
        let before = disk(&f);
        let used_before = f.queues[0].used_idx();
        f.submit(0, &descs);
        assert_eq!(
            f.queues[0].used_idx(),
            used_before.wrapping_add(1),
            "every chain completes once"
        );
        let after = disk(&f);
        if !with_status {
            assert_eq!(after, before, "no status byte: nothing may change");
            continue;
        }
        let status = f.mem.read(STATUS, 1)[0];
        assert!(
            [STATUS_OK, STATUS_IOERR, STATUS_UNSUPP].contains(&status),
            "status {status}"
        );
        let range = (sector as usize).saturating_mul(512)
            ..(sector as usize).saturating_mul(512).saturating_add(total);
        match (status, kind, device_writes) {
            (STATUS_OK, 1, false) => {
                shadow[range.clone()].copy_from_slice(&sent);
                assert_eq!(after, shadow, "OUT landed exactly");
            }
            (STATUS_OK, 0, true) => {
                assert_eq!(after, before);
                assert_eq!(
                    f.mem.read(DATA, total),
                    shadow[range],
                    "IN returned the disk"
                );
            }
            (STATUS_OK, 11 | 13, _) => {
                // Zeroed ranges come from the segments the fuzzer wrote; take the disk as truth
                // but check nothing outside them changed by comparing unchanged sectors.
                for s in 0..SECTORS as usize {
                    let (a, b) = (
                        &after[s * 512..(s + 1) * 512],
                        &shadow[s * 512..(s + 1) * 512],
                    );
                    assert!(
                        a == b || a.iter().all(|&x| x == 0),
                        "sector {s} changed to non-zero"
                    );
                }
                shadow = after;
            }
            (STATUS_OK, _, _) => assert_eq!(after, before, "kind {kind} changes nothing"),
            _ => assert_eq!(after, before, "a failed request changes nothing"),
        }
    }
    f.assert_only_rings_mapped();
    f.assert_no_violations();
}

fn disk(f: &BlkFixture) -> Vec<u8> {
    let mut m = f.machine.borrow_mut();
    let store = m.backend.block_store(0).expect("device 0 is a disk");
    let mut bytes = Vec::new();
    let capacity = store.capacity_bytes() as usize;
    store
        .read(0, capacity, &mut |chunk| {
            bytes.extend_from_slice(chunk);
            true
        })
        .expect("ram disk reads");
    bytes
}
