//! One descriptor chain: walked with hard limits, then mapped in one batch, then read and
//! written as two byte streams (device-readable and device-writable), never assuming
//! where the driver put descriptor boundaries.

use super::{
    Descriptor, QueueError, SplitQueue, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE,
    QUEUE_SIZE_LIMIT,
};
use crate::counters::Counters;
use crate::grant::{AddressError, GrantSpan, PAGE_SIZE};
use crate::mapping::{BatchError, PageBatch};
pub use crate::memory::Piece;
use crate::memory::{
    descriptor_words, Access, AccessError, DescriptorWords, GuestMemory, MapError, PageUse,
    PIECES_PER_ACCESS,
};
use heapless::Vec;

/// Descriptors one chain may have: the spec bounds a chain by the queue size.
pub const MAX_SEGMENTS: usize = QUEUE_SIZE_LIMIT as usize;
/// Pages one chain may touch, indirect table included. Devices advertise limits (SEG_MAX,
/// SIZE_MAX) that keep a conforming driver below it; a request beyond it fails cleanly.
pub const MAX_CHAIN_PAGES: usize = 2 * MAX_SEGMENTS + 8;

/// Why a segment of a chain cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentFault {
    Address(AddressError),
    Map(MapError),
    /// The chain touches more pages than the device's budget.
    TooManyPages,
}

/// Why a read or write of a chain's stream failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferError {
    /// Past the end of the stream: the driver's buffers are too small.
    OutOfRange,
    /// The bytes lie in a segment that could not be mapped.
    Segment(SegmentFault),
    Access(AccessError),
}

/// A chain that cannot be served, short of breaking the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainFault {
    /// The ring or chain is malformed: the queue must stop (`NEEDS_RESET`).
    Queue(QueueError),
    /// The indirect table could not be reached; the chain is returned with length 0.
    IndirectUnreachable(SegmentFault),
}

impl From<QueueError> for ChainFault {
    fn from(e: QueueError) -> Self {
        ChainFault::Queue(e)
    }
}

/// One descriptor's buffer. Its pages are queued in the batch when it is walked.
#[derive(Clone, Copy, Debug)]
struct Segment {
    len: u32,
    /// Index of its first page in the batch (meaningful when `fault` is `None`).
    first_page: u16,
    /// Where the buffer starts in its first page.
    offset: u16,
    writable: bool,
    /// Why the buffer cannot be reached, if it cannot.
    fault: Option<SegmentFault>,
}

impl Segment {
    /// Index of its first page in the batch, or why it has none.
    fn first_page(&self) -> Result<usize, SegmentFault> {
        match self.fault {
            None => Ok(usize::from(self.first_page)),
            Some(fault) => Err(fault),
        }
    }

    fn page_count(&self) -> usize {
        (usize::from(self.offset) + self.len as usize).div_ceil(PAGE_SIZE)
    }
}

// Batch page indices are stored in 16 bits.
const _: () = assert!(MAX_CHAIN_PAGES <= u16::MAX as usize);

/// Segments one batch holds: room for two chains of the longest a queue allows, so
/// two maximal block requests (Linux splits 1 MiB into 254 + 2 segments) share a batch.
const MAX_BATCH_SEGMENTS: usize = 2 * MAX_SEGMENTS;

/// Chains one [`Chain`] scratch holds at once: a pass maps all their pages in one batch.
/// Equal to the per-pass quota, so a pass that finds a full ring maps once.
pub const MAX_BATCH_CHAINS: usize = 64;

/// Leading bytes of each chain's readable stream a pass may read ahead for its device
/// ([`Chain::prefetch`]): a virtio-blk request header.
pub const MAX_PREFETCH: usize = 16;

/// One chain of a batch: its head, its segments in the shared pool, and the indirect
/// table still to walk.
#[derive(Clone, Copy, Debug)]
struct Loaded {
    head: u16,
    first_segment: usize,
    end_segment: usize,
    readable_len: usize,
    writable_len: usize,
    /// The indirect table (span and index of its first page), walked once mapped.
    table: Option<(GrantSpan, usize)>,
    /// Why the indirect table cannot be read: the chain is answered with length 0.
    unreachable: Option<SegmentFault>,
    /// Pages its unwalked indirect table is expected to name: one per entry, as drivers
    /// split data into SIZE_MAX (one page) segments.
    expected_table_pages: usize,
}

