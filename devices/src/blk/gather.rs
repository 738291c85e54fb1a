//! The data of a batch's requests copied together: for a disk whose bytes are in memory
//! (a RAM disk, [`BlockBackend::with_memory`]) and a guest memory that moves the pieces of
//! one call in one operation (the copy route: one `GNTTABOP_copy`), each request's pages
//! are queued with their place on the disk, and up to [`PIECES_PER_ACCESS`] of them, of
//! any number of requests, go in one copy between the grants and the disk itself (no
//! bounce buffer). A request alone in its batch, the mapped route and a disk whose bytes
//! are elsewhere (the host disk, behind its bounce buffer) keep the per-request path.
//!
//! Order: requests take effect as if served one by one. The queued pieces go one way at
//! a time (to the guest for reads, from it for writes) and are copied, in order, before a
//! piece going the other way is queued and before any other request touches the disk or
//! the guest's buffers (flush, discard, write-zeroes, get-id, a request served by the
//! per-request path); so a read after a write of the same sectors sees the write, and a
//! write after a read does not change what was read. Everything is copied before the
//! batch's status bytes are written and its used entries pushed.
//!
//! Failure: a copy refused for the whole group (a revoked or read-only grant, a bad
//! reference) is made again request by request, and only the requests refused again fail
//! (IOERR); as on the per-request path, a failed read may have filled part of its buffer
//! and a failed write part of its sectors (virtio leaves them undefined).

use super::backend::BlockBackend;
use super::{request, BlkDevice, STATUS_IOERR};
use crate::counters::Counters;
use crate::memory::{GuestMemory, Piece, Placed, PIECES_PER_ACCESS};
use crate::queue::chain::ChainBatch;
use crate::queue::serve::FailedChains;
use heapless::Vec;

/// The device's side: which requests gather, and what each one queues.
impl<B: BlockBackend> BlkDevice<B> {
    /// Whether the data of this request is gathered with the batch's others (`gather`):
    /// several requests in the batch, a memory that moves pieces together (the copy
    /// route), and a disk in memory.
    pub(super) fn gathering<M: GuestMemory + ?Sized>(&self, chain: &ChainBatch, mem: &M) -> bool {
        chain.batched() > 1 && mem.moves_pieces_together() && self.backend.in_memory()
    }

    /// Queues the data of a read (`Way::ToGuest`: the writable stream's first `len`
    /// bytes) or a write (`Way::FromGuest`: the readable stream's after the header) with
    /// the disk's bytes at `offset`, to be copied with the batch's others.
    pub(super) fn gather_data<M: GuestMemory + ?Sized>(
        &mut self,
        chain: &ChainBatch,
        mem: &mut M,
        counters: &mut Counters,
        way: Way,
        offset: u64,
        len: usize,
    ) -> Result<(), u8> {
        let (writable, at) = match way {
            Way::ToGuest => (true, 0),
            Way::FromGuest => (false, request::HEADER_SIZE),
        };
        // Inside the disk (checked_range), whose bytes are in memory: within usize.
        let mut disk_at = usize::try_from(offset).map_err(|_| STATUS_IOERR)?;
        let owner = chain.selected();
        chain
            .for_each_piece(writable, at, len, |piece| {
                let (gather, disk) = (&mut self.gather, &mut self.backend);
                gather.add(disk, mem, counters, way, owner, piece, disk_at);
                disk_at = disk_at.saturating_add(piece.len);
                Ok(())
            })
            .map_err(|_| STATUS_IOERR)
    }
}

/// Which way queued pieces go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// Disk -> guest (a read request).
    ToGuest,
    /// Guest -> disk (a write request).
    FromGuest,
}

impl Way {
    /// The counter of the bytes moved this way.
    pub fn total(self, counters: &mut Counters) -> &mut u64 {
        match self {
            Way::ToGuest => &mut counters.bytes_to_guest,
            Way::FromGuest => &mut counters.bytes_from_guest,
        }
    }
}

/// The queued pieces of a batch (fixed capacity: one copy's worth), and the requests
/// whose copies failed so far.
pub struct Gather {
    way: Way,
    /// Each piece with its byte offset on the disk.
    pieces: Vec<Placed, PIECES_PER_ACCESS>,
    /// The request (chain index in the batch) of each piece; a request's pieces are
    /// consecutive.
    owners: Vec<u8, PIECES_PER_ACCESS>,
    failed: FailedChains,
}

