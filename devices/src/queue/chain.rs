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
use crate::memory::{Access, AccessError, GuestMemory, MapError, MappedPage};
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

#[derive(Clone, Copy, Debug)]
struct Segment {
    addr: u64,
    len: u32,
    writable: bool,
    /// Index of its first page in the batch, or why it has none.
    mapped: Result<usize, SegmentFault>,
    page_offset: usize,
}

/// A byte range of one mapped page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub page: MappedPage,
    pub offset: usize,
    pub len: usize,
}

/// Scratch for one chain, reused for every chain (no allocation on the I/O path).
pub struct Chain {
    head: u16,
    segments: Vec<Segment, MAX_SEGMENTS>,
    pages: PageBatch<MAX_CHAIN_PAGES>,
    readable_len: usize,
    writable_len: usize,
}

impl Default for Chain {
    fn default() -> Self {
        Self::new()
    }
}

impl Chain {
    pub const fn new() -> Self {
        Self {
            head: 0,
            segments: Vec::new(),
            pages: PageBatch::new(),
            readable_len: 0,
            writable_len: 0,
        }
    }

    /// The head index to return in the used ring.
    pub fn head(&self) -> u16 {
        self.head
    }

    pub fn readable_len(&self) -> usize {
        self.readable_len
    }

    pub fn writable_len(&self) -> usize {
        self.writable_len
    }

    /// Walks the chain at `head` and maps every page it names in one batch (plus one
    /// batch for an indirect table). Per-segment mapping failures are recorded, not
    /// returned: the device decides how to answer. Call [`Self::release`] afterwards,
    /// also on error.
    pub fn load(
        &mut self,
        queue: &SplitQueue,
        head: u16,
        mem: &mut dyn GuestMemory,
        counters: &mut Counters,
    ) -> Result<(), ChainFault> {
        self.head = head;
        self.segments.clear();
        self.readable_len = 0;
        self.writable_len = 0;
        self.walk(queue, head, mem, counters)?;
        self.map_segments(mem, counters);
        Ok(())
    }

    /// Unmaps the chain's pages in one batch.
    pub fn release(&mut self, mem: &mut dyn GuestMemory, counters: &mut Counters) {
        self.pages.unmap_all(mem, counters);
        self.segments.clear();
    }

    fn walk(
        &mut self,
        queue: &SplitQueue,
        head: u16,
        mem: &mut dyn GuestMemory,
        counters: &mut Counters,
    ) -> Result<(), ChainFault> {
        let size = queue.size();
        let mut index = head;
        let mut visited: u32 = 0;
        loop {
            let desc = queue.descriptor(mem, index)?;
            visited += 1;
            if visited > u32::from(size) {
                return Err(QueueError::ChainLoop.into());
            }
            if desc.has(DESC_F_INDIRECT) {
                if !queue.indirect_allowed() {
                    return Err(QueueError::IndirectNotNegotiated.into());
                }
                if desc.has(DESC_F_NEXT) {
                    return Err(QueueError::BadIndirect.into());
                }
                return self.walk_indirect(&desc, size, mem, counters);
            }
            self.add_segment(&desc)?;
            if !desc.has(DESC_F_NEXT) {
                return Ok(());
            }
            index = desc.next;
        }
    }

    fn walk_indirect(
        &mut self,
        table: &Descriptor,
        queue_size: u16,
        mem: &mut dyn GuestMemory,
        counters: &mut Counters,
    ) -> Result<(), ChainFault> {
        let entries = table.len / 16;
        if table.len == 0 || !table.len.is_multiple_of(16) || entries > u32::from(queue_size) {
            return Err(QueueError::BadIndirectLength(table.len).into());
        }
        let span = GrantSpan::new(table.addr, table.len)
            .map_err(|e| ChainFault::IndirectUnreachable(SegmentFault::Address(e)))?;
        let first = self
            .pages
            .add_span(&span, Access::ReadOnly)
            .map_err(|_| ChainFault::IndirectUnreachable(SegmentFault::TooManyPages))?;
        self.pages.map(mem, counters);
        if let Some(error) =
            (first..first + span.page_count() as usize).find_map(|i| self.pages.error(i))
        {
            return Err(ChainFault::IndirectUnreachable(SegmentFault::Map(error)));
        }
        let mut index: u32 = 0;
        let mut visited: u32 = 0;
        loop {
            let at = usize::from(span.offset) + 16 * index as usize;
            let mut bytes = [0u8; 16];
            read_pages(&self.pages, first, at, &mut bytes, mem).map_err(QueueError::Ring)?;
            let desc = Descriptor::from_bytes(&bytes);
            visited += 1;
            if visited > entries {
                return Err(QueueError::ChainLoop.into());
            }
            if desc.has(DESC_F_INDIRECT) {
                return Err(QueueError::BadIndirect.into());
            }
            self.add_segment(&desc)?;
            if !desc.has(DESC_F_NEXT) {
                return Ok(());
            }
            if u32::from(desc.next) >= entries {
                return Err(QueueError::IndexOutOfRange(desc.next).into());
            }
            index = u32::from(desc.next);
        }
    }