/// Where a chain's leading readable bytes are in `Chain::prefetched`, and how many (0:
/// none were read ahead). Kept beside [`Loaded`], not in it: the walk copies `Loaded`
/// around, and these 3 bytes made it a word longer.
#[derive(Clone, Copy, Debug, Default)]
struct ReadAhead {
    at: u16,
    len: u8,
}

/// Whether a walked chain joined the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collected {
    Added,
    /// The batch has no room for its segments or pages: serve it in the next batch
    /// (only ever answered when the batch already holds a chain).
    NoRoom,
}

/// What mapping a batch left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapOutcome {
    /// Chains at the end of the batch dropped because their indirect tables named more
    /// pages than the batch had left, or a page of theirs was refused for want of room
    /// in the backend's grant window: the caller puts them back on the queue.
    pub dropped: usize,
    /// A chain whose indirect table is malformed: the chains before it are served,
    /// it and the ones after are not, and the queue breaks.
    pub broken: Option<QueueError>,
}

/// Scratch for the chains of one pass, reused for every pass (no allocation on the I/O
/// path). Chains are collected (each page queued as its descriptor is walked), then all
/// their pages are mapped in one batch (two when some use indirect tables: the tables and
/// direct buffers first, then the pages the tables name), served one by one through
/// [`Self::select`], and unmapped in one batch. With one chain ([`Self::load`]) it is
/// the plain per-chain path.
pub struct Chain {
    chains: Vec<Loaded, MAX_BATCH_CHAINS>,
    /// The chain that `head`, the lengths and the streams refer to.
    selected: usize,
    segments: Vec<Segment, MAX_BATCH_SEGMENTS>,
    pages: PageBatch<MAX_CHAIN_PAGES>,
    /// Segments the collected chains' indirect tables are expected to add.
    reserved_segments: usize,
    /// Pages the collected chains will need, checked against the batch's capacity
    /// before a second chain is let in.
    reserved_pages: usize,
    /// The leading readable bytes [`Self::prefetch`] read, each group's straight into
    /// its place, every chain's where its `read_ahead` says.
    prefetched: [u8; MAX_BATCH_CHAINS * MAX_PREFETCH],
    /// Each chain's bytes in `prefetched`, by its index in the batch.
    read_ahead: [ReadAhead; MAX_BATCH_CHAINS],
}

impl Default for Chain {
    fn default() -> Self {
        Self::new()
    }
}

impl Chain {
    pub const fn new() -> Self {
        Self {
            chains: Vec::new(),
            selected: 0,
            segments: Vec::new(),
            pages: PageBatch::new(),
            reserved_segments: 0,
            reserved_pages: 0,
            prefetched: [0; MAX_BATCH_CHAINS * MAX_PREFETCH],
            read_ahead: [ReadAhead { at: 0, len: 0 }; MAX_BATCH_CHAINS],
        }
    }

    fn current(&self) -> Option<&Loaded> {
        self.chains.get(self.selected)
    }

    /// The head index to return in the used ring.
    pub fn head(&self) -> u16 {
        self.current().map_or(0, |c| c.head)
    }

    pub fn readable_len(&self) -> usize {
        self.current().map_or(0, |c| c.readable_len)
    }

    pub fn writable_len(&self) -> usize {
        self.current().map_or(0, |c| c.writable_len)
    }

    /// Chains in the batch.
    pub fn batched(&self) -> usize {
        self.chains.len()
    }

    /// Makes chain `index` of the batch the one the accessors refer to.
    pub fn select(&mut self, index: usize) {
        self.selected = index;
    }

    /// Why the selected chain's indirect table could not be read, if it could not.
    pub fn unreachable(&self) -> Option<SegmentFault> {
        self.current().and_then(|c| c.unreachable)
    }

