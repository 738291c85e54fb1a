//! The chain walk's limits and the two byte streams, over the in-crate test memory.

use super::*;
use crate::grant::GrantAddress;
use crate::test_utils::{TestMemory, TestQueue};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec as HeapVec;

const R: u16 = 0;
const W: u16 = DESC_F_WRITE;
const NEXT: u16 = DESC_F_NEXT;
const INDIRECT: u16 = DESC_F_INDIRECT;
/// An address without the grant bit: a guest-physical one, never mapped.
const PLAIN: u64 = 0x4000_1000;

struct Fixture {
    mem: TestMemory,
    ring: TestQueue,
    queue: SplitQueue,
    chain: Box<ChainBatch>,
    counters: Counters,
}

fn fixture(size: u16, indirect: bool) -> Fixture {
    let mem = TestMemory::new();
    let ring = TestQueue::new(&mem, size);
    let mut counters = Counters::default();
    let config = ring.config();
    let queue = SplitQueue::activate(
        &mut mem.clone(),
        &config,
        size,
        false,
        indirect,
        &mut counters,
    );
    Fixture {
        mem,
        ring,
        queue: queue.unwrap(),
        chain: Box::new(ChainBatch::new()),
        counters,
    }
}

fn desc(addr: u64, len: u32, flags: u16, next: u16) -> Descriptor {
    Descriptor {
        addr,
        len,
        flags,
        next,
    }
}

impl Fixture {
    fn load(&mut self, head: u16) -> Result<(), ChainFault> {
        let mut mem = self.mem.clone();
        self.chain
            .load(&self.queue, head, &mut mem, &mut self.counters)
    }

    /// Loads the chain at `head` that must break the queue: why.
    fn broken(&mut self, head: u16) -> QueueError {
        let fault = self.load(head).unwrap_err();
        self.release();
        match fault {
            ChainFault::Queue(e) => e,
            other => panic!("not a queue error: {other:?}"),
        }
    }

    /// Writes descriptors `0..` of the queue's table.
    fn table(&self, descs: &[Descriptor]) {
        for (index, &d) in (0..).zip(descs) {
            self.ring.set_descriptor(index, d);
        }
    }

    fn read(&self, at: usize, len: usize) -> Result<HeapVec<u8>, BufferError> {
        let mut out = vec![0; len];
        self.chain.read(&self.mem, at, &mut out).map(|()| out)
    }

    fn write(&mut self, at: usize, bytes: &[u8]) -> Result<(), BufferError> {
        self.chain.write(&mut self.mem.clone(), at, bytes)
    }

    /// Releases the batch; only the three rings may stay mapped, and nothing the device
    /// did may have been a violation.
    fn release(&mut self) {
        self.chain
            .release(&mut self.mem.clone(), &mut self.counters);
        assert_eq!(self.mem.live_mappings(), 3, "only the rings stay mapped");
        assert!(
            self.mem.violations().is_empty(),
            "{:?}",
            self.mem.violations()
        );
    }
}

#[test]
fn a_direct_chain_is_two_streams_whatever_its_descriptors() {
    let mut f = fixture(8, true);
    let head = f
        .ring
        .add_chain(&[(5, false), (7, false), (4, true), (3, true)]);
    let b = f.ring.buffers(head).to_vec();
    f.mem.put(b[0].addr, b"hello");
    f.mem.put(b[1].addr, b"world!!");
    f.load(head).unwrap();
    assert_eq!(f.chain.head(), head);
    assert_eq!((f.chain.readable_len(), f.chain.writable_len()), (12, 7));
    assert_eq!(f.read(0, 12).unwrap(), b"helloworld!!");
    assert_eq!(f.read(3, 4).unwrap(), b"lowo");
    assert_eq!(f.read(10, 3), Err(BufferError::OutOfRange));
    f.write(0, b"abcdefg").unwrap();
    assert_eq!(f.mem.get(b[2].addr, 4), b"abcd");
    assert_eq!(f.mem.get(b[3].addr, 3), b"efg");
    assert_eq!(f.write(5, b"xyz"), Err(BufferError::OutOfRange));
    f.release();
}

