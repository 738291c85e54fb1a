//! Mapping guest buffers in batches and reading/writing them across page boundaries.

use crate::counters::Counters;
use crate::grant::{page_position, GrantRef, GrantSpan, PAGE_SIZE};
use crate::memory::{
    descriptor_words, Access, AccessError, DescriptorWords, GuestMemory, MapError, MapRequest,
    MappedPage, PageUse,
};
use heapless::Vec;

/// A batch of pages to map with one hypercall, then unmap with one hypercall.
///
/// Pages are queued ([`Self::add_span`]) and mapped by [`Self::map`], which maps what was
/// queued since its last call, so one batch may be mapped in steps (indirect tables first,
/// then the pages they name). Capacity is fixed at compile time: the device's static
/// memory budget.
pub struct PageBatch<const N: usize> {
    /// The pages queued, `requests[..queued]`: an array and a count rather than a
    /// `Vec`, so queueing a span is one bounds check and a loop of stores.
    requests: [MapRequest; N],
    queued: usize,
    /// Outcomes of `requests[..mapped]`. Entries past it are always `Err(Again)` (as
    /// made, and put back by [`Self::unmap_all`]): an implementation of `map_batch` that
    /// skipped an entry leaves it failed, never an earlier batch's page.
    results: [Result<MappedPage, MapError>; N],
    mapped: usize,
    /// Entries Xen refused since the batch was emptied: when none, callers skip the
    /// per-page error checks.
    failures: usize,
}

/// What fills the request slots nothing was queued in (never read): all zero bytes, so
/// a new batch is filled as zeroed memory.
const UNQUEUED: MapRequest = MapRequest {
    gref: GrantRef(0),
    access: Access::ReadOnly,
    usage: PageUse::Ring,
};

/// Why a buffer could not join a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchError {
    /// The batch has no room for that many pages: the request is larger than the device
    /// advertised (SEG_MAX x SIZE_MAX) or its budget allows.
    Full,
}