    /// Walks the chain at `head` and maps every page it names in one batch (plus one
    /// batch for an indirect table). Per-segment mapping failures are recorded, not
    /// returned: the device decides how to answer. Call [`Self::release`] afterwards,
    /// also on error.
    pub fn load<M: GuestMemory + ?Sized>(
        &mut self,
        queue: &SplitQueue,
        head: u16,
        mem: &mut M,
        counters: &mut Counters,
    ) -> Result<(), ChainFault> {
        // A load starts from an empty batch: anything still mapped is unmapped first.
        self.release(mem, counters);
        // The first chain of a batch always has room: NoRoom cannot come back here.
        self.collect(queue, head, mem)?;
        let outcome = self.map_all(queue.size(), mem, counters);
        if let Some(error) = outcome.broken {
            return Err(ChainFault::Queue(error));
        }
        match self.unreachable() {
            Some(fault) => Err(ChainFault::IndirectUnreachable(fault)),
            None => Ok(()),
        }
    }

    /// Unmaps the batch's pages in one batch and empties it.
    pub fn release<M: GuestMemory + ?Sized>(&mut self, mem: &mut M, counters: &mut Counters) {
        self.pages.unmap_all(mem, counters);
        self.clear();
    }

    fn clear(&mut self) {
        self.chains.clear();
        self.segments.clear();
        self.selected = 0;
        self.reserved_segments = 0;
        self.reserved_pages = 0;
    }

    /// Walks the chain at `head` (its direct descriptors; an indirect table is only
    /// checked and its pages reserved) and adds it to the batch. A chain that does not
    /// fit next to the ones already collected is left out whole ([`Collected::NoRoom`]).
    pub fn collect<M: GuestMemory + ?Sized>(
        &mut self,
        queue: &SplitQueue,
        head: u16,
        mem: &M,
    ) -> Result<Collected, QueueError> {
        let first_in_batch = self.chains.is_empty();
        let pages_before = self.pages.len();
        let mut loaded = Loaded {
            head,
            first_segment: self.segments.len(),
            end_segment: self.segments.len(),
            readable_len: 0,
            writable_len: 0,
            table: None,
            unreachable: None,
            expected_table_pages: 0,
        };
        let walked = self.walk(queue, &mut loaded, mem);
        let pages = match walked {
            Ok(pages) => pages,
            Err(QueueError::ChainTooLong) if !first_in_batch => {
                self.forget_from(loaded.first_segment, pages_before);
                return Ok(Collected::NoRoom);
            }
            Err(e) => {
                self.forget_from(loaded.first_segment, pages_before);
                return Err(e);
            }
        };
        // An indirect table's entries become segments once it is walked.
        let table_segments = loaded.table.map_or(0, |(span, _)| (span.len / 16) as usize);
        let segments_needed = self.segments.len() + self.reserved_segments + table_segments;
        if !first_in_batch
            && (self.reserved_pages + pages > MAX_CHAIN_PAGES
                || segments_needed > MAX_BATCH_SEGMENTS)
        {
            self.forget_from(loaded.first_segment, pages_before);
            return Ok(Collected::NoRoom);
        }
        loaded.end_segment = self.segments.len();
        if self.chains.push(loaded).is_err() {
            self.forget_from(loaded.first_segment, pages_before);
            return Ok(Collected::NoRoom);
        }
        if let Some(ahead) = self.read_ahead.get_mut(self.chains.len() - 1) {
            *ahead = ReadAhead::default();
        }
        self.reserved_pages += pages;
        self.reserved_segments += table_segments;
        Ok(Collected::Added)
    }

    /// Drops the segments and the queued (not yet mapped) pages of a chain left out.
    fn forget_from(&mut self, segments: usize, pages: usize) {
        self.segments.truncate(segments);
        self.pages.truncate(pages);
    }

