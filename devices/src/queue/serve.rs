//! The loop that serves one queue for one pass: bounded work, unmap before completion,
//! one used-index publication and at most one interrupt decision per pass.

use super::chain::{Chain, ChainFault};
use super::{QueueError, SplitQueue};
use crate::counters::Counters;
use crate::memory::GuestMemory;

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

/// Serves up to `quota` chains. For each: load (walk + one map batch), `handle` it (it
/// returns the number of bytes written for the used ring), release (one unmap batch),
/// push the used entry. Then publish once and decide about the interrupt.
pub fn serve_pass(
    queue: &mut SplitQueue,
    chain: &mut Chain,
    mem: &mut dyn GuestMemory,
    counters: &mut Counters,
    quota: usize,
    mut handle: impl FnMut(&Chain, &mut dyn GuestMemory, &mut Counters) -> u32,
) -> PassOutcome {
    let mut outcome = PassOutcome::default();
    let result = (|| -> Result<(), QueueError> {
        loop {
            if outcome.completed >= quota {
                outcome.more = queue.has_available(mem)?;
                return Ok(());
            }
            let head = match queue.pop(mem)? {
                Some(head) => head,
                None => {
                    if queue.arm_notifications(mem)? {
                        continue;
                    }
                    return Ok(());
                }
            };
            let used_len = match chain.load(queue, head, mem, counters) {
                Ok(()) => handle(chain, mem, counters),
                Err(ChainFault::IndirectUnreachable(_)) => {
                    counters.request_errors += 1;
                    0
                }
                Err(ChainFault::Queue(e)) => {
                    chain.release(mem, counters);
                    return Err(e);
                }
            };
            chain.release(mem, counters);
            queue.push_used(mem, head, used_len)?;
            counters.requests += 1;
            outcome.completed += 1;
        }
    })();
    if let Err(e) = result {
        counters.queue_errors += 1;
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
