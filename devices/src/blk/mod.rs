//! virtio-blk (virtio 1.2 section 5.2), served from a [`BlockBackend`].
//!
//! Every request is validated before the backing store is touched: a request that fails
//! changes nothing. Status: OK, IOERR (bad buffers, out of range, read-only, storage
//! failure) or UNSUPP (unknown type).

pub mod backend;
mod config;
mod data;
mod gather;
mod request;
pub mod shared;
mod transfers;

use crate::counters::Counters;
use crate::device::{serve_pending, Io, ProcessOutcome, VirtioDevice};
use crate::features::blk as f;
use crate::memory::GuestMemory;
use crate::queue::chain::ChainBatch;
use crate::queue::completion::{Completion, LastByte};
use crate::queue::serve::{FailedChains, Handler};
use crate::queue::QUEUE_SIZE_LIMIT;
use alloc::boxed::Box;
use backend::{BlockBackend, StorageError, SECTOR_SIZE};
pub use config::{BlkOptions, MAX_RANGE_SEGMENTS};
pub use gather::Gather;
use gather::Way;
use request::{RangeSegment, RequestHeader, RequestType, RANGE_SEGMENT_SIZE};
use transfers::InFlight;

pub const DEVICE_ID: u32 = 2;
pub const STATUS_OK: u8 = 0;
pub const STATUS_IOERR: u8 = 1;
pub const STATUS_UNSUPP: u8 = 2;
const ID_BYTES: usize = 20;
// A whole request header is read ahead (`serve_pending`).
const _: () = assert!(request::HEADER_SIZE <= crate::queue::chain::MAX_PREFETCH);

/// Bytes one pass over the device's queues (one `process` call) may move or clear; the
/// requests after that wait for the next pass, so one notification never makes the
/// backend write gigabytes while every ioreq waits. The first request of a pass always
/// runs (each is bounded by itself: its chain's pages, or `max_*_sectors` for the range
/// requests). 64 MiB is 64 of Linux's largest (1 MiB) requests: a full data pass.
pub const PASS_BYTES: u64 = 64 << 20;

/// What the current pass has spent.
#[derive(Default)]
struct PassBudget {
    bytes: u64,
    requests: u32,
}

impl PassBudget {
    /// Charges a request of `bytes`; false when it must wait for the next pass.
    fn charge(&mut self, bytes: u64) -> bool {
        let total = self.bytes.saturating_add(bytes);
        if self.requests > 0 && total > PASS_BYTES {
            return false;
        }
        self.bytes = total;
        // Only ever compared with 0.
        self.requests = self.requests.saturating_add(1);
        true
    }
}

/// A request that did not fail: done (data bytes written to the driver), or left for the
/// next pass. A failure is its status byte (`Err`).
enum Answer {
    Done(usize),
    Deferred,
}

/// A virtio-blk device over a backing store.
pub struct BlkDevice<B: BlockBackend> {
    backend: B,
    options: BlkOptions,
    pass: PassBudget,
    /// The data copies of the batch being served, when they are gathered (see `gather`):
    /// allocated once, here (about 1.3 KiB, kept out of the device models' enum).
    gather: Box<Gather>,
    /// The transfers the batch being served has in flight on a disk that takes several
    /// (see `transfers`): allocated once, here.
    in_flight: Box<InFlight>,
}

impl<B: BlockBackend> BlkDevice<B> {
    pub fn new(backend: B, options: BlkOptions) -> Self {
        Self {
            backend,
            options,
            pass: PassBudget::default(),
            gather: Box::new(Gather::new()),
            in_flight: Box::default(),
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }
}

impl<B: BlockBackend> VirtioDevice for BlkDevice<B> {
    type Context = ();

    fn device_id(&self) -> u32 {
        DEVICE_ID
    }

    fn features(&self) -> u64 {
        let mut features =
            f::SIZE_MAX | f::SEG_MAX | f::BLK_SIZE | f::FLUSH | f::DISCARD | f::WRITE_ZEROES;
        if self.backend.read_only() {
            features |= f::RO;
        }
        if self.options.queues > 1 {
            features |= f::MQ;
        }
        features
    }

    fn queue_count(&self) -> usize {
        usize::from(self.options.queues)
    }

    fn queue_max_size(&self, index: usize) -> u16 {
        if index < self.queue_count() {
            QUEUE_SIZE_LIMIT
        } else {
            0
        }
    }

    fn config_bytes(&self, out: &mut [u8; 64]) -> usize {
        config::write_config(
            &self.options,
            self.backend.capacity_bytes() / SECTOR_SIZE,
            out,
        )
    }

    fn activate(&mut self, _features: u64) {}

    fn reset(&mut self) {}

