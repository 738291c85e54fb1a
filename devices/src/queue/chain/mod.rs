//! One descriptor chain: walked with hard limits, then mapped in one batch, then read and
//! written as two byte streams (device-readable and device-writable), never assuming
//! where the driver put descriptor boundaries.

use super::{
    Descriptor, QueueError, SplitQueue, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE,
    QUEUE_SIZE_LIMIT,
};
use crate::counters::Counters;
use crate::grant::{page_position, pages_touched, AddressError, GrantSpan};
use crate::mapping::{BatchError, PageBatch};
pub use crate::memory::Piece;
use crate::memory::{
    descriptor_words, Access, AccessError, DescriptorWords, GuestMemory, MapError, MappedPage,
    PageUse, PIECES_PER_ACCESS,
};
use heapless::Vec;

mod bytes;
mod mapping;
mod walk;

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
        pages_touched(self.offset, self.len) as usize
    }
}

// Batch page indices are stored in 16 bits.
const _: () = assert!(MAX_CHAIN_PAGES <= u16::MAX as usize);

/// Segments one batch holds: room for two chains of the longest a queue allows, so
/// two maximal block requests (Linux splits 1 MiB into 254 + 2 segments) share a batch.
const MAX_BATCH_SEGMENTS: usize = 2 * MAX_SEGMENTS;

/// Chains one [`ChainBatch`] scratch holds at once: a pass maps all their pages in one batch.
/// Equal to the per-pass quota, so a pass that finds a full ring maps once.
pub const MAX_BATCH_CHAINS: usize = 64;

/// Leading bytes of each chain's readable stream a pass may read ahead for its device
/// ([`ChainBatch::prefetch`]): a virtio-blk request header.
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

impl Loaded {
    /// Takes what walking its indirect table changed from `walked`, its working copy:
    /// field by field, so the walk copies in and out only what it uses.
    #[inline]
    fn walked(&mut self, walked: &Loaded) {
        self.first_segment = walked.first_segment;
        self.end_segment = walked.end_segment;
        self.readable_len = walked.readable_len;
        self.writable_len = walked.writable_len;
        self.unreachable = walked.unreachable;
        self.expected_table_pages = walked.expected_table_pages;
    }
}

/// Where a chain's leading readable bytes are in `ChainBatch::prefetched`, and how many (0:
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

/// The chains of one pass and a cursor on one of them: scratch reused for every pass (no
/// allocation on the I/O path). Chains are collected (each page queued as its descriptor
/// is walked), then all their pages are mapped in one batch (two when some use indirect
/// tables: the tables and direct buffers first, then the pages the tables name), served
/// one by one through [`Self::select`], and unmapped in one batch. With one chain
/// ([`Self::load`]) it is the plain per-chain path.
pub struct ChainBatch {
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
    /// Pages of the walk under way that its buffers need but the batch had no room to
    /// queue: counted apart, so the walk's loop carries no page count of its own.
    unqueued_pages: usize,
    /// The leading readable bytes [`Self::prefetch`] read, each group's straight into
    /// its place, every chain's where its `read_ahead` says.
    prefetched: [u8; MAX_BATCH_CHAINS * MAX_PREFETCH],
    /// Each chain's bytes in `prefetched`, by its index in the batch.
    read_ahead: [ReadAhead; MAX_BATCH_CHAINS],
}

impl Default for ChainBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainBatch {
    pub const fn new() -> Self {
        Self {
            chains: Vec::new(),
            selected: 0,
            segments: Vec::new(),
            pages: PageBatch::new(),
            reserved_segments: 0,
            reserved_pages: 0,
            unqueued_pages: 0,
            prefetched: [0; MAX_BATCH_CHAINS * MAX_PREFETCH],
            read_ahead: [ReadAhead { at: 0, len: 0 }; MAX_BATCH_CHAINS],
        }
    }

    #[inline]
    fn current(&self) -> Option<&Loaded> {
        self.chains.get(self.selected)
    }

    /// The head index to return in the used ring.
    #[inline]
    pub fn head(&self) -> u16 {
        self.current().map_or(0, |c| c.head)
    }

    #[inline]
    pub fn readable_len(&self) -> usize {
        self.current().map_or(0, |c| c.readable_len)
    }

    #[inline]
    pub fn writable_len(&self) -> usize {
        self.current().map_or(0, |c| c.writable_len)
    }

    /// Chains in the batch.
    #[inline]
    pub fn batched(&self) -> usize {
        self.chains.len()
    }

    /// The index in the batch of the chain the accessors refer to.
    #[inline]
    pub fn selected(&self) -> usize {
        self.selected
    }

    /// Makes chain `index` of the batch the one the accessors refer to.
    #[inline]
    pub fn select(&mut self, index: usize) {
        self.selected = index;
    }

    /// Why the selected chain's indirect table could not be read, if it could not.
    #[inline]
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
        // Reservations saturate: a saturated one only ever refuses more chains.
        let reserved_pages = self.reserved_pages.saturating_add(pages);
        let reserved_segments = self.reserved_segments.saturating_add(table_segments);
        let segments_needed = self.segments.len().saturating_add(reserved_segments);
        if !first_in_batch
            && (reserved_pages > MAX_CHAIN_PAGES || segments_needed > MAX_BATCH_SEGMENTS)
        {
            self.forget_from(loaded.first_segment, pages_before);
            return Ok(Collected::NoRoom);
        }
        loaded.end_segment = self.segments.len();
        let index = self.chains.len();
        if self.chains.push(loaded).is_err() {
            self.forget_from(loaded.first_segment, pages_before);
            return Ok(Collected::NoRoom);
        }
        if let Some(ahead) = self.read_ahead.get_mut(index) {
            *ahead = ReadAhead::default();
        }
        self.reserved_pages = reserved_pages;
        self.reserved_segments = reserved_segments;
        Ok(Collected::Added)
    }

    /// Drops the segments and the queued (not yet mapped) pages of a chain left out.
    fn forget_from(&mut self, segments: usize, pages: usize) {
        self.segments.truncate(segments);
        self.pages.truncate(pages);
    }
}

#[cfg(test)]
mod tests;