#[test]
fn a_buffer_across_a_page_boundary_maps_both_pages() {
    let mut f = fixture(8, true);
    let addr = f.mem.buffer(4090, 12, false);
    f.mem.put(addr, b"0123456789ab");
    f.table(&[desc(addr, 12, R, 0)]);
    let batches = f.mem.map_batches();
    f.load(0).unwrap();
    assert_eq!(f.mem.map_batches() - batches, 1, "both pages in one batch");
    assert_eq!(f.mem.live_mappings(), 3 + 2);
    assert_eq!(f.read(4, 4).unwrap(), b"4567");
    assert_eq!(f.read(0, 12).unwrap(), b"0123456789ab");
    f.release();
}

#[test]
fn an_indirect_table_follows_the_direct_descriptors() {
    let mut f = fixture(8, true);
    let head = f.ring.add_indirect(&[(16, false), (512, true), (1, true)]);
    let b = f.ring.buffers(head).to_vec();
    f.mem.put(b[0].addr, &[7; 16]);
    let batches = f.mem.map_batches();
    f.load(head).unwrap();
    assert_eq!(
        f.mem.map_batches() - batches,
        2,
        "the table, then what it names"
    );
    assert_eq!((f.chain.readable_len(), f.chain.writable_len()), (16, 513));
    assert_eq!(f.read(0, 16).unwrap(), [7; 16]);
    f.write(512, &[0x5a]).unwrap();
    assert_eq!(f.mem.get(b[2].addr, 1), [0x5a]);
    f.release();

    // A readable header in the ring, the writable rest in a table.
    let header = f.mem.buffer(0, 16, true);
    let data = f.mem.buffer(0, 9, false);
    let table = f
        .ring
        .table(&[desc(data, 8, W | NEXT, 1), desc(data + 8, 1, W, 0)]);
    f.table(&[desc(header, 16, R | NEXT, 1), desc(table, 32, INDIRECT, 0)]);
    f.load(0).unwrap();
    assert_eq!((f.chain.readable_len(), f.chain.writable_len()), (16, 9));
    f.write(0, b"ninebytes").unwrap();
    assert_eq!(f.mem.get(data, 9), b"ninebytes");
    f.release();
}

#[test]
fn indirect_without_the_feature_breaks_the_queue() {
    let mut f = fixture(8, false);
    let head = f.ring.add_indirect(&[(16, false)]);
    assert_eq!(f.broken(head), QueueError::IndirectNotNegotiated);
}

#[test]
fn malformed_indirect_descriptors_break_the_queue() {
    let mut f = fixture(8, true);
    let data = f.mem.buffer(0, 16, true);
    let table = f.ring.table(&[desc(data, 16, R, 0)]);
    let cases = [
        (desc(table, 16, INDIRECT | NEXT, 1), QueueError::BadIndirect),
        (
            desc(table, 0, INDIRECT, 0),
            QueueError::BadIndirectLength(0),
        ),
        (
            desc(table, 24, INDIRECT, 0),
            QueueError::BadIndirectLength(24),
        ),
        (
            desc(table, 9 * 16, INDIRECT, 0),
            QueueError::BadIndirectLength(144),
        ),
    ];
    for (head, error) in cases {
        f.table(&[head, desc(data, 16, R, 0)]);
        assert_eq!(f.broken(0), error, "{head:?}");
    }
    // An indirect descriptor inside a table.
    let nested = f
        .ring
        .table(&[desc(data, 16, R | NEXT, 1), desc(table, 16, INDIRECT, 0)]);
    f.table(&[desc(nested, 32, INDIRECT, 0)]);
    assert_eq!(f.broken(0), QueueError::BadIndirect);
}