    /// Walks the queue's own descriptors, queueing their pages and an indirect table's;
    /// returns the pages the chain will map (for an indirect chain: its direct segments',
    /// its table's and one per table entry, the pages the table is expected to name).
    fn walk<M: GuestMemory + ?Sized>(
        &mut self,
        queue: &SplitQueue,
        loaded: &mut Loaded,
        mem: &M,
    ) -> Result<usize, QueueError> {
        let size = queue.size();
        let rings = mem.rings();
        let mut index = loaded.head;
        let mut visited: u32 = 0;
        let mut pages = 0;
        loop {
            let desc = queue.descriptor(rings, index)?;
            visited += 1;
            if visited > u32::from(size) {
                return Err(QueueError::ChainLoop);
            }
            if desc.has(DESC_F_INDIRECT) {
                if !queue.indirect_allowed() {
                    return Err(QueueError::IndirectNotNegotiated);
                }
                if desc.has(DESC_F_NEXT) {
                    return Err(QueueError::BadIndirect);
                }
                let entries = desc.len / 16;
                if desc.len == 0 || !desc.len.is_multiple_of(16) || entries > u32::from(size) {
                    return Err(QueueError::BadIndirectLength(desc.len));
                }
                match GrantSpan::new(desc.addr, desc.len) {
                    Ok(span) => {
                        match self.pages.add_span(&span, Access::ReadOnly, PageUse::Table) {
                            Ok(first) => loaded.table = Some((span, first)),
                            Err(BatchError::Full) => {
                                loaded.unreachable = Some(SegmentFault::TooManyPages);
                            }
                        }
                        // Reserving the pages the table will name keeps chains from
                        // being dropped after their tables are mapped.
                        loaded.expected_table_pages = entries as usize;
                        return Ok(span.page_count() as usize + pages + entries as usize);
                    }
                    Err(e) => {
                        loaded.unreachable = Some(SegmentFault::Address(e));
                        return Ok(pages);
                    }
                }
            }
            pages += self.add_segment(loaded, &desc)?;
            if !desc.has(DESC_F_NEXT) {
                return Ok(pages);
            }
            index = desc.next;
        }
    }

    /// Maps the batch: the indirect tables (with the direct buffers queued so far) in one
    /// map batch, then walks them, then the pages they name in one more.
    pub fn map_all<M: GuestMemory + ?Sized>(
        &mut self,
        queue_size: u16,
        mem: &mut M,
        counters: &mut Counters,
    ) -> MapOutcome {
        let mut outcome = MapOutcome {
            dropped: 0,
            broken: None,
        };
        if self.chains.iter().any(|c| c.table.is_some()) {
            self.pages.map(mem, counters);
            outcome = self.walk_tables(queue_size, mem);
        }
        self.pages.map(mem, counters);
        self.record_map_faults();
        self.drop_chains_out_of_room(&mut outcome);
        outcome
    }

    /// A page refused for want of room (`NoSpace`: the backend's grant window is full,
    /// which a large batch can do by itself) fails no request that can wait: the chains
    /// from the first such one on go back to the queue for the next batch, which finds
    /// this one's pages unmapped. The batch's first chain cannot wait for anything: its
    /// request fails as for any other map error.
    fn drop_chains_out_of_room(&mut self, outcome: &mut MapOutcome) {
        if self.pages.all_mapped() {
            return;
        }
        let out_of_room = Some(SegmentFault::Map(MapError::NoSpace));
        let first = self
            .chains
            .iter()
            .enumerate()
            .skip(1)
            .find_map(|(index, loaded)| {
                let segments = self
                    .segments
                    .get(loaded.first_segment..loaded.end_segment)
                    .unwrap_or(&[]);
                let refused = loaded.unreachable == out_of_room
                    || segments.iter().any(|s| s.fault == out_of_room);
                refused.then_some(index)
            });
        if let Some(index) = first {
            self.leave_out_from(index, outcome);
        }
    }

    /// Leaves chain `index` and the ones after it out of the batch, for the caller to
    /// put back on the queue (see [`MapOutcome::dropped`]).
    fn leave_out_from(&mut self, index: usize, outcome: &mut MapOutcome) {
        outcome.dropped += self.chains.len().saturating_sub(index);
        self.chains.truncate(index);
    }

