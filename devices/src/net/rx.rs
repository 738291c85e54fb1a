//! Writing one frame into the rx buffers at the head of a driver's rx queue: in the
//! first buffer, or spread over several with MRG_RXBUF (virtio 1.2 section 5.1.6.4).

use super::frame::{Frame, NET_HDR_SIZE};
use crate::counters::Counters;
use crate::memory::GuestMemory;
use crate::queue::chain::{ChainBatch, ChainFault};
use crate::queue::{QueueError, SplitQueue};
use alloc::boxed::Box;

/// Rx buffers one frame may be spread over with MRG_RXBUF: a 64 KiB GSO frame in
/// buffers of Linux's smallest mergeable size (1536 bytes) takes 43.
const MAX_MERGE: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// One segment of a GSO frame went; the frame waits with the rest.
    SegmentDelivered,
    /// Not enough rx buffers yet: the frame goes back to wait.
    NoBuffers,
    /// The posted buffers cannot hold it: drop and count.
    TooBig,
    /// The first buffer was unusable and was returned empty; try the frame again.
    SkippedBuffer,
}

/// The rx side's scratch: a second chain for the further buffers of a merged frame.
pub struct RxWriter {
    merge_chain: Box<ChainBatch>,
}

impl RxWriter {
    pub fn new() -> Self {
        Self {
            merge_chain: Box::new(ChainBatch::new()),
        }
    }

    /// Writes one frame into the rx buffers at the head of the queue, in pieces when
    /// `merge` (MRG_RXBUF) was negotiated.
    pub fn deliver<M: GuestMemory + ?Sized>(
        &mut self,
        merge: bool,
        queue: &mut SplitQueue,
        chain: &mut ChainBatch,
        frame: &Frame,
        mem: &mut M,
        counters: &mut Counters,
    ) -> Result<Delivery, QueueError> {
        let Some(head) = queue.pop(mem)? else {
            return Ok(Delivery::NoBuffers);
        };
        if !load_rx_buffer(queue, chain, head, mem, counters)? {
            // Return it empty so the driver gets it back; the frame tries the next one.
            queue.push_used(mem, head, 0)?;
            counters.request_errors = counters.request_errors.saturating_add(1);
            counters.requests = counters.requests.saturating_add(1);
            return Ok(Delivery::SkippedBuffer);
        }
        // The room after the header (load_rx_buffer made sure there is a header's).
        let capacity = chain.writable_len().saturating_sub(NET_HDR_SIZE);
        if !merge && capacity < frame.len() {
            chain.release(mem, counters);
            queue.unpop(1);
            return Ok(Delivery::TooBig);
        }
        let first_part = frame.len().min(capacity);
        let mut extra: heapless::Vec<(u16, u32), MAX_MERGE> = heapless::Vec::new();
        // The frame's bytes past the first buffer's.
        let mut rest = frame.bytes().get(first_part..).unwrap_or(&[]);
        let mut outcome = Ok(Delivery::Delivered);
        while !rest.is_empty() {
            let next = if extra.is_full() {
                None
            } else {
                match queue.pop(mem) {
                    Ok(next) => next,
                    Err(e) => {
                        // The ring broke under a half-merged frame: the first buffer
                        // goes back unmapped, never left loaded in the shared scratch.
                        chain.release(mem, counters);
                        return Err(e);
                    }
                }
            };
            let Some(next_head) = next else {
                outcome = Ok(if extra.is_full() {
                    Delivery::TooBig
                } else {
                    Delivery::NoBuffers
                });
                break;
            };
            match load_rx_buffer(queue, &mut self.merge_chain, next_head, mem, counters) {
                Ok(true) => {}
                Ok(false) => {
                    chain.release(mem, counters);
                    return Err(QueueError::UnusableBuffer);
                }
                Err(e) => {
                    chain.release(mem, counters);
                    return Err(e);
                }
            }
            let part = rest.len().min(self.merge_chain.writable_len());
            let (bytes, tail) = rest.split_at_checked(part).unwrap_or((rest, &[]));
            let copied = self.merge_chain.write(mem, 0, bytes);
            self.merge_chain.release(mem, counters);
            if copied.is_err() {
                chain.release(mem, counters);
                return Err(QueueError::UnusableBuffer);
            }
            let _ = extra.push((next_head, bytes.len() as u32));
            rest = tail;
        }
        // The first buffer and the extra ones (at most MAX_MERGE).
        let buffers = (extra.len() as u16).saturating_add(1);
        if !matches!(outcome, Ok(Delivery::Delivered)) {
            chain.release(mem, counters);
            queue.unpop(buffers);
            return outcome;
        }
        let header = frame.offload.header(buffers);
        let first_bytes = frame.bytes().get(..first_part).unwrap_or(&[]);
        let copied = chain
            .write(mem, 0, &header)
            .and_then(|()| chain.write(mem, NET_HDR_SIZE, first_bytes));
        chain.release(mem, counters);
        if copied.is_err() {
            return Err(QueueError::UnusableBuffer);
        }
        // Within the buffer's writable bytes, checked above: never saturates.
        let used_len = NET_HDR_SIZE.saturating_add(first_part);
        queue.push_used(mem, head, used_len as u32)?;
        for (extra_head, len) in &extra {
            queue.push_used(mem, *extra_head, *len)?;
        }
        let bytes = NET_HDR_SIZE.saturating_add(frame.len()) as u64;
        counters.requests = counters.requests.saturating_add(u64::from(buffers));
        counters.frames_rx = counters.frames_rx.saturating_add(1);
        counters.bytes_to_guest = counters.bytes_to_guest.saturating_add(bytes);
        Ok(Delivery::Delivered)
    }
}

/// Loads an rx chain; false (released) when the driver made it unusable: readable parts,
/// grants that do not map writable, or room for less than a header.
fn load_rx_buffer<M: GuestMemory + ?Sized>(
    queue: &SplitQueue,
    chain: &mut ChainBatch,
    head: u16,
    mem: &mut M,
    counters: &mut Counters,
) -> Result<bool, QueueError> {
    match chain.load(queue, head, mem, counters) {
        Ok(()) => {}
        Err(ChainFault::Queue(e)) => {
            chain.release(mem, counters);
            return Err(e);
        }
        Err(ChainFault::IndirectUnreachable(_)) => {
            chain.release(mem, counters);
            return Ok(false);
        }
    }
    let usable =
        chain.readable_len() == 0 && chain.fully_mapped() && chain.writable_len() >= NET_HDR_SIZE;
    if !usable {
        chain.release(mem, counters);
    }
    Ok(usable)
}
