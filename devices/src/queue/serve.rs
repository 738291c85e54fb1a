//! The loop that serves one queue for one pass: bounded work, unmap before completion,
//! one used-index publication and at most one interrupt decision per pass.
//!
//! Grant hypercalls dominate a grant-based backend, so the chains found together are
//! mapped together: a pass collects up to [`MAX_BATCH_CHAINS`] chains, maps all their
//! pages in one batch (one more when some use indirect tables), serves them, unmaps all
//! in one batch, and only then pushes their used entries.

use super::chain::{ChainBatch, Collected, MAX_BATCH_CHAINS};
use super::completion::{Completion, LastBytes};
use super::{QueueError, SplitQueue};
use crate::counters::Counters;
use crate::memory::GuestMemory;
use heapless::Vec;

/// What a pass over a queue did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassOutcome {
    /// Chains completed into the used ring.
    pub completed: usize,
    /// The quota ran out with chains still available: schedule another pass.
    pub more: bool,
    /// The driver asked to be interrupted for what was completed.
    pub interrupt: bool,
    /// The ring is malformed: the queue must stop and the device report `NEEDS_RESET`.
    pub broken: Option<QueueError>,
}

/// Chains a [`Handler::settle`] reports failed: bit `i` for chain `i` of the batch.
pub type FailedChains = u64;
const _: () = assert!(MAX_BATCH_CHAINS <= FailedChains::BITS as usize);

/// How a device answers the chains of a batch. A closure over one chain is a handler
/// that leaves nothing for later.
pub trait Handler<M: GuestMemory + ?Sized> {
    /// Answers the selected chain (the used length, and maybe a last byte to write).
    fn handle(&mut self, chain: &ChainBatch, mem: &mut M, counters: &mut Counters) -> Completion;

    /// Ends what [`Self::handle`] left pending for the batch (blk: the data copies it
    /// gathered across chains), after its last chain was handled and before the batch's
    /// last bytes are written, it is unmapped and its used entries are pushed. Returns the
    /// chains whose pending work failed: each is answered by [`Self::failed`] instead.
    fn settle(
        &mut self,
        chain: &mut ChainBatch,
        mem: &mut M,
        counters: &mut Counters,
    ) -> FailedChains {
        let _ = (chain, mem, counters);
        0
    }

    /// The answer of the selected chain, whose work [`Self::settle`] found failed.
    fn failed(&mut self, chain: &ChainBatch, counters: &mut Counters) -> Completion {
        let _ = (chain, counters);
        Completion::written(0)
    }
}

impl<M, F> Handler<M> for F
where
    M: GuestMemory + ?Sized,
    F: FnMut(&ChainBatch, &mut M, &mut Counters) -> Completion,
{
    fn handle(&mut self, chain: &ChainBatch, mem: &mut M, counters: &mut Counters) -> Completion {
        self(chain, mem, counters)
    }
}

