//! The copy route over the in-crate test memory and its grant copier: what is copied
//! and what mapped, pieces across pages, refusals, and a refusal's reach.

use super::*;
use crate::blk::backend::RamDisk;
use crate::blk::{BlkDevice, BlkOptions, STATUS_IOERR, STATUS_OK};
use crate::counters::Counters;
use crate::grant::GrantAddress;
use crate::mmio::{reg, MmioDevice};
use crate::queue::chain::ChainBatch;
use crate::queue::SplitQueue;
use crate::test_utils::driver::{self, RING_FEATURES};
use crate::test_utils::{dma, Buffer, TestCopier, TestMemory, TestQueue};
use alloc::boxed::Box;
use alloc::vec;

type Route = CopyRoute<TestMemory, TestCopier>;

fn route() -> (Route, TestMemory) {
    let mem = TestMemory::new();
    (CopyRoute::new(mem.clone(), mem.copier()), mem)
}

/// Maps the page holding `addr` through `route`.
fn map(route: &mut Route, addr: u64, access: Access, usage: PageUse) -> MappedPage {
    let gref = GrantAddress::decode(addr).unwrap().gref;
    let mut result = [Err(MapError::Again)];
    route.map_batch(
        &[MapRequest {
            gref,
            access,
            usage,
        }],
        &mut result,
    );
    result[0].unwrap()
}

#[test]
fn buffers_are_copied_and_rings_and_tables_mapped_through() {
    let (mut route, mem) = route();
    let pages = [
        (false, Access::ReadWrite, PageUse::Ring),
        (true, Access::ReadOnly, PageUse::Table),
        (true, Access::ReadOnly, PageUse::Buffer),
        (false, Access::ReadWrite, PageUse::Buffer),
    ]
    .map(|(read_only, access, usage)| map(&mut route, mem.buffer(0, 8, read_only), access, usage));
    let [ring, table, buffers @ ..] = pages;
    assert_eq!(mem.live_mappings(), 2, "the ring and the table");
    assert_eq!(route.copied_pages_live(), 2);
    assert!(buffers.iter().all(|&b| is_copied(b)));
    assert!(!is_copied(ring) && !is_copied(table));
    assert_eq!(mem.map_batches(), 2, "no hypercall for a copied page");
    assert_eq!(route.unmap_batch(&pages), 0);
    assert_eq!((mem.live_mappings(), route.copied_pages_live()), (0, 0));
    assert_eq!(route.unmap_batch(&buffers), 2, "stale copied tokens");
    assert!(mem.violations().is_empty(), "{:?}", mem.violations());
}

#[test]
fn a_chain_across_page_boundaries_moves_in_one_copy_per_access() {
    let (mut route, mem) = route();
    let mut ring = TestQueue::new(&mem, 8);
    let mut counters = Counters::default();
    let queue = SplitQueue::activate(&mut route, &ring.config(), 8, false, false, &mut counters);
    let queue = queue.unwrap();
    let (from, to) = (mem.buffer(4090, 12, true), mem.buffer(4094, 8, false));
    mem.put(from, b"0123456789ab");
    let head = ring.add_buffers(&[
        Buffer {
            addr: from,
            len: 12,
            writable: false,
        },
        Buffer {
            addr: to,
            len: 8,
            writable: true,
        },
    ]);
    let mut chain = Box::new(ChainBatch::new());
    chain.load(&queue, head, &mut route, &mut counters).unwrap();
    assert_eq!(mem.live_mappings(), 3, "only the rings are mapped");

    let copies = mem.copies();
    let mut bytes = vec![0; 12];
    chain.read(&route, 0, &mut bytes).unwrap();
    assert_eq!(bytes, b"0123456789ab");
    chain.write(&mut route, 0, b"ABCDEFGH").unwrap();
    assert_eq!(mem.get(to, 8), b"ABCDEFGH", "two pages written");
    assert_eq!(mem.copies() - copies, 2);
    chain.release(&mut route, &mut counters);
    assert_eq!(route.copied_pages_live(), 0);
}

#[test]
fn copies_the_grant_does_not_allow_are_refused() {
    let (mut route, mem) = route();
    let read_only = mem.buffer(0, 8, true);
    // Asked read-only: the route refuses a write without asking Xen.
    let page = map(&mut route, read_only, Access::ReadOnly, PageUse::Buffer);
    assert_eq!(route.write(page, 0, &[1]), Err(AccessError::ReadOnly));
    assert_eq!(mem.copies(), 0);
    // Asked writable of a read-only grant: nothing is checked at "map" time, Xen
    // refuses the copy.
    let page = map(&mut route, read_only, Access::ReadWrite, PageUse::Buffer);
    assert_eq!(route.write(page, 0, &[1]), Err(AccessError::Refused));
    assert_eq!(mem.get(read_only, 1), [0]);
    // Revoked after the "map".
    let revoked = mem.buffer(0, 8, false);
    let page = map(&mut route, revoked, Access::ReadOnly, PageUse::Buffer);
    mem.revoke(revoked);
    assert_eq!(route.read(page, 0, &mut [0; 4]), Err(AccessError::Refused));
    let stats = route.stats();
    assert_eq!((stats.copies, stats.refused, stats.bytes), (2, 2, 0));
    // Past the page.
    assert_eq!(
        route.read(page, 4090, &mut [0; 8]),
        Err(AccessError::OutOfPage)
    );
}

