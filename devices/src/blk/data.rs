//! How a read's or a write's data moves between the guest and the disk: gathered with
//! the batch's others (`gather`), in transfers finished when the batch settles
//! (`transfers`), or whole, now, page piece by page piece.

use super::backend::{BlockBackend, StorageError};
use super::gather::Way;
use super::transfers::Route;
use super::{request, storage_status, BlkDevice};
use crate::counters::Counters;
use crate::memory::{slice_pieces, GuestMemory, Piece};
use crate::queue::chain::{BufferError, ChainBatch};

impl<B: BlockBackend> BlkDevice<B> {
    /// Moves the data of a read (`Way::ToGuest`: the writable stream's first `len`
    /// bytes) or a write (`Way::FromGuest`: the readable stream's after the header) with
    /// the disk's bytes at `offset`: gathered with the batch's others, in transfers the
    /// batch's settle finishes, or whole, now. False when it waits for the next pass.
    pub(super) fn move_data<M: GuestMemory + ?Sized>(
        &mut self,
        chain: &ChainBatch,
        mem: &mut M,
        counters: &mut Counters,
        way: Way,
        offset: u64,
        len: usize,
    ) -> Result<bool, u8> {
        let route = self.route(len);
        if route == Route::NextPass || !self.pass.charge(len as u64) {
            return Ok(false);
        }
        if self.gathering(chain, mem) {
            self.gather_data(chain, mem, counters, way, offset, len)?;
        } else if let Route::Transfers(chunk) = route {
            self.start_transfers(chain, mem, counters, way, (offset, len, chunk));
        } else {
            match way {
                Way::ToGuest => self.copy_to_guest(chain, mem, offset, len),
                Way::FromGuest => self.copy_from_guest(chain, mem, offset, len),
            }
            .map_err(|e| storage_status(e, counters))?;
            let total = way.total(counters);
            *total = total.saturating_add(len as u64);
        }
        Ok(true)
    }

    /// Disk bytes at `offset` into the writable stream, page piece by page piece, with no
    /// intermediate buffer.
    fn copy_to_guest<M: GuestMemory + ?Sized>(
        &mut self,
        chain: &ChainBatch,
        mem: &mut M,
        offset: u64,
        len: usize,
    ) -> Result<(), StorageError> {
        let mut storage = Ok(());
        // A group of pages at a time, so a copying memory moves what storage hands over
        // in one operation.
        let walked = chain.for_each_group(true, 0, len, |group, range| {
            let mut at = 0;
            storage = disk_offset(offset, &range).and_then(|disk_at| {
                self.backend.read(disk_at, range.len(), &mut |bytes| {
                    let part = slice_pieces(group, at, bytes.len());
                    // Storage hands at most the group's bytes: never saturates.
                    at = at.saturating_add(bytes.len());
                    covers(&part, bytes.len()) && mem.write_pieces(&part, bytes).is_ok()
                })
            });
            storage.map_err(|_| BufferError::OutOfRange)
        });
        storage?;
        walked.map_err(|_| StorageError::GuestAccess)
    }

    /// The readable stream after the header onto the disk at `offset`.
    fn copy_from_guest<M: GuestMemory + ?Sized>(
        &mut self,
        chain: &ChainBatch,
        mem: &M,
        offset: u64,
        len: usize,
    ) -> Result<(), StorageError> {
        let mut storage = Ok(());
        let walked = chain.for_each_group(false, request::HEADER_SIZE, len, |group, range| {
            let mut at = 0;
            storage = disk_offset(offset, &range).and_then(|disk_at| {
                self.backend.write(disk_at, range.len(), &mut |bytes| {
                    let part = slice_pieces(group, at, bytes.len());
                    // Storage hands at most the group's bytes: never saturates.
                    at = at.saturating_add(bytes.len());
                    covers(&part, bytes.len()) && mem.read_pieces(&part, bytes).is_ok()
                })
            });
            storage.map_err(|_| BufferError::OutOfRange)
        });
        storage?;
        walked.map_err(|_| StorageError::GuestAccess)
    }
}

/// Where on the disk the group of a transfer at `offset` covering `range` of the
/// request's data lies (inside the disk: `checked_range` passed the whole request).
fn disk_offset(offset: u64, range: &core::ops::Range<usize>) -> Result<u64, StorageError> {
    offset
        .checked_add(range.start as u64)
        .ok_or(StorageError::OutOfRange)
}

/// Whether `pieces` hold exactly `len` bytes (storage handed no more than it was asked).
fn covers(pieces: &[Piece], len: usize) -> bool {
    pieces.iter().map(|p| p.len).sum::<usize>() == len
}
