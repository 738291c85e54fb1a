//! Reads and writes on a disk that has several transfers in flight at once (the host's
//! physical disk, a bounce buffer each: [`BlockBackend::start`]). The requests of a batch
//! start their transfers as they are handled (a write's data copied from the guest
//! first), so the disk works on all of them together; the batch's settle waits for each,
//! copies a read's data to the guest, and fails the requests whose transfers failed.
//! Nothing is in flight between batches: a reset or a detach never finds a transfer.
//!
//! Order: a flush, discard or write-zeroes, and a request too large for the free room,
//! wait for the next pass while transfers are in flight (the batch settles first), so
//! each sees the writes handled before it done. Reads and writes of one batch are in
//! flight together and may complete in any order, as virtio allows for requests the
//! driver has not seen completed.

use super::backend::{BlockBackend, Fill, Ticket};
use super::gather::{bit, Way};
use super::request::RequestType;
use super::{request, storage_status, BlkDevice};
use crate::counters::Counters;
use crate::memory::GuestMemory;
use crate::queue::chain::ChainBatch;
use crate::queue::serve::FailedChains;
use heapless::Vec;

/// Transfers one device has in flight at most: one batch's worth of one-chunk requests.
pub const MAX_TRANSFERS: usize = crate::queue::chain::MAX_BATCH_CHAINS;

/// How a read or write is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// Whole, by `read`/`write` (a backend without transfers, or a request larger than
    /// its whole room: nothing else is in flight then).
    Whole,
    /// In transfers of up to this many bytes, finished when the batch settles.
    Transfers(usize),
    /// At the next pass, when the transfers in flight have ended.
    NextPass,
}

/// One transfer in flight: `len` bytes at byte `at` of request `owner`'s data.
struct Transfer {
    ticket: Ticket,
    owner: u8,
    at: usize,
    len: usize,
    way: Way,
}

/// The transfers of the batch being served.
#[derive(Default)]
pub struct InFlight {
    transfers: Vec<Transfer, MAX_TRANSFERS>,
    /// Requests a transfer of which could not start.
    failed: FailedChains,
}

impl InFlight {
    pub fn busy(&self) -> bool {
        !self.transfers.is_empty()
    }
}

impl<B: BlockBackend> BlkDevice<B> {
    /// Whether a request of `kind` waits for the next pass: one that reaches the disk
    /// other than by a read or write, while transfers are in flight.
    pub(super) fn after_transfers(&self, kind: RequestType) -> bool {
        self.in_flight.busy()
            && matches!(
                kind,
                RequestType::Flush | RequestType::Discard | RequestType::WriteZeroes
            )
    }

    /// How a read or write of `len` bytes is served.
    pub(super) fn route(&self, len: usize) -> Route {
        let Some(room) = self.backend.transfer_room().filter(|r| r.chunk > 0) else {
            return Route::Whole;
        };
        let free = room
            .transfers
            .min(MAX_TRANSFERS)
            .saturating_sub(self.in_flight.transfers.len());
        if len.div_ceil(room.chunk) <= free {
            Route::Transfers(room.chunk)
        } else if self.in_flight.busy() {
            Route::NextPass
        } else {
            Route::Whole
        }
    }

    /// Starts the transfers of the selected request: the first `len` bytes of its
    /// writable stream (`Way::ToGuest`, a read) or of its readable stream after the
    /// header (`Way::FromGuest`), at byte `offset` of the disk, `chunk` bytes at most a transfer. A transfer that cannot
    /// start fails the request when the batch settles.
    pub(super) fn start_transfers<M: GuestMemory + ?Sized>(
        &mut self,
        chain: &ChainBatch,
        mem: &M,
        counters: &mut Counters,
        way: Way,
        (offset, len, chunk): (u64, usize, usize),
    ) {
        let owner = u8::try_from(chain.selected()).unwrap_or(u8::MAX);
        let mut at = 0;
        while at < len && chunk > 0 {
            let n = len.saturating_sub(at).min(chunk);
            // Inside the disk (`checked_range` passed the whole request).
            let disk_at = offset.saturating_add(at as u64);
            let mut copy = |buffer: &mut [u8]| {
                chain
                    .read(mem, request::HEADER_SIZE.saturating_add(at), buffer)
                    .is_ok()
            };
            let fill: Fill<'_> = match way {
                Way::ToGuest => None,
                Way::FromGuest => Some(&mut copy),
            };
            match self.backend.start(disk_at, n, fill) {
                Ok(ticket) => {
                    let transfer = Transfer {
                        ticket,
                        owner,
                        at,
                        len: n,
                        way,
                    };
                    // `route` counted the room.
                    let _ = self.in_flight.transfers.push(transfer);
                }
                Err(e) => {
                    storage_status(e, counters);
                    self.in_flight.failed |= bit(owner);
                    return;
                }
            }
            // At most `len`.
            at = at.saturating_add(n);
        }
    }

    /// Waits for every transfer of the batch, copies the reads' data to the guest, and
    /// returns the requests that failed (a transfer, or its copy).
    pub(super) fn finish_transfers<M: GuestMemory + ?Sized>(
        &mut self,
        chain: &mut ChainBatch,
        mem: &mut M,
        counters: &mut Counters,
    ) -> FailedChains {
        let (in_flight, backend) = (&mut *self.in_flight, &mut self.backend);
        let mut failed = core::mem::take(&mut in_flight.failed);
        for t in &in_flight.transfers {
            chain.select(usize::from(t.owner));
            let chain = &*chain;
            let result = backend.finish(t.ticket, &mut |bytes| {
                t.way == Way::FromGuest || chain.write(mem, t.at, bytes).is_ok()
            });
            match result {
                Ok(()) => {
                    let total = t.way.total(counters);
                    *total = total.saturating_add(t.len as u64);
                }
                Err(e) => {
                    storage_status(e, counters);
                    failed |= bit(t.owner);
                }
            }
        }
        in_flight.transfers.clear();
        failed
    }
}