/// A RAM disk of 8 sectors (sector n holds the byte n) over the copy route.
fn disk() -> (MmioDevice<BlkDevice<RamDisk>>, Route, TestMemory, TestQueue) {
    let bytes = (0..8 * 512).map(|i| (i / 512) as u8).collect();
    let disk = BlkDevice::new(RamDisk::from_bytes(bytes, "copy"), BlkOptions::default());
    let mut dev = MmioDevice::new(disk);
    let (mut route, mem) = route();
    let ring = TestQueue::new(&mem, 16);
    driver::bring_up(&mut dev, &mut route, RING_FEATURES, &[&ring]);
    (dev, route, mem, ring)
}

/// Makes a request of `kind` at `sector` with one data buffer available.
fn request(
    mem: &TestMemory,
    ring: &mut TestQueue,
    kind: u32,
    sector: u64,
    data: (u32, bool),
) -> u16 {
    let head = ring.add_chain(&[(16, false), data, (1, true)]);
    let header = [&kind.to_le_bytes()[..], &[0; 4], &sector.to_le_bytes()].concat();
    mem.put(ring.buffers(head)[0].addr, &header);
    mem.put(ring.buffers(head)[2].addr, &[0xff]);
    head
}

#[test]
fn a_refused_copy_fails_only_its_own_request() {
    let (mut dev, mut route, mem, mut ring) = disk();
    // Writes of sectors 1..=4; the second's data and the third's header revoked.
    let heads: Vec<u16, 4> = (1..=4)
        .map(|sector| {
            let head = request(&mem, &mut ring, 1, sector, (512, false));
            mem.put(ring.buffers(head)[1].addr, &[0x10 * sector as u8; 512]);
            head
        })
        .collect();
    mem.revoke(ring.buffers(heads[1])[1].addr);
    mem.revoke(ring.buffers(heads[2])[0].addr);
    driver::write(&mut dev, &mut route, reg::QUEUE_NOTIFY, 0);
    dev.process(&mut route, &mut ());

    let used = ring.used();
    assert_eq!(used.len(), 4);
    assert!(used.iter().all(|&(_, len)| len == 1), "{used:?}");
    let status = |h: u16| mem.get(ring.buffers(h)[2].addr, 1)[0];
    let statuses: [u8; 4] = core::array::from_fn(|n| status(heads[n]));
    assert_eq!(statuses, [STATUS_OK, STATUS_IOERR, STATUS_IOERR, STATUS_OK]);
    let disk = dev.device().backend().bytes();
    let firsts: [u8; 4] = core::array::from_fn(|n| disk[(n + 1) * 512]);
    assert_eq!(firsts, [0x10, 2, 3, 0x40]);
    assert_eq!((route.copied_pages_live(), mem.live_mappings()), (0, 3));
}

#[test]
fn a_status_byte_that_cannot_be_copied_fails_only_its_request() {
    let (mut dev, mut route, mem, mut ring) = disk();
    let heads: [u16; 3] =
        core::array::from_fn(|n| request(&mem, &mut ring, 0, n as u64, (512, true)));
    mem.set_read_only(ring.buffers(heads[1])[2].addr, true);
    driver::write(&mut dev, &mut route, reg::QUEUE_NOTIFY, 0);
    dev.process(&mut route, &mut ());

    let lens: [(u32, u32); 3] = core::array::from_fn(|n| (u32::from(heads[n]), [513, 0, 513][n]));
    assert_eq!(ring.used(), lens);
    let status = |h: u16| mem.get(ring.buffers(h)[2].addr, 1)[0];
    assert_eq!(heads.map(status), [STATUS_OK, 0xff, STATUS_OK]);
    assert_eq!(mem.get(ring.buffers(heads[2])[1].addr, 1), [2]);
    assert_eq!(dev.counters().request_errors, 1);
}

#[test]
fn past_its_table_of_copied_pages_the_route_maps_buffers() {
    let (mut route, mem) = route();
    let first = mem.alloc(MAX_COPIED_PAGES + 1, false);
    let request = |n| MapRequest {
        gref: GrantRef(first.0 + n as u32),
        access: Access::ReadWrite,
        usage: PageUse::Buffer,
    };
    let requests: HeapVec<MapRequest> = (0..=MAX_COPIED_PAGES).map(request).collect();
    let mut results = vec![Err(MapError::Again); requests.len()];
    route.map_batch(&requests, &mut results);
    let pages: HeapVec<MappedPage> = results.iter().map(|r| r.unwrap()).collect();
    assert_eq!(
        (route.copied_pages_live(), mem.live_mappings()),
        (MAX_COPIED_PAGES, 1)
    );
    let (copied, mapped) = (pages[MAX_COPIED_PAGES - 1], pages[MAX_COPIED_PAGES]);
    assert!(!is_copied(mapped));

    // One access over the last copied page and the mapped one: each moved its way.
    let pieces = [
        Piece {
            page: copied,
            offset: 4094,
            len: 2,
        },
        Piece {
            page: mapped,
            offset: 0,
            len: 2,
        },
    ];
    route.write_pieces(&pieces, b"wxyz").unwrap();
    assert_eq!(mem.get(dma(first, MAX_COPIED_PAGES * 4096 - 2), 4), b"wxyz");
    assert_eq!(mem.copies(), 1);
    assert_eq!(route.unmap_batch(&pages), 0);
    assert_eq!((route.copied_pages_live(), mem.live_mappings()), (0, 0));
}
