//! Walking a chain's descriptors, direct and indirect, with hard limits: each segment's
//! pages are queued for the batch's one map as its descriptor is read.

use super::*;

impl ChainBatch {
    /// Walks the queue's own descriptors, queueing their pages and an indirect table's;
    /// returns the pages the chain will map (for an indirect chain: its direct segments',
    /// its table's and one per table entry, the pages the table is expected to name).
    pub(super) fn walk<M: GuestMemory + ?Sized>(
        &mut self,
        queue: &SplitQueue,
        loaded: &mut Loaded,
        mem: &M,
    ) -> Result<usize, QueueError> {
        let size = queue.size();
        let rings = mem.rings();
        let mut index = loaded.head;
        let queued_before = self.start_page_count();
        for _ in 0..size {
            let desc = queue.descriptor(rings, index)?;
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
                                self.count_unqueued(span.page_count());
                            }
                        }
                        // Reserving the pages the table will name keeps chains from
                        // being dropped after their tables are mapped.
                        loaded.expected_table_pages = entries as usize;
                        return Ok(self
                            .pages_since(queued_before)
                            .saturating_add(entries as usize));
                    }
                    Err(e) => {
                        loaded.unreachable = Some(SegmentFault::Address(e));
                        return Ok(self.pages_since(queued_before));
                    }
                }
            }
            self.add_segment(loaded, &desc)?;
            if !desc.has(DESC_F_NEXT) {
                return Ok(self.pages_since(queued_before));
            }
            index = desc.next;
        }
        // A chain longer than the queue: a loop. (The descriptor is read first, as the
        // others were, so an index out of range is reported as that.)
        queue.descriptor(rings, index)?;
        Err(QueueError::ChainLoop)
    }

    /// Walks each mapped indirect table in chain order. A chain whose table turned out
    /// to name more pages than the batch has left is dropped with every chain after it
    /// (unless it is the first); a malformed table ends the batch before its chain.
    pub(super) fn walk_tables<M: GuestMemory + ?Sized>(
        &mut self,
        queue_size: u16,
        mem: &M,
    ) -> MapOutcome {
        let mut outcome = MapOutcome {
            dropped: 0,
            broken: None,
        };
        // Pages the unwalked tables are expected to name, as reserved at collection.
        let mut expected: usize = self.chains.iter().map(|c| c.expected_table_pages).sum();
        for index in 0..self.chains.len() {
            let Some(mut loaded) = self.chains.get(index).copied() else {
                break;
            };
            // A chain without a table is left as collected.
            if let Some((span, first)) = loaded.table {
                expected = expected.saturating_sub(loaded.expected_table_pages);
                loaded.expected_table_pages = 0;
                let (segments_before, pages_before) = (self.segments.len(), self.pages.len());
                let table_pages = span.page_count() as usize;
                let table_end = first.saturating_add(table_pages);
                let mut pages = (first..).take(table_pages);
                let table_error = if self.pages.all_mapped_below(table_end) {
                    None
                } else {
                    pages.find_map(|i| self.pages.error(i))
                };
                if let Some(error) = table_error {
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
                            let needed = pages_before.checked_add(table_pages);
                            let needed = needed.and_then(|n| n.checked_add(expected));
                            index > 0 && needed.is_none_or(|n| n > MAX_CHAIN_PAGES)
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
                slot.walked(&loaded);
            }
        }
        outcome
    }

    /// Copies a chain's direct segments (those before its indirect descriptor) to the
    /// end of the pool, so the table's segments follow them contiguously.
    #[inline]
    pub(super) fn move_to_end(&mut self, loaded: &mut Loaded) -> Result<(), QueueError> {
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
    pub(super) fn walk_indirect<M: GuestMemory + ?Sized>(
        &mut self,
        span: &GrantSpan,
        first: usize,
        queue_size: u16,
        loaded: &mut Loaded,
        mem: &M,
    ) -> Result<usize, QueueError> {
        let entries = (span.len / 16).min(u32::from(queue_size));
        // A table in one page (the usual, 16-aligned one) is read from that page, looked
        // up once; one across two pages looks each entry's page up in the batch.
        let table = Table {
            whole: if span.page_count() > 1 {
                None
            } else {
                self.pages.page(first)
            },
            first,
            offset: span.offset,
        };
        let rings = mem.rings();
        let mut index: u32 = 0;
        let queued_before = self.start_page_count();
        for _ in 0..entries {
            let desc = Descriptor::from_words(table.words(&self.pages, index, rings)?);
            if desc.has(DESC_F_INDIRECT) {
                return Err(QueueError::BadIndirect);
            }
            self.add_segment(loaded, &desc)?;
            if !desc.has(DESC_F_NEXT) {
                return Ok(self.pages_since(queued_before));
            }
            if u32::from(desc.next) >= entries {
                return Err(QueueError::IndexOutOfRange(desc.next));
            }
            index = u32::from(desc.next);
        }
        // More descriptors than the table holds: a loop (read first, as in `walk`).
        table.words(&self.pages, index, rings)?;
        Err(QueueError::ChainLoop)
    }

    /// Starts counting the pages a walk needs ([`Self::pages_since`]): returns the
    /// batch's queued pages so far.
    fn start_page_count(&mut self) -> usize {
        self.unqueued_pages = 0;
        self.pages.len()
    }

    /// The pages the walk needs since [`Self::start_page_count`] returned `queued_before`:
    /// those it queued and those it had no room to. Saturating: a saturated count only
    /// ever refuses the chain room.
    fn pages_since(&self, queued_before: usize) -> usize {
        self.pages
            .len()
            .saturating_sub(queued_before)
            .saturating_add(self.unqueued_pages)
    }

    /// Counts pages a walk needs that the batch had no room to queue (out of the hot path).
    #[cold]
    fn count_unqueued(&mut self, pages: u32) {
        self.unqueued_pages = self.unqueued_pages.saturating_add(pages as usize);
    }

    /// Adds one descriptor's buffer and queues its pages (see [`Self::pages_since`]).
    #[inline]
    pub(super) fn add_segment(
        &mut self,
        loaded: &mut Loaded,
        desc: &Descriptor,
    ) -> Result<(), QueueError> {
        let writable = desc.has(DESC_F_WRITE);
        if !writable && loaded.writable_len > 0 {
            return Err(QueueError::ReadableAfterWritable);
        }
        if desc.len == 0 {
            return Ok(());
        }
        // The spec bounds one chain by the queue size, whatever room the batch has. (A
        // full pool refuses the push below; the caller forgets the pages queued.)
        let chain_segments = self.segments.len().saturating_sub(loaded.first_segment);
        if chain_segments >= MAX_SEGMENTS {
            return Err(QueueError::ChainTooLong);
        }
        let access = if writable {
            Access::ReadWrite
        } else {
            Access::ReadOnly
        };
        let segment = |first_page, offset, fault| Segment {
            len: desc.len,
            first_page,
            offset,
            writable,
            fault,
        };
        let segment = match GrantSpan::new(desc.addr, desc.len) {
            Ok(span) => match self.pages.add_span(&span, access, PageUse::Buffer) {
                Ok(first) => match u16::try_from(first) {
                    Ok(first) => segment(first, span.offset, None),
                    Err(_) => segment(0, span.offset, Some(SegmentFault::TooManyPages)),
                },
                Err(BatchError::Full) => {
                    self.count_unqueued(span.page_count());
                    segment(0, span.offset, Some(SegmentFault::TooManyPages))
                }
            },
            Err(e) => segment(0, 0, Some(SegmentFault::Address(e))),
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
        Ok(())
    }
}

/// A mapped indirect table: the page holding it when it lies in one, the index in the
/// batch of its first page, and where the table starts in it.
struct Table {
    /// The page holding the whole table, when it lies in one (the usual, 16-aligned
    /// table): every entry is then read from it without locating its page.
    whole: Option<MappedPage>,
    first: usize,
    offset: u16,
}

impl Table {
    /// The words of entry `index` of the table (below the table's entry count).
    ///
    /// Words, not a `Result<Descriptor, QueueError>`, and inlined: the walk's loop takes
    /// the descriptor apart in registers. A `Descriptor` returned in that `Result` was
    /// copied through the stack with loads straddling the stores just made, two failed
    /// store forwards per entry (indirect chains 30 to 40 % slower).
    #[inline]
    fn words<const N: usize, M: GuestMemory + ?Sized>(
        &self,
        batch: &PageBatch<N>,
        index: u32,
        rings: &M,
    ) -> Result<DescriptorWords, AccessError> {
        if let Some(page) = self.whole {
            // An entry (below the count) of a table in one page lies in that page: the
            // sum stays below PAGE_SIZE, never near saturating.
            let at = usize::from(self.offset).saturating_add((index as usize).saturating_mul(16));
            return rings.read_descriptor(page, at);
        }
        let at = (index as usize)
            .checked_mul(16)
            .and_then(|at| at.checked_add(usize::from(self.offset)))
            .ok_or(AccessError::OutOfPage)?;
        let (page, offset, room) = page_position(at);
        let page = self.first.checked_add(page).and_then(|i| batch.page(i));
        match page {
            Some(page) if room >= 16 => rings.read_descriptor(page, offset),
            // Across the page boundary (a table not 16-aligned), or not mapped.
            _ => read_descriptor_bytewise(batch, self.first, at, rings),
        }
    }
}

/// The descriptor at byte `at` of a table mapped on consecutive batch pages from
/// `first`, read bytewise: the walk's fallback when it does not lie in one mapped page.
pub(super) fn read_descriptor_bytewise<const N: usize, M: GuestMemory + ?Sized>(
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
pub(super) fn read_pages<const N: usize, M: GuestMemory + ?Sized>(
    pages: &PageBatch<N>,
    first: usize,
    at: usize,
    dst: &mut [u8],
    mem: &M,
) -> Result<(), AccessError> {
    let (mut at, mut rest) = (at, dst);
    while !rest.is_empty() {
        let (index, offset, room) = page_position(at);
        let page = first
            .checked_add(index)
            .and_then(|index| pages.page(index))
            .ok_or(AccessError::NotMapped)?;
        let chunk = rest.len().min(room);
        let (part, tail) = core::mem::take(&mut rest)
            .split_at_mut_checked(chunk)
            .ok_or(AccessError::OutOfPage)?;
        mem.read(page, offset, part)?;
        at = at.checked_add(chunk).ok_or(AccessError::OutOfPage)?;
        rest = tail;
    }
    Ok(())
}