impl Default for Gather {
    fn default() -> Self {
        Self::new()
    }
}

impl Gather {
    pub const fn new() -> Self {
        Self {
            way: Way::ToGuest,
            pieces: Vec::new(),
            owners: Vec::new(),
            failed: 0,
        }
    }

    /// Queues `piece` of request `owner`, whose bytes are at `disk_at` on the disk,
    /// copied `way`. Copies what is queued first if it is full or goes the other way.
    #[allow(clippy::too_many_arguments)]
    pub fn add<B: BlockBackend + ?Sized, M: GuestMemory + ?Sized>(
        &mut self,
        disk: &mut B,
        mem: &mut M,
        counters: &mut Counters,
        way: Way,
        owner: usize,
        piece: Piece,
        disk_at: usize,
    ) {
        if self.way != way || self.pieces.is_full() {
            self.flush(disk, mem, counters);
            self.way = way;
        }
        let Ok(owner) = u8::try_from(owner) else {
            // Never: a batch holds at most MAX_BATCH_CHAINS chains.
            return;
        };
        let placed = Placed {
            piece,
            local: disk_at,
        };
        // Room was made above: both have it.
        let _ = self.pieces.push(placed);
        let _ = self.owners.push(owner);
    }

    /// Copies what is queued in one operation; if that is refused, request by request, and
    /// the requests refused again are marked failed. Nothing is left queued. Called from
    /// three places and not on every request: kept out of line (image size).
    #[inline(never)]
    pub fn flush<B: BlockBackend + ?Sized, M: GuestMemory + ?Sized>(
        &mut self,
        disk: &mut B,
        mem: &mut M,
        counters: &mut Counters,
    ) {
        if self.pieces.is_empty() {
            return;
        }
        let (way, pieces, owners) = (self.way, &self.pieces, &self.owners);
        let mut failed: FailedChains = 0;
        let mut moved: u64 = 0;
        let handed = disk.with_memory(way == Way::FromGuest, &mut |bytes| {
            if copy(mem, way, pieces, bytes) {
                moved = placed_bytes(pieces);
                return moved;
            }
            let mut start = 0;
            while let Some(&owner) = owners.get(start) {
                let len = owners
                    .iter()
                    .skip(start)
                    .take_while(|&&o| o == owner)
                    .count();
                let end = start.saturating_add(len);
                // A lone request's group was its own copy: not tried twice.
                let lone = start == 0 && end == owners.len();
                let run = pieces.get(start..end).unwrap_or(&[]);
                if !lone && copy(mem, way, run, bytes) {
                    moved = moved.saturating_add(placed_bytes(run));
                } else {
                    failed |= bit(owner);
                }
                start = end;
            }
            moved
        });
        if !handed {
            // The disk's memory was not handed over (never, for a disk that said it has
            // some): every request queued fails.
            failed = owners.iter().fold(0, |all, &o| all | bit(o));
        }
        self.failed |= failed;
        let total = way.total(counters);
        *total = total.saturating_add(moved);
        self.pieces.clear();
        self.owners.clear();
    }

    /// Copies what is queued, and returns the requests whose copies failed since the last
    /// call (forgetting them): the end of a batch.
    pub fn settle<B: BlockBackend + ?Sized, M: GuestMemory + ?Sized>(
        &mut self,
        disk: &mut B,
        mem: &mut M,
        counters: &mut Counters,
    ) -> FailedChains {
        self.flush(disk, mem, counters);
        core::mem::take(&mut self.failed)
    }
}

/// One copy of `pieces` between guest memory and the disk's bytes.
fn copy<M: GuestMemory + ?Sized>(
    mem: &mut M,
    way: Way,
    pieces: &[Placed],
    disk: &mut [u8],
) -> bool {
    match way {
        Way::ToGuest => mem.write_placed(pieces, disk),
        Way::FromGuest => mem.read_placed(pieces, disk),
    }
    .is_ok()
}

fn placed_bytes(pieces: &[Placed]) -> u64 {
    pieces
        .iter()
        .fold(0, |sum: u64, p| sum.saturating_add(p.piece.len as u64))
}

pub(super) fn bit(owner: u8) -> FailedChains {
    FailedChains::from(1u8)
        .checked_shl(u32::from(owner))
        .unwrap_or(0)
}
