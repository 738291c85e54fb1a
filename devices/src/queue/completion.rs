//! How a device answers a chain, and the last byte of each answer written for the whole
//! batch at once.
//!
//! A virtio-blk request ends with a one-byte status. Written chain by chain, on the copy
//! route that is one `GNTTABOP_copy` per request just for that byte; written together
//! before the batch is unmapped, it is one per [`PIECES_PER_ACCESS`] requests.

use super::chain::{ChainBatch, MAX_BATCH_CHAINS};
use crate::counters::Counters;
use crate::memory::{GuestMemory, Piece, PIECES_PER_ACCESS};
use heapless::Vec;

/// A handler's answer for the selected chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// Bytes written to the driver, for the used ring (counting `last_byte`).
    pub used_len: u32,
    /// A byte still to write at the end of the answer (the blk status). The pass writes
    /// those of all its chains together, before it unmaps them and pushes the used
    /// entries; a chain whose byte cannot be written is answered with length 0.
    pub last_byte: Option<LastByte>,
    /// Not served now: the pass's byte budget is spent. The chain and the rest of the
    /// batch go back on the ring for the next pass, untouched.
    pub deferred: bool,
}

impl Completion {
    /// An answer already written in full.
    pub fn written(used_len: u32) -> Self {
        Self {
            used_len,
            last_byte: None,
            deferred: false,
        }
    }

    /// The chain waits for the next pass (see [`Self::deferred`]).
    pub fn deferred() -> Self {
        Self {
            used_len: 0,
            last_byte: None,
            deferred: true,
        }
    }
}

/// One byte to write at `at` of the chain's writable stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastByte {
    pub at: usize,
    pub value: u8,
    /// Whether the request fails anew if the byte cannot be written (false when it
    /// failed already and was counted then).
    pub counts_if_lost: bool,
}

/// Writes the selected chain's last byte now; if it cannot be written, the chain is
/// answered with length 0 (`used_len`). For a memory that does not move pieces
/// together, where gathering the batch's bytes saves nothing.
pub fn write_now<M: GuestMemory + ?Sized>(
    chain: &ChainBatch,
    mem: &mut M,
    byte: LastByte,
    used_len: &mut u32,
    counters: &mut Counters,
) {
    if chain.write(mem, byte.at, &[byte.value]).is_err() {
        *used_len = 0;
        if byte.counts_if_lost {
            counters.request_errors = counters.request_errors.saturating_add(1);
        }
    }
}

/// The last bytes the handlers of one batch left to write, by chain index in the batch.
#[derive(Default)]
pub struct LastBytes {
    pending: Vec<(usize, LastByte), MAX_BATCH_CHAINS>,
}

impl LastBytes {
    /// Answers chain `index` of the batch (the one `chain` has selected) with
    /// `completion`, and returns its used length. Its last byte is kept for
    /// [`Self::write_all`] when `together` (a memory that moves pieces together, several
    /// chains), in place of the byte kept for the chain's first answer if this one
    /// revises it ([`super::serve::Handler::settle`]); otherwise, or if there is no room,
    /// it is written at once ([`write_now`]).
    pub fn answer<M: GuestMemory + ?Sized>(
        &mut self,
        chain: &ChainBatch,
        index: usize,
        mem: &mut M,
        completion: Completion,
        together: bool,
        counters: &mut Counters,
    ) -> u32 {
        let mut used_len = completion.used_len;
        // Kept in chain order: a first answer goes at the end, a revised one in place.
        let at = self.pending.partition_point(|&(kept, _)| kept < index);
        if self.pending.get(at).is_some_and(|&(kept, _)| kept == index) {
            self.pending.remove(at);
        }
        if let Some(byte) = completion.last_byte {
            if !(together && self.pending.insert(at, (index, byte)).is_ok()) {
                write_now(chain, mem, byte, &mut used_len, counters);
            }
        }
        used_len
    }

    /// Writes the bytes kept, while the batch is still mapped: each group of up to
    /// [`PIECES_PER_ACCESS`] in one write. A group whose write fails is written chain by
    /// chain, so a failure stays with its chain: its used length in `answers` becomes 0.
    pub fn write_all<M: GuestMemory + ?Sized>(
        &mut self,
        chain: &mut ChainBatch,
        mem: &mut M,
        answers: &mut [(u16, u32)],
        counters: &mut Counters,
    ) {
        if self.pending.is_empty() {
            return;
        }
        let mut rest: &[(usize, LastByte)] = &self.pending;
        let mut group = Gathered::default();
        while !rest.is_empty() {
            gather(chain, rest, &mut group);
            let members = group.pieces.len();
            let written = members > 1 && mem.write_pieces(&group.pieces, &group.values).is_ok();
            let taken = members.max(1);
            let (done, later) = (
                rest.get(..taken).unwrap_or(rest),
                rest.get(taken..).unwrap_or(&[]),
            );
            if !written {
                for &(index, byte) in done {
                    chain.select(index);
                    if let Some((_, used_len)) = answers.get_mut(index) {
                        write_now(chain, mem, byte, used_len, counters);
                    }
                }
            }
            rest = later;
        }
        self.pending.clear();
    }
}

/// Up to [`PIECES_PER_ACCESS`] leading bytes of `pending` whose pieces were found, in
/// order ([`gather`] stops at the first byte that has no single piece: that one is
/// written by itself).
#[derive(Default)]
struct Gathered {
    pieces: Vec<Piece, PIECES_PER_ACCESS>,
    values: Vec<u8, PIECES_PER_ACCESS>,
}

fn gather(chain: &mut ChainBatch, pending: &[(usize, LastByte)], group: &mut Gathered) {
    group.pieces.clear();
    group.values.clear();
    for &(index, byte) in pending.iter().take(PIECES_PER_ACCESS) {
        chain.select(index);
        let Some(piece) = chain.byte_piece(byte.at) else {
            break;
        };
        // Both have room: at most PIECES_PER_ACCESS members are taken.
        let _ = group.pieces.push(piece);
        let _ = group.values.push(byte.value);
    }
}