    fn process<M: GuestMemory + ?Sized>(
        &mut self,
        io: Io<'_, M>,
        _context: &mut (),
    ) -> ProcessOutcome {
        self.pass = PassBudget::default();
        // The headers of a pass are read together: one grant copy per 32 on the copy
        // route; so are the status bytes, and the data of a RAM disk (`gather`).
        serve_pending(io, request::HEADER_SIZE, self)
    }
}

impl<B: BlockBackend, M: GuestMemory + ?Sized> Handler<M> for BlkDevice<B> {
    /// Answers one request: the used length (bytes written to the driver), and the status
    /// byte, which the pass writes together with the other requests' statuses.
    fn handle(&mut self, chain: &ChainBatch, mem: &mut M, counters: &mut Counters) -> Completion {
        let Some(status_at) = chain.writable_len().checked_sub(1) else {
            // No status byte: the driver cannot be told anything; return the chain empty.
            counters.request_errors = counters.request_errors.saturating_add(1);
            return Completion::written(0);
        };
        let (status, data_written) = match self.execute(chain, mem, counters) {
            Ok(Answer::Done(written)) => (STATUS_OK, written),
            Ok(Answer::Deferred) => return Completion::deferred(),
            Err(status) => (status, 0),
        };
        answer(status_at, status, data_written, counters)
    }

    /// The data copies gathered for the batch are made, and its transfers finished,
    /// before its status bytes.
    fn settle(
        &mut self,
        chain: &mut ChainBatch,
        mem: &mut M,
        counters: &mut Counters,
    ) -> FailedChains {
        self.gather.settle(&mut self.backend, mem, counters)
            | self.finish_transfers(chain, mem, counters)
    }

    /// A request whose gathered data copy was refused: IOERR, and no data.
    fn failed(&mut self, chain: &ChainBatch, counters: &mut Counters) -> Completion {
        // Only requests with a status byte are gathered.
        let status_at = chain.writable_len().saturating_sub(1);
        answer(status_at, STATUS_IOERR, 0, counters)
    }
}

/// The answer of a request with its status byte at `status_at`.
fn answer(
    status_at: usize,
    status: u8,
    data_written: usize,
    counters: &mut Counters,
) -> Completion {
    // The data, then the status byte: a length the used ring cannot hold (never, the
    // data being what the chain's mapped pages hold) fails the request.
    let used_len = data_written
        .checked_add(1)
        .and_then(|len| u32::try_from(len).ok());
    let (status, used_len) = used_len.map_or((STATUS_IOERR, 1), |len| (status, len));
    if status != STATUS_OK {
        counters.request_errors = counters.request_errors.saturating_add(1);
    }
    Completion {
        used_len,
        last_byte: Some(LastByte {
            at: status_at,
            value: status,
            // A failed request was counted above.
            counts_if_lost: status == STATUS_OK,
        }),
        deferred: false,
    }
}

impl<B: BlockBackend> BlkDevice<B> {
    /// Performs the request (unless the pass's budget is spent: then nothing happens), or
    /// fails with its status byte.
    fn execute<M: GuestMemory + ?Sized>(
        &mut self,
        chain: &ChainBatch,
        mem: &mut M,
        counters: &mut Counters,
    ) -> Result<Answer, u8> {
        let mut header = [0u8; request::HEADER_SIZE];
        chain.read(mem, 0, &mut header).map_err(|_| STATUS_IOERR)?;
        let header = RequestHeader::parse(&header);
        // Refuse before touching storage when any buffer is unusable.
        if !chain.fully_mapped() {
            return Err(STATUS_IOERR);
        }
        let gathering = self.gathering(chain, mem);
        if !gathering || !matches!(header.kind, RequestType::In | RequestType::Out) {
            // Everything gathered so far takes effect before this request does.
            self.gather.flush(&mut self.backend, mem, counters);
        }
        let writable_data = chain.writable_len().saturating_sub(1);
        let readable_data = chain.readable_len().saturating_sub(request::HEADER_SIZE);
        if self.after_transfers(header.kind) {
            return Ok(Answer::Deferred);
        }
        match header.kind {
            RequestType::In => {
                let offset = self.checked_range(header.sector, writable_data as u64)?;
                let moved =
                    self.move_data(chain, mem, counters, Way::ToGuest, offset, writable_data)?;
                Ok(if moved {
                    Answer::Done(writable_data)
                } else {
                    Answer::Deferred
                })
            }
            RequestType::Out => {
                self.refuse_if_read_only()?;
                let offset = self.checked_range(header.sector, readable_data as u64)?;
                let moved =
                    self.move_data(chain, mem, counters, Way::FromGuest, offset, readable_data)?;
                Ok(if moved {
                    Answer::Done(0)
                } else {
                    Answer::Deferred
                })
            }
            RequestType::Flush => {
                if !self.pass.charge(0) {
                    return Ok(Answer::Deferred);
                }
                self.backend
                    .flush()
                    .map_err(|e| storage_status(e, counters))?;
                Ok(Answer::Done(0))
            }
            RequestType::GetId => {
                let serial = self.backend.serial();
                let len = serial.len().min(ID_BYTES).min(writable_data);
                let id = serial.get(..len).ok_or(STATUS_IOERR)?;
                chain.write(mem, 0, id).map_err(|_| STATUS_IOERR)?;
                counters.bytes_to_guest = counters.bytes_to_guest.saturating_add(len as u64);
                Ok(Answer::Done(len))
            }
            RequestType::Discard | RequestType::WriteZeroes => {
                self.refuse_if_read_only()?;
                self.ranges(chain, mem, header.kind, readable_data, counters)
            }
            RequestType::Unsupported(_) => Err(STATUS_UNSUPP),
        }
    }