    /// Walks each mapped indirect table in chain order. A chain whose table turned out
    /// to name more pages than the batch has left is dropped with every chain after it
    /// (unless it is the first); a malformed table ends the batch before its chain.
    fn walk_tables<M: GuestMemory + ?Sized>(&mut self, queue_size: u16, mem: &M) -> MapOutcome {
        let mut outcome = MapOutcome {
            dropped: 0,
            broken: None,
        };
        // Pages the unwalked tables are expected to name, as reserved at collection.
        let mut expected: usize = self.chains.iter().map(|c| c.expected_table_pages).sum();
        let mut index = 0;
        while let Some(mut loaded) = self.chains.get(index).copied() {
            if let Some((span, first)) = loaded.table {
                expected = expected.saturating_sub(loaded.expected_table_pages);
                loaded.expected_table_pages = 0;
                let (segments_before, pages_before) = (self.segments.len(), self.pages.len());
                let pages = span.page_count() as usize;
                if let Some(error) = (first..first + pages).find_map(|i| self.pages.error(i)) {
                    loaded.unreachable = Some(SegmentFault::Map(error));
                } else {
                    let walked = self.move_to_end(&mut loaded).and_then(|()| {
                        self.walk_indirect(&span, first, queue_size, &mut loaded, mem)
                    });
                    loaded.end_segment = self.segments.len();
                    let left_out = match walked {
                        Err(QueueError::ChainTooLong) if index > 0 => true,
                        Err(e) => {
                            outcome.broken = Some(e);
                            true
                        }
                        // The estimate made at collection becomes the real figure.
                        Ok(table_pages) => {
                            index > 0 && pages_before + table_pages + expected > MAX_CHAIN_PAGES
                        }
                    };
                    if left_out {
                        self.forget_from(segments_before, pages_before);
                        self.leave_out_from(index, &mut outcome);
                        return outcome;
                    }
                }
            }
            if let Some(slot) = self.chains.get_mut(index) {
                *slot = loaded;
            }
            index += 1;
        }
        outcome
    }

    /// Copies a chain's direct segments (those before its indirect descriptor) to the
    /// end of the pool, so the table's segments follow them contiguously.
    fn move_to_end(&mut self, loaded: &mut Loaded) -> Result<(), QueueError> {
        let (start, end) = (loaded.first_segment, loaded.end_segment);
        loaded.first_segment = self.segments.len();
        for index in start..end {
            if let Some(segment) = self.segments.get(index).copied() {
                self.segments
                    .push(segment)
                    .map_err(|_| QueueError::ChainTooLong)?;
            }
        }
        Ok(())
    }

    /// Adds the descriptors of a mapped indirect table; returns the pages they name.
    fn walk_indirect<M: GuestMemory + ?Sized>(
        &mut self,
        span: &GrantSpan,
        first: usize,
        queue_size: u16,
        loaded: &mut Loaded,
        mem: &M,
    ) -> Result<usize, QueueError> {
        let entries = (span.len / 16).min(u32::from(queue_size));
        // A table of at most a queue's worth of entries (4 KiB) spans at most two pages:
        // looked up once, not per descriptor.
        let table_pages = [self.pages.page(first), self.pages.page(first + 1)];
        let rings = mem.rings();
        let mut index: u32 = 0;
        let mut visited: u32 = 0;
        let mut pages = 0;
        loop {
            let at = usize::from(span.offset) + 16 * index as usize;
            let (page, offset) = (table_pages.get(at / PAGE_SIZE), at % PAGE_SIZE);
            let words = match page {
                Some(&Some(page)) if offset <= PAGE_SIZE - 16 => {
                    rings.read_descriptor(page, offset)
                }
                // Across the page boundary (a table not 16-aligned), or not mapped.
                _ => read_descriptor_bytewise(&self.pages, first, at, rings),
            }
            .map_err(QueueError::Ring)?;
            let desc = Descriptor::from_words(words);
            visited += 1;
            if visited > entries {
                return Err(QueueError::ChainLoop);
            }
            if desc.has(DESC_F_INDIRECT) {
                return Err(QueueError::BadIndirect);
            }
            pages += self.add_segment(loaded, &desc)?;
            if !desc.has(DESC_F_NEXT) {
                return Ok(pages);
            }
            if u32::from(desc.next) >= entries {
                return Err(QueueError::IndexOutOfRange(desc.next));
            }
            index = u32::from(desc.next);
        }
    }