#[test]
fn loops_are_found_in_the_ring_and_in_a_table() {
    let mut f = fixture(8, true);
    let data = f.mem.buffer(0, 64, true);
    f.table(&[desc(data, 8, R | NEXT, 1), desc(data, 8, R | NEXT, 0)]);
    assert_eq!(f.broken(0), QueueError::ChainLoop);
    f.table(&[desc(data, 8, R | NEXT, 0)]);
    assert_eq!(
        f.broken(0),
        QueueError::ChainLoop,
        "a descriptor naming itself"
    );

    let table = f.ring.table(&[
        desc(data, 8, R | NEXT, 1),
        desc(data, 8, R | NEXT, 2),
        desc(data, 8, R | NEXT, 1),
    ]);
    f.table(&[desc(table, 48, INDIRECT, 0)]);
    assert_eq!(f.broken(0), QueueError::ChainLoop);
}

#[test]
fn a_chain_of_the_whole_table_is_served_and_past_the_segment_limit_is_not() {
    let mut f = fixture(8, true);
    let data = f.mem.buffer(0, 8, true);
    let whole: HeapVec<_> = (1..=8).map(|next| desc(data, 1, R | NEXT, next)).collect();
    f.table(&whole[..7]);
    f.ring.set_descriptor(7, desc(data, 1, R, 0));
    f.load(0).unwrap();
    assert_eq!(f.chain.readable_len(), 8);
    f.release();

    // With a table, a chain may outgrow the ring; 256 segments is the most it may have.
    let mut f = fixture(256, true);
    let page = f.mem.buffer(0, 16, true);
    for (entries, fits) in [(254, true), (255, false)] {
        let entry = |n: u16| desc(page, 16, R | NEXT, n + 1);
        let mut entries: HeapVec<_> = (0..entries).map(entry).collect();
        entries.last_mut().unwrap().flags = R;
        let table = f.ring.table(&entries);
        let len = 16 * entries.len() as u32;
        f.table(&[
            desc(page, 16, R | NEXT, 1),
            desc(page, 16, R | NEXT, 2),
            desc(table, len, INDIRECT, 0),
        ]);
        if fits {
            f.load(0).unwrap();
            assert_eq!(f.chain.readable_len(), MAX_SEGMENTS * 16);
            f.release();
        } else {
            assert_eq!(f.broken(0), QueueError::ChainTooLong);
        }
    }
}

#[test]
fn a_next_outside_the_ring_or_past_a_tables_end_breaks_the_queue() {
    let mut f = fixture(8, true);
    let data = f.mem.buffer(0, 16, true);
    f.table(&[desc(data, 16, R | NEXT, 8)]);
    assert_eq!(f.broken(0), QueueError::IndexOutOfRange(8));

    // Two entries; the second names a third, past the table's end (inside its page).
    let table = f.ring.table(&[
        desc(data, 16, R | NEXT, 1),
        desc(data, 16, R | NEXT, 2),
        desc(data, 16, R, 0),
    ]);
    f.table(&[desc(table, 32, INDIRECT, 0)]);
    assert_eq!(f.broken(0), QueueError::IndexOutOfRange(2));
}

#[test]
fn zero_length_descriptors_are_skipped_whatever_they_name() {
    let mut f = fixture(8, true);
    let header = f.mem.buffer(0, 16, true);
    let status = f.mem.buffer(0, 1, false);
    f.table(&[
        desc(header, 16, R | NEXT, 1),
        desc(PLAIN, 0, R | NEXT, 2),
        desc(PLAIN, 0, W | NEXT, 3),
        desc(status, 1, W, 0),
    ]);
    f.load(0).unwrap();
    assert_eq!((f.chain.readable_len(), f.chain.writable_len()), (16, 1));
    assert!(f.chain.fully_mapped());
    f.write(0, &[9]).unwrap();
    assert_eq!(f.mem.get(status, 1), [9]);
    f.release();
}