    /// DISCARD / WRITE_ZEROES: the segments are read from the guest once (no double
    /// fetch), all checked (in the disk, no two overlapping, together no more sectors
    /// than the device's limit: Linux keeps to it per request), charged to the pass,
    /// then applied.
    fn ranges<M: GuestMemory + ?Sized>(
        &mut self,
        chain: &ChainBatch,
        mem: &M,
        kind: RequestType,
        payload: usize,
        counters: &mut Counters,
    ) -> Result<Answer, u8> {
        let (max_segments, max_sectors) = match kind {
            RequestType::Discard => (
                self.options.max_discard_segments,
                self.options.max_discard_sectors,
            ),
            _ => (
                self.options.max_write_zeroes_segments,
                self.options.max_write_zeroes_sectors,
            ),
        };
        let count = payload / RANGE_SEGMENT_SIZE;
        if count == 0
            || !payload.is_multiple_of(RANGE_SEGMENT_SIZE)
            || count > max_segments as usize
        {
            return Err(STATUS_IOERR);
        }
        // Flags other than UNMAP (write-zeroes only) are reserved: refuse them.
        let allowed_flags = if kind == RequestType::WriteZeroes {
            request::FLAG_UNMAP
        } else {
            0
        };
        let mut ranges: heapless::Vec<(u64, u64), MAX_RANGE_SEGMENTS> = heapless::Vec::new();
        let mut sectors = 0u64;
        for index in 0..count {
            let mut bytes = [0u8; RANGE_SEGMENT_SIZE];
            let at = index
                .checked_mul(RANGE_SEGMENT_SIZE)
                .and_then(|at| at.checked_add(request::HEADER_SIZE))
                .ok_or(STATUS_IOERR)?;
            chain.read(mem, at, &mut bytes).map_err(|_| STATUS_IOERR)?;
            let segment = RangeSegment::parse(&bytes);
            if segment.num_sectors > max_sectors || segment.flags & !allowed_flags != 0 {
                return Err(STATUS_UNSUPP);
            }
            sectors = sectors
                .checked_add(u64::from(segment.num_sectors))
                .filter(|&sum| sum <= u64::from(max_sectors))
                .ok_or(STATUS_IOERR)?;
            let len = u64::from(segment.num_sectors)
                .checked_mul(SECTOR_SIZE)
                .ok_or(STATUS_IOERR)?;
            let offset = self.checked_range(segment.sector, len)?;
            // Ranges lie inside the disk (checked_range): no end saturates.
            let end = offset.saturating_add(len);
            let overlaps = ranges
                .iter()
                .any(|&(start, n)| offset < start.saturating_add(n) && start < end);
            if overlaps {
                return Err(STATUS_IOERR);
            }
            ranges.push((offset, len)).map_err(|_| STATUS_IOERR)?;
        }
        let bytes = sectors.checked_mul(SECTOR_SIZE).ok_or(STATUS_IOERR)?;
        if !self.pass.charge(bytes) {
            return Ok(Answer::Deferred);
        }
        for (offset, len) in ranges {
            let result = match kind {
                RequestType::Discard => self.backend.discard(offset, len),
                _ => self.backend.write_zeroes(offset, len),
            };
            result.map_err(|e| storage_status(e, counters))?;
        }
        Ok(Answer::Done(0))
    }

    /// The byte offset of `len` bytes at `sector`, if whole sectors inside the disk.
    fn checked_range(&self, sector: u64, len: u64) -> Result<u64, u8> {
        if !len.is_multiple_of(SECTOR_SIZE) {
            return Err(STATUS_IOERR);
        }
        let offset = sector.checked_mul(SECTOR_SIZE).ok_or(STATUS_IOERR)?;
        let end = offset.checked_add(len).ok_or(STATUS_IOERR)?;
        if end > self.backend.capacity_bytes() {
            return Err(STATUS_IOERR);
        }
        Ok(offset)
    }

    fn refuse_if_read_only(&self) -> Result<(), u8> {
        if self.backend.read_only() {
            Err(STATUS_IOERR)
        } else {
            Ok(())
        }
    }
}

fn storage_status(error: StorageError, counters: &mut Counters) -> u8 {
    if error == StorageError::Io {
        counters.storage_errors = counters.storage_errors.saturating_add(1);
    }
    STATUS_IOERR
}

#[cfg(test)]
mod tests;