    /// Adds one descriptor's buffer and queues its pages; returns the pages it needs.
    #[inline]
    fn add_segment(&mut self, loaded: &mut Loaded, desc: &Descriptor) -> Result<usize, QueueError> {
        let writable = desc.has(DESC_F_WRITE);
        if !writable && loaded.writable_len > 0 {
            return Err(QueueError::ReadableAfterWritable);
        }
        if desc.len == 0 {
            return Ok(0);
        }
        // The spec bounds one chain by the queue size, whatever room the batch has.
        if self.segments.len() - loaded.first_segment >= MAX_SEGMENTS || self.segments.is_full() {
            return Err(QueueError::ChainTooLong);
        }
        let access = if writable {
            Access::ReadWrite
        } else {
            Access::ReadOnly
        };
        let (offset, pages, queued) = match GrantSpan::new(desc.addr, desc.len) {
            Ok(span) => {
                let queued = self
                    .pages
                    .add_span(&span, access, PageUse::Buffer)
                    .ok()
                    .and_then(|first| u16::try_from(first).ok())
                    .ok_or(SegmentFault::TooManyPages);
                (span.offset, span.page_count() as usize, queued)
            }
            Err(e) => (0, 0, Err(SegmentFault::Address(e))),
        };
        let segment = Segment {
            len: desc.len,
            first_page: queued.unwrap_or(0),
            offset,
            writable,
            fault: queued.err(),
        };
        self.segments
            .push(segment)
            .map_err(|_| QueueError::ChainTooLong)?;
        let len = desc.len as usize;
        if writable {
            loaded.writable_len = loaded.writable_len.saturating_add(len);
        } else {
            loaded.readable_len = loaded.readable_len.saturating_add(len);
        }
        Ok(pages)
    }

    /// After the last map batch: marks the segments with a page Xen refused.
    fn record_map_faults(&mut self) {
        if self.pages.all_mapped() {
            return;
        }
        for segment in self.segments.iter_mut() {
            if let Ok(first) = segment.first_page() {
                let pages = first..first + segment.page_count();
                if let Some(error) = pages.into_iter().find_map(|i| self.pages.error(i)) {
                    segment.fault = Some(SegmentFault::Map(error));
                }
            }
        }
    }

    /// The selected chain's segments.
    fn selected_segments(&self) -> &[Segment] {
        self.current()
            .and_then(|c| self.segments.get(c.first_segment..c.end_segment))
            .unwrap_or(&[])
    }

    /// Whether every segment was mapped with the access it needs.
    pub fn fully_mapped(&self) -> bool {
        self.selected_segments().iter().all(|s| s.fault.is_none())
    }

    /// Calls `f` for each page piece of `len` bytes at `at` in the readable
    /// (`writable == false`) or writable stream, in order.
    pub fn for_each_piece(
        &self,
        writable: bool,
        at: usize,
        len: usize,
        mut f: impl FnMut(Piece) -> Result<(), BufferError>,
    ) -> Result<(), BufferError> {
        let stream_len = if writable {
            self.writable_len()
        } else {
            self.readable_len()
        };
        if at.checked_add(len).is_none_or(|end| end > stream_len) {
            return Err(BufferError::OutOfRange);
        }
        let mut skip = at;
        let mut remaining = len;
        for segment in self
            .selected_segments()
            .iter()
            .filter(|s| s.writable == writable)
        {
            if remaining == 0 {
                break;
            }
            let seg_len = segment.len as usize;
            if skip >= seg_len {
                skip -= seg_len;
                continue;
            }
            let first = segment.first_page().map_err(BufferError::Segment)?;
            let mut offset_in_segment = skip;
            skip = 0;
            while remaining > 0 && offset_in_segment < seg_len {
                let absolute = usize::from(segment.offset) + offset_in_segment;
                let page = self
                    .pages
                    .page(first + absolute / PAGE_SIZE)
                    .ok_or(BufferError::Access(AccessError::NotMapped))?;
                let offset = absolute % PAGE_SIZE;
                let chunk = remaining
                    .min(PAGE_SIZE - offset)
                    .min(seg_len - offset_in_segment);
                f(Piece {
                    page,
                    offset,
                    len: chunk,
                })?;
                offset_in_segment += chunk;
                remaining -= chunk;
            }
        }
        Ok(())
    }

    /// The piece holding the `len` bytes at `at` of a stream when they lie in one page of
    /// the stream's first readable or last writable segment: a request header or a status
    /// byte, found without walking segments. `None` sends the caller down the general
    /// path, which also reports why an access cannot be made.
    fn single_piece(&self, writable: bool, at: usize, len: usize) -> Option<Piece> {
        let segments = self.selected_segments();
        let (segment, skip) = if writable {
            // Writable segments come last: the final one ends the writable stream.
            let last = segments.last().filter(|s| s.writable)?;
            let start = self.writable_len().checked_sub(last.len as usize)?;
            (last, at.checked_sub(start)?)
        } else {
            (segments.first().filter(|s| !s.writable)?, at)
        };
        if skip.checked_add(len)? > segment.len as usize {
            return None;
        }
        let first = segment.first_page().ok()?;
        let absolute = usize::from(segment.offset) + skip;
        let offset = absolute % PAGE_SIZE;
        if len > PAGE_SIZE - offset {
            return None;
        }
        let page = self.pages.page(first + absolute / PAGE_SIZE)?;
        Some(Piece { page, offset, len })
    }