impl<const N: usize> Default for PageBatch<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> PageBatch<N> {
    pub const fn new() -> Self {
        Self {
            requests: [UNQUEUED; N],
            queued: 0,
            results: [Err(MapError::Again); N],
            mapped: 0,
            failures: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.queued
    }

    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Queues every page of `span` for mapping; returns the index of its first page.
    #[inline]
    pub fn add_span(
        &mut self,
        span: &GrantSpan,
        access: Access,
        usage: PageUse,
    ) -> Result<usize, BatchError> {
        let first = self.queued;
        let pages = span.page_count() as usize;
        let request = |index| MapRequest {
            gref: span.gref(index),
            access,
            usage,
        };
        // Most buffers are one page (drivers split data at SIZE_MAX): one slot, no range.
        if pages == 1 {
            let slot = self.requests.get_mut(first).ok_or(BatchError::Full)?;
            *slot = request(0);
            // `first` is below the capacity: `first + 1` is at most it.
            self.queued = first.saturating_add(1);
            return Ok(first);
        }
        let end = first.checked_add(pages).ok_or(BatchError::Full)?;
        match self.requests.get_mut(first..end) {
            Some(slots) => {
                for (index, slot) in (0..).zip(slots.iter_mut()) {
                    *slot = request(index);
                }
            }
            None => return Err(BatchError::Full),
        }
        self.queued = end;
        Ok(first)
    }

    /// Forgets the pages queued from index `len` on; pages already mapped stay.
    pub fn truncate(&mut self, len: usize) {
        self.queued = self.queued.min(len.max(self.mapped));
    }

    /// Maps everything queued since the last call, in one batch.
    pub fn map<M: GuestMemory + ?Sized>(&mut self, mem: &mut M, counters: &mut Counters) {
        let (start, end) = (self.mapped, self.queued);
        let (Some(pending), Some(results)) = (
            self.requests.get(start..end),
            self.results.get_mut(start..end),
        ) else {
            return;
        };
        if pending.is_empty() {
            return;
        }
        // `results` holds `Err(Again)` (see the field): no earlier batch's page.
        mem.map_batch(pending, results);
        let failed = results.iter().filter(|r| r.is_err()).count();
        self.mapped = end;
        // Only ever compared with 0: saturating keeps that right.
        self.failures = self.failures.saturating_add(failed);
        counters.count_map(pending.len(), failed);
    }

    /// Whether every page queued so far was mapped.
    pub fn all_mapped(&self) -> bool {
        self.failures == 0 && self.mapped == self.queued
    }

    /// Whether every page below index `end` was mapped (none refused, none unmapped
    /// yet): callers then skip looking for errors page by page.
    pub fn all_mapped_below(&self, end: usize) -> bool {
        self.failures == 0 && end <= self.mapped
    }

    /// The outcome of mapping page `index`, if it was mapped.
    fn result(&self, index: usize) -> Option<Result<MappedPage, MapError>> {
        self.results.get(..self.mapped)?.get(index).copied()
    }

    /// The mapped page at `index`, if its mapping succeeded.
    pub fn page(&self, index: usize) -> Option<MappedPage> {
        self.result(index).and_then(|r| r.ok())
    }

    /// Why the page at `index` is not mapped, if it is not.
    pub fn error(&self, index: usize) -> Option<MapError> {
        match self.result(index) {
            Some(Ok(_)) => None,
            Some(Err(e)) => Some(e),
            None => Some(MapError::Again),
        }
    }

    /// Unmaps every page that was mapped, in one batch, and empties the batch.
    pub fn unmap_all<M: GuestMemory + ?Sized>(&mut self, mem: &mut M, counters: &mut Counters) {
        let mut mapped: Vec<MappedPage, N> = Vec::new();
        let results = self.results.get_mut(..self.mapped).unwrap_or(&mut []);
        for result in results.iter_mut() {
            // Taken, leaving the slot as `map` expects to find it.
            if let Ok(page) = core::mem::replace(result, Err(MapError::Again)) {
                let _ = mapped.push(page);
            }
        }
        if !mapped.is_empty() {
            let refused = mem.unmap_batch(&mapped);
            counters.count_unmap(mapped.len(), refused);
        }
        self.queued = 0;
        self.mapped = 0;
        self.failures = 0;
    }
}

/// A guest buffer whose pages are mapped: byte-addressed reads and writes that cross
/// pages. Used for the rings, which stay mapped while a queue is live.
#[derive(Clone, Debug, Default)]
pub struct MappedRegion<const P: usize> {
    pages: Vec<MappedPage, P>,
    offset: usize,
    len: usize,
    /// The page holding the whole region and where the region starts in it, when it
    /// lies in one page (a ring that does not cross a page boundary): every access is
    /// then found there without locating its page.
    one_page: Option<(MappedPage, usize)>,
}

impl<const P: usize> MappedRegion<P> {
    /// Maps `span` in one batch; on any failure unmaps what did map and reports it.
    pub fn map<M: GuestMemory + ?Sized>(
        mem: &mut M,
        span: &GrantSpan,
        access: Access,
        counters: &mut Counters,
    ) -> Result<Self, MapError> {
        let mut batch: PageBatch<P> = PageBatch::new();
        batch
            .add_span(span, access, PageUse::Ring)
            .map_err(|_| MapError::NoSpace)?;
        batch.map(mem, counters);
        let mut pages = Vec::new();
        let mut first_error = None;
        for index in 0..batch.len() {
            match batch.result(index) {
                Some(Ok(page)) => {
                    let _ = pages.push(page);
                }
                Some(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                None => {}
            }
        }
        if let Some(error) = first_error {
            batch.unmap_all(mem, counters);
            return Err(error);
        }
        let mut region = Self {
            pages,
            offset: usize::from(span.offset),
            len: span.len as usize,
            one_page: None,
        };
        region.one_page = region.find_one_page();
        Ok(region)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The page holding the whole region and where the region starts in it, if the
    /// region fits in one page.
    pub fn within_one_page(&self) -> Option<(MappedPage, usize)> {
        self.one_page
    }

    fn find_one_page(&self) -> Option<(MappedPage, usize)> {
        let end = self.offset.checked_add(self.len)?;
        if end > PAGE_SIZE {
            return None;
        }
        Some((*self.pages.first()?, self.offset))
    }

    /// Appends the region's pages to `out` (for a combined unmap batch).
    pub fn pages(&self) -> &[MappedPage] {
        &self.pages
    }

    /// Reads `dst.len()` bytes at `at` bytes into the region.
    pub fn read<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        at: usize,
        dst: &mut [u8],
    ) -> Result<(), AccessError> {
        let (mut at, mut rest) = (at, dst);
        while !rest.is_empty() {
            let (page, page_offset, chunk) = self.locate(at, rest.len())?;
            let (part, tail) = core::mem::take(&mut rest)
                .split_at_mut_checked(chunk)
                .ok_or(AccessError::OutOfPage)?;
            mem.read(page, page_offset, part)?;
            at = at.checked_add(chunk).ok_or(AccessError::OutOfPage)?;
            rest = tail;
        }
        Ok(())
    }

    /// Writes `src` at `at` bytes into the region.
    pub fn write<M: GuestMemory + ?Sized>(
        &self,
        mem: &mut M,
        at: usize,
        src: &[u8],
    ) -> Result<(), AccessError> {
        let (mut at, mut rest) = (at, src);
        while !rest.is_empty() {
            let (page, page_offset, chunk) = self.locate(at, rest.len())?;
            let (part, tail) = rest.split_at_checked(chunk).ok_or(AccessError::OutOfPage)?;
            mem.write(page, page_offset, part)?;
            at = at.checked_add(chunk).ok_or(AccessError::OutOfPage)?;
            rest = tail;
        }
        Ok(())
    }

    /// The 16-byte descriptor at `at` (a multiple of 16 from a 16-aligned table, so never
    /// across a page).
    pub fn read_descriptor<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        at: usize,
    ) -> Result<DescriptorWords, AccessError> {
        let (page, page_offset, chunk) = self.locate(at, 16)?;
        if chunk == 16 {
            mem.read_descriptor(page, page_offset)
        } else {
            self.read_descriptor_across(mem, at)
        }
    }

