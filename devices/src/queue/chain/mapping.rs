//! Mapping a batch of chains in one go, leaving out at the end the chains that do not
//! fit, and recording which segments could not be mapped.

use super::*;

impl ChainBatch {
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
    pub(super) fn drop_chains_out_of_room(&mut self, outcome: &mut MapOutcome) {
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
    pub(super) fn leave_out_from(&mut self, index: usize, outcome: &mut MapOutcome) {
        let dropped = self.chains.len().saturating_sub(index);
        outcome.dropped = outcome.dropped.saturating_add(dropped);
        self.chains.truncate(index);
    }

    /// After the last map batch: marks the segments with a page Xen refused.
    pub(super) fn record_map_faults(&mut self) {
        if self.pages.all_mapped() {
            return;
        }
        for segment in self.segments.iter_mut() {
            if let Ok(first) = segment.first_page() {
                let mut pages = (first..).take(segment.page_count());
                if let Some(error) = pages.find_map(|i| self.pages.error(i)) {
                    segment.fault = Some(SegmentFault::Map(error));
                }
            }
        }
    }

    /// The selected chain's segments.
    #[inline]
    pub(super) fn selected_segments(&self) -> &[Segment] {
        self.current()
            .and_then(|c| self.segments.get(c.first_segment..c.end_segment))
            .unwrap_or(&[])
    }

    /// Whether every segment was mapped with the access it needs.
    pub fn fully_mapped(&self) -> bool {
        self.selected_segments().iter().all(|s| s.fault.is_none())
    }
}