    /// The piece holding byte `at` of the selected chain's writable stream, when it lies
    /// in its last segment (a status byte); `None` otherwise, or when it is unreachable.
    pub fn byte_piece(&self, at: usize) -> Option<Piece> {
        self.single_piece(true, at, 1)
    }

    /// Reads the first `len` bytes of every chain's readable stream ahead of serving the
    /// batch, when `mem` moves the pieces of one read together: the pieces of several
    /// chains go in one read, up to [`PIECES_PER_ACCESS`], so the copy route reads a
    /// pass's request headers in one grant copy per group instead of one per chain. Not
    /// prefetched, and so read from memory by its own [`Self::read`] (which reports any
    /// error for that chain alone): a chain whose bytes cannot be gathered or that is
    /// alone in its group, every chain of a group whose read fails, and everything when
    /// `len` is above [`MAX_PREFETCH`].
    pub fn prefetch<M: GuestMemory + ?Sized>(&mut self, mem: &M, len: usize) {
        if len == 0 || len > MAX_PREFETCH || !mem.moves_pieces_together() {
            return;
        }
        let mut group: Vec<Piece, PIECES_PER_ACCESS> = Vec::new();
        let mut members: Vec<usize, PIECES_PER_ACCESS> = Vec::new();
        let mut pieces: Vec<Piece, MAX_PREFETCH> = Vec::new();
        let mut filled = 0;
        for index in 0..self.chains.len() {
            self.selected = index;
            if !self.leading_pieces(len, &mut pieces) {
                continue;
            }
            if group.len() + pieces.len() > PIECES_PER_ACCESS {
                self.read_ahead(mem, &group, &members, filled, len);
                filled += members.len() * len;
                group.clear();
                members.clear();
            }
            // Each chain adds at least one piece, so both have room.
            let _ = group.extend_from_slice(&pieces);
            let _ = members.push(index);
        }
        self.read_ahead(mem, &group, &members, filled, len);
        self.selected = 0;
    }

    /// Puts in `pieces` those of the selected chain's first `len` readable bytes; false
    /// if the chain is not served or they cannot be reached.
    fn leading_pieces(&self, len: usize, pieces: &mut Vec<Piece, MAX_PREFETCH>) -> bool {
        pieces.clear();
        if self.unreachable().is_some() {
            return false;
        }
        match self.single_piece(false, 0, len) {
            Some(piece) => pieces.push(piece).is_ok(),
            // Pieces are at least a byte long: `len` of them at most.
            None => self
                .for_each_piece(false, 0, len, |piece| {
                    pieces.push(piece).map_err(|_| BufferError::OutOfRange)
                })
                .is_ok(),
        }
    }