#[test]
fn a_readable_descriptor_after_a_writable_one_breaks_the_queue() {
    let mut f = fixture(8, true);
    let data = f.mem.buffer(0, 16, false);
    f.table(&[desc(data, 4, W | NEXT, 1), desc(data, 4, R, 0)]);
    assert_eq!(f.broken(0), QueueError::ReadableAfterWritable);
    f.table(&[desc(data, 4, W | NEXT, 1), desc(data, 0, R, 0)]);
    assert_eq!(f.broken(0), QueueError::ReadableAfterWritable, "even empty");

    // Writable in the ring, readable in the table it leads to.
    let table = f.ring.table(&[desc(data, 4, R, 0)]);
    f.table(&[desc(data, 4, W | NEXT, 1), desc(table, 16, INDIRECT, 0)]);
    assert_eq!(f.broken(0), QueueError::ReadableAfterWritable);
}

#[test]
fn unusable_buffers_fail_their_bytes_not_the_queue() {
    let mut f = fixture(8, true);
    let revoked = f.mem.buffer(0, 4, false);
    f.mem.revoke(revoked);
    let read_only = f.mem.buffer(0, 1, true);
    f.table(&[
        desc(PLAIN, 16, R | NEXT, 1),
        desc(revoked, 4, W | NEXT, 2),
        desc(read_only, 1, W, 0),
    ]);
    f.load(0).unwrap();
    assert!(!f.chain.fully_mapped());
    let fault = |e| BufferError::Segment(e);
    let plain = SegmentFault::Address(AddressError::NotGrantEncoded);
    assert_eq!(f.read(0, 16).unwrap_err(), fault(plain));
    let revoked = SegmentFault::Map(MapError::BadGrantRef);
    assert_eq!(f.write(0, &[1; 4]).unwrap_err(), fault(revoked));
    let denied = SegmentFault::Map(MapError::PermissionDenied);
    assert_eq!(f.write(4, &[1]).unwrap_err(), fault(denied));
    f.release();
}

#[test]
fn an_unreachable_indirect_table_fails_its_chain_only() {
    let mut f = fixture(8, true);
    let data = f.mem.buffer(0, 16, true);
    let table = f.ring.table(&[desc(data, 16, R, 0)]);
    f.mem.revoke(table);
    f.table(&[desc(table, 16, INDIRECT, 0)]);
    let unreachable = ChainFault::IndirectUnreachable(SegmentFault::Map(MapError::BadGrantRef));
    assert_eq!(f.load(0), Err(unreachable));
    f.release();
    let plain = GrantAddress::decode(PLAIN).unwrap_err();
    f.table(&[desc(PLAIN, 16, INDIRECT, 0)]);
    let unreachable = ChainFault::IndirectUnreachable(SegmentFault::Address(plain));
    assert_eq!(f.load(0), Err(unreachable));
    f.release();
}

#[test]
fn a_batch_maps_in_one_call_and_a_full_window_sends_chains_back() {
    let mut f = fixture(8, true);
    let heads = [
        f.ring.add_chain(&[(16, false), (1, true)]),
        f.ring.add_chain(&[(4, true)]),
    ];
    let mut mem = f.mem.clone();
    for head in heads {
        assert_eq!(f.chain.collect(&f.queue, head, &mem), Ok(Collected::Added));
    }
    let batches = f.mem.map_batches();
    let outcome = f.chain.map_all(8, &mut mem, &mut f.counters);
    assert_eq!(
        outcome,
        MapOutcome {
            dropped: 0,
            broken: None
        }
    );
    assert_eq!(f.mem.map_batches() - batches, 1);
    assert_eq!(f.mem.live_mappings(), 3 + 3);
    f.release();

    // The second chain's page finds the grant window full: it waits for the next batch
    // (the first chain's request would fail, as it cannot wait for anything).
    let later = f.ring.add_chain(&[(4, true)]);
    f.mem
        .fail_maps(f.ring.buffers(later)[0].addr, MapError::NoSpace);
    for head in [heads[0], later] {
        assert_eq!(f.chain.collect(&f.queue, head, &mem), Ok(Collected::Added));
    }
    let outcome = f.chain.map_all(8, &mut mem, &mut f.counters);
    assert_eq!(outcome.dropped, 1);
    assert_eq!(f.chain.batched(), 1);
    assert!(f.chain.fully_mapped());
    f.release();
}