/// Serves up to `quota` chains, in batches: collect (walk each chain), map the batch,
/// read the first `prefetch` bytes of every chain together (the device's request header,
/// 0 for none; see [`ChainBatch::prefetch`]), `handle` each chain (it returns the used
/// length, and maybe a last byte to write), settle what the handler left pending, write
/// the batch's last bytes together, unmap the batch, push the used entries. Then publish
/// once and decide about the interrupt.
pub fn serve_pass<M: GuestMemory + ?Sized, H: Handler<M> + ?Sized>(
    queue: &mut SplitQueue,
    chain: &mut ChainBatch,
    mem: &mut M,
    counters: &mut Counters,
    quota: usize,
    prefetch: usize,
    handler: &mut H,
) -> PassOutcome {
    let mut outcome = PassOutcome::default();
    // A pass starts from an empty batch, whatever another path left: chains of another
    // queue must never be served (and completed) on this one.
    chain.release(mem, counters);
    let result = (|| -> Result<(), QueueError> {
        loop {
            let Some(left) = quota.checked_sub(outcome.completed).filter(|&n| n > 0) else {
                outcome.more = queue.has_available(mem)?;
                if !outcome.more {
                    // The ring is empty: ask for the next notification, or a driver
                    // using EVENT_IDX never sends one (avail_event would stay stale).
                    outcome.more = queue.arm_notifications(mem)?;
                }
                return Ok(());
            };
            let room = left.min(MAX_BATCH_CHAINS);
            let broken = collect_batch(queue, chain, mem, room);
            if chain.batched() == 0 {
                if let Some(e) = broken {
                    return Err(e);
                }
                if queue.arm_notifications(mem)? {
                    continue;
                }
                return Ok(());
            }
            let mapped = chain.map_all(queue.size(), mem, counters);
            // A malformed table comes before any ring error found after it.
            let broken = mapped.broken.or(broken);
            if broken.is_none() {
                // Chains left out go back on the ring for the next batch. (After a
                // ring error the queue breaks and they are never served.)
                queue.unpop(u16::try_from(mapped.dropped).unwrap_or(0));
            }
            chain.prefetch(mem, prefetch);
            let mut answers: Vec<(u16, u32), MAX_BATCH_CHAINS> = Vec::new();
            let mut last_bytes = LastBytes::default();
            let mut deferred = false;
            // A lone chain's byte is one write either way.
            let together = mem.moves_pieces_together() && chain.batched() > 1;
            for index in 0..chain.batched() {
                chain.select(index);
                let completion = if chain.unreachable().is_some() {
                    counters.request_errors = counters.request_errors.saturating_add(1);
                    Completion::written(0)
                } else {
                    handler.handle(chain, mem, counters)
                };
                if completion.deferred {
                    // This chain and the ones after it were popped last: they go back on
                    // the ring in order, for the next pass.
                    let rest = (index..chain.batched()).len();
                    queue.unpop(u16::try_from(rest).unwrap_or(0));
                    deferred = true;
                    break;
                }
                let used_len = last_bytes.answer(chain, index, mem, completion, together, counters);
                // Capacity equals the batch's: cannot fail.
                let _ = answers.push((chain.head(), used_len));
            }
            let mut failed = handler.settle(chain, mem, counters);
            while failed != 0 {
                let index = failed.trailing_zeros() as usize;
                failed &= failed.wrapping_sub(1);
                chain.select(index);
                let completion = handler.failed(chain, counters);
                if let Some((_, used_len)) = answers.get_mut(index) {
                    *used_len =
                        last_bytes.answer(chain, index, mem, completion, together, counters);
                }
            }
            last_bytes.write_all(chain, mem, &mut answers, counters);
            chain.release(mem, counters);
            queue.push_used_all(mem, &answers)?;
            let answered = answers.len();
            counters.requests = counters.requests.saturating_add(answered as u64);
            // At most the quota's `left`: never near saturating.
            outcome.completed = outcome.completed.saturating_add(answered);
            if let Some(e) = broken {
                return Err(e);
            }
            if deferred {
                outcome.more = true;
                return Ok(());
            }
        }
    })();
    if let Err(e) = result {
        chain.release(mem, counters);
        counters.queue_errors = counters.queue_errors.saturating_add(1);
        outcome.broken = Some(e);
        outcome.more = false;
    }
    // Chains completed before a ring broke are still answered.
    if outcome.completed > 0 {
        match queue.publish(mem).and_then(|()| queue.needs_interrupt(mem)) {
            Ok(wanted) => outcome.interrupt = wanted,
            Err(e) => outcome.broken = outcome.broken.or(Some(e)),
        }
    }
    outcome
}

/// Pops and walks up to `room` chains into `chain`. Returns the ring error that ended
/// the collection, if one did; the chains collected before it are still served.
fn collect_batch<M: GuestMemory + ?Sized>(
    queue: &mut SplitQueue,
    chain: &mut ChainBatch,
    mem: &mut M,
    room: usize,
) -> Option<QueueError> {
    let mut heads = [0u16; MAX_BATCH_CHAINS];
    while chain.batched() < room {
        let wanted = heads
            .get_mut(..(chain.batched()..room).len())
            .unwrap_or(&mut []);
        let found = match queue.peek_heads(mem, wanted) {
            Ok(0) => return None,
            Ok(found) => found,
            Err(e) => return Some(e),
        };
        for &head in wanted.iter().take(found) {
            let head = match queue.check_head(head) {
                Ok(head) => head,
                Err(e) => return Some(e),
            };
            queue.consume();
            match chain.collect(queue, head, mem) {
                Ok(Collected::Added) => {}
                Ok(Collected::NoRoom) => {
                    queue.unpop(1);
                    return None;
                }
                Err(e) => return Some(e),
            }
        }
    }
    None
}