    /// Reads one group of [`Self::prefetch`] (`len` bytes for each of `members`, in
    /// order) into `prefetched` from byte `at`, and marks the members read ahead; after a
    /// failed read, none. A group of one chain is left to the chain's own read: one
    /// access either way, and a failure is then not tried twice.
    fn read_ahead<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        group: &[Piece],
        members: &[usize],
        at: usize,
        len: usize,
    ) {
        if members.len() < 2 {
            return;
        }
        let Some(dst) = self.prefetched.get_mut(at..at + members.len() * len) else {
            return;
        };
        if mem.read_pieces(group, dst).is_err() {
            return;
        }
        for (k, &index) in members.iter().enumerate() {
            if let (Some(ahead), Ok(at), Ok(len)) = (
                self.read_ahead.get_mut(index),
                u16::try_from(at + k * len),
                u8::try_from(len),
            ) {
                *ahead = ReadAhead { at, len };
            }
        }
    }

    /// The selected chain's readable bytes `at..at + len` if [`Self::prefetch`] holds them.
    fn prefetched_bytes(&self, at: usize, len: usize) -> Option<&[u8]> {
        self.current()?;
        let ahead = self.read_ahead.get(self.selected)?;
        let end = at
            .checked_add(len)
            .filter(|&end| end <= usize::from(ahead.len))?;
        let base = usize::from(ahead.at);
        self.prefetched.get(base + at..base + end)
    }

    /// Copies `dst.len()` bytes from the readable stream at `at`.
    pub fn read<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        at: usize,
        dst: &mut [u8],
    ) -> Result<(), BufferError> {
        let len = dst.len();
        if let Some(bytes) = self.prefetched_bytes(at, len) {
            dst.copy_from_slice(bytes);
            return Ok(());
        }
        if let Some(piece) = self.single_piece(false, at, len) {
            return mem
                .read(piece.page, piece.offset, dst)
                .map_err(BufferError::Access);
        }
        self.for_each_group(false, at, len, |group, range| {
            let part = dst.get_mut(range).ok_or(BufferError::OutOfRange)?;
            match group {
                // Headers and status bytes: one access, no group machinery.
                [one] => mem.read(one.page, one.offset, part),
                _ => mem.read_pieces(group, part),
            }
            .map_err(BufferError::Access)
        })
    }

    /// Copies `src` into the writable stream at `at`.
    pub fn write<M: GuestMemory + ?Sized>(
        &self,
        mem: &mut M,
        at: usize,
        src: &[u8],
    ) -> Result<(), BufferError> {
        if let Some(piece) = self.single_piece(true, at, src.len()) {
            return mem
                .write(piece.page, piece.offset, src)
                .map_err(BufferError::Access);
        }
        self.for_each_group(true, at, src.len(), |group, range| {
            let part = src.get(range).ok_or(BufferError::OutOfRange)?;
            match group {
                [one] => mem.write(one.page, one.offset, part),
                _ => mem.write_pieces(group, part),
            }
            .map_err(BufferError::Access)
        })
    }

    /// The pieces of [`Chain::for_each_piece`] in groups of up to [`PIECES_PER_ACCESS`],
    /// each with the range of the caller's buffer it covers: a copying memory then moves
    /// a group in one operation.
    pub fn for_each_group(
        &self,
        writable: bool,
        at: usize,
        len: usize,
        mut f: impl FnMut(&[Piece], core::ops::Range<usize>) -> Result<(), BufferError>,
    ) -> Result<(), BufferError> {
        let mut group: Vec<Piece, PIECES_PER_ACCESS> = Vec::new();
        let (mut start, mut done) = (0, 0);
        self.for_each_piece(writable, at, len, |piece| {
            if group.is_full() {
                f(&group, start..done)?;
                group.clear();
                start = done;
            }
            // Room was made above.
            let _ = group.push(piece);
            done += piece.len;
            Ok(())
        })?;
        f(&group, start..done)
    }
}

/// The descriptor at byte `at` of a table mapped on consecutive batch pages from
/// `first`, read bytewise: the walk's fallback when it does not lie in one mapped page.
fn read_descriptor_bytewise<const N: usize, M: GuestMemory + ?Sized>(
    pages: &PageBatch<N>,
    first: usize,
    at: usize,
    mem: &M,
) -> Result<DescriptorWords, AccessError> {
    let mut bytes = [0u8; 16];
    read_pages(pages, first, at, &mut bytes, mem)?;
    Ok(descriptor_words(&bytes))
}

/// Reads bytes at `at` from consecutive batch pages starting at `first`.
fn read_pages<const N: usize, M: GuestMemory + ?Sized>(
    pages: &PageBatch<N>,
    first: usize,
    at: usize,
    dst: &mut [u8],
    mem: &M,
) -> Result<(), AccessError> {
    let mut done = 0;
    while done < dst.len() {
        let absolute = at + done;
        let page = pages
            .page(first + absolute / PAGE_SIZE)
            .ok_or(AccessError::NotMapped)?;
        let offset = absolute % PAGE_SIZE;
        let chunk = (dst.len() - done).min(PAGE_SIZE - offset);
        let part = dst
            .get_mut(done..done + chunk)
            .ok_or(AccessError::OutOfPage)?;
        mem.read(page, offset, part)?;
        done += chunk;
    }
    Ok(())
}