    /// A descriptor across a page boundary (a table not 16-aligned): out of the hot
    /// path, so that path needs no stack buffer.
    #[cold]
    #[inline(never)]
    fn read_descriptor_across<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        at: usize,
    ) -> Result<DescriptorWords, AccessError> {
        let mut bytes = [0; 16];
        self.read(mem, at, &mut bytes)?;
        Ok(descriptor_words(&bytes))
    }

    /// A naturally aligned 16-bit field, read in one access when it sits in one page.
    pub fn read_u16<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        at: usize,
    ) -> Result<u16, AccessError> {
        let (page, page_offset, chunk) = self.locate(at, 2)?;
        if chunk == 2 {
            mem.read_u16(page, page_offset)
        } else {
            let mut bytes = [0; 2];
            self.read(mem, at, &mut bytes)?;
            Ok(u16::from_le_bytes(bytes))
        }
    }

    pub fn write_u16<M: GuestMemory + ?Sized>(
        &self,
        mem: &mut M,
        at: usize,
        value: u16,
    ) -> Result<(), AccessError> {
        let (page, page_offset, chunk) = self.locate(at, 2)?;
        if chunk == 2 {
            mem.write_u16(page, page_offset, value)
        } else {
            self.write(mem, at, &value.to_le_bytes())
        }
    }

    /// The page, offset in it, and how many of `want` bytes fit there, for byte `at`.
    #[inline]
    fn locate(&self, at: usize, want: usize) -> Result<(MappedPage, usize, usize), AccessError> {
        if at.checked_add(want).is_none_or(|end| end > self.len) {
            return Err(AccessError::OutOfPage);
        }
        if let Some((page, start)) = self.one_page {
            // The bytes lie in the region, so in its page: the sum stays below
            // PAGE_SIZE, never near saturating.
            return Ok((page, start.saturating_add(at), want));
        }
        let absolute = self.offset.checked_add(at).ok_or(AccessError::OutOfPage)?;
        let (index, page_offset, room) = page_position(absolute);
        let page = *self.pages.get(index).ok_or(AccessError::NotMapped)?;
        Ok((page, page_offset, want.min(room)))
    }
}