    fn add_segment(&mut self, desc: &Descriptor) -> Result<(), QueueError> {
        let writable = desc.has(DESC_F_WRITE);
        if !writable && self.writable_len > 0 {
            return Err(QueueError::ReadableAfterWritable);
        }
        if desc.len == 0 {
            return Ok(());
        }
        let segment = Segment {
            addr: desc.addr,
            len: desc.len,
            writable,
            mapped: Err(SegmentFault::TooManyPages),
            page_offset: 0,
        };
        self.segments
            .push(segment)
            .map_err(|_| QueueError::ChainTooLong)?;
        let len = desc.len as usize;
        if writable {
            self.writable_len = self.writable_len.saturating_add(len);
        } else {
            self.readable_len = self.readable_len.saturating_add(len);
        }
        Ok(())
    }

    fn map_segments(&mut self, mem: &mut dyn GuestMemory, counters: &mut Counters) {
        for segment in self.segments.iter_mut() {
            let access = if segment.writable {
                Access::ReadWrite
            } else {
                Access::ReadOnly
            };
            segment.mapped = match GrantSpan::new(segment.addr, segment.len) {
                Err(e) => Err(SegmentFault::Address(e)),
                Ok(span) => {
                    segment.page_offset = usize::from(span.offset);
                    self.pages
                        .add_span(&span, access)
                        .map_err(|BatchError::Full| SegmentFault::TooManyPages)
                }
            };
        }
        self.pages.map(mem, counters);
        for segment in self.segments.iter_mut() {
            if let Ok(first) = segment.mapped {
                let pages = (segment.page_offset + segment.len as usize).div_ceil(PAGE_SIZE);
                if let Some(error) = (first..first + pages).find_map(|i| self.pages.error(i)) {
                    segment.mapped = Err(SegmentFault::Map(error));
                }
            }
        }
    }

    /// Whether every segment was mapped with the access it needs.
    pub fn fully_mapped(&self) -> bool {
        self.segments.iter().all(|s| s.mapped.is_ok())
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
            self.writable_len
        } else {
            self.readable_len
        };
        if at.checked_add(len).is_none_or(|end| end > stream_len) {
            return Err(BufferError::OutOfRange);
        }
        let mut skip = at;
        let mut remaining = len;
        for segment in self.segments.iter().filter(|s| s.writable == writable) {
            if remaining == 0 {
                break;
            }
            let seg_len = segment.len as usize;
            if skip >= seg_len {
                skip -= seg_len;
                continue;
            }
            let first = segment.mapped.map_err(BufferError::Segment)?;
            let mut offset_in_segment = skip;
            skip = 0;
            while remaining > 0 && offset_in_segment < seg_len {
                let absolute = segment.page_offset + offset_in_segment;
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

    /// Copies `dst.len()` bytes from the readable stream at `at`.
    pub fn read(
        &self,
        mem: &dyn GuestMemory,
        at: usize,
        dst: &mut [u8],
    ) -> Result<(), BufferError> {
        let mut done = 0;
        self.for_each_piece(false, at, dst.len(), |piece| {
            let part = dst
                .get_mut(done..done + piece.len)
                .ok_or(BufferError::OutOfRange)?;
            mem.read(piece.page, piece.offset, part)
                .map_err(BufferError::Access)?;
            done += piece.len;
            Ok(())
        })
    }

    /// Copies `src` into the writable stream at `at`.
    pub fn write(
        &self,
        mem: &mut dyn GuestMemory,
        at: usize,
        src: &[u8],
    ) -> Result<(), BufferError> {
        let mut done = 0;
        self.for_each_piece(true, at, src.len(), |piece| {
            let part = src
                .get(done..done + piece.len)
                .ok_or(BufferError::OutOfRange)?;
            mem.write(piece.page, piece.offset, part)
                .map_err(BufferError::Access)?;
            done += piece.len;
            Ok(())
        })
    }
}

/// Reads bytes at `at` from consecutive batch pages starting at `first`.
fn read_pages<const N: usize>(
    pages: &PageBatch<N>,
    first: usize,
    at: usize,
    dst: &mut [u8],
    mem: &dyn GuestMemory,
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
