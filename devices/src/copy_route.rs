//! Request buffers reached by grant copy instead of mapping, while rings and indirect
//! tables stay mapped.
//!
//! On Xen a grant map and its unmap each change the backend's physmap and make Xen flush
//! TLBs; a grant copy (`GNTTABOP_copy`) touches no mapping at all. `cargo xtask
//! grant-bench` measured copying faster than map + copy + unmap at every size tried (64 B
//! to 64 KiB, alone and in bursts of 32). [`CopyRoute`] wraps the mapping implementation:
//! a buffer page "mapped" through it costs no hypercall, it is only a token for (grant,
//! access), and each read or write of it is one grant copy, which Xen checks as it checks a
//! mapping (the grant exists, is granted to us, and allows writing if we write). Pages
//! mapped for other uses pass through to the wrapped implementation.
//!
//! What differs from mapping: a bad, revoked or read-only grant is found when the page is
//! first read or written, not when the batch is mapped, so a write request may have moved
//! some of its bytes to storage before a later page fails (its status is still IOERR; the
//! virtio spec leaves the sectors of a failed write undefined).

use crate::grant::GrantRef;
use crate::memory::{
    descriptor_words, placed_range, Access, AccessError, Barrier, DescriptorWords, GuestMemory,
    MapError, MapRequest, MappedPage, PageUse, Piece, Placed, PIECES_PER_ACCESS,
};
use alloc::vec::Vec as HeapVec;
use heapless::Vec;

/// Bytes of one grant: `len` bytes from `offset` in the page `gref` names, and where they
/// go to or come from in the call's local buffer (`local..local + len`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantPiece {
    pub gref: GrantRef,
    pub offset: usize,
    pub len: usize,
    pub local: usize,
}

/// Copies between the backend's memory and one frontend's grants, every piece of a call
/// in one operation, in order (the kernel: one `GNTTABOP_copy`; the tests: the simulated
/// Xen's checks). `pieces` are at most [`PIECES_PER_ACCESS`], each inside the local buffer
/// (a piece outside it is refused): one after the other for a request's bytes, anywhere
/// for a gathered transfer (several requests' data at their sectors of a RAM disk).
pub trait GrantCopier {
    fn copy_from_grants(&self, pieces: &[GrantPiece], dst: &mut [u8]) -> Result<(), AccessError>;
    fn copy_to_grants(&self, pieces: &[GrantPiece], src: &[u8]) -> Result<(), AccessError>;
}

/// Marks a token as one of ours (a buffer reached by copy). The wrapped implementation's
/// tokens never have it (a mapped page whose token does is refused).
const COPIED: u64 = 1 << 63;

/// Buffer pages that may be outstanding at once: two full batches of chains. Past it,
/// buffers are mapped (correct, only slower).
pub const MAX_COPIED_PAGES: usize = 2048;

/// Grant copy operations (one per call to the copier, however many pieces it moved),
/// those refused, and the bytes moved, for the counters line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub copies: u64,
    pub refused: u64,
    pub bytes: u64,
}

/// [`GuestMemory`] that reaches buffer pages by copy and maps everything else through `M`.
pub struct CopyRoute<M, C> {
    mapped: M,
    copier: C,
    /// Live copied pages by token index: the grant and the access they were asked with.
    copied: HeapVec<Option<(GrantRef, Access)>>,
    free: HeapVec<u32>,
    /// Scratch for the requests and pages passed through (allocated once).
    pass_requests: HeapVec<MapRequest>,
    pass_index: HeapVec<usize>,
    pass_results: HeapVec<Result<MappedPage, MapError>>,
    pass_pages: HeapVec<MappedPage>,
    stats: core::cell::Cell<CopyStats>,
}

impl<M: GuestMemory, C: GrantCopier> CopyRoute<M, C> {
    pub fn new(mapped: M, copier: C) -> Self {
        Self {
            mapped,
            copier,
            copied: alloc::vec![None; MAX_COPIED_PAGES],
            free: (0..MAX_COPIED_PAGES as u32).rev().collect(),
            pass_requests: HeapVec::with_capacity(MAX_COPIED_PAGES),
            pass_index: HeapVec::with_capacity(MAX_COPIED_PAGES),
            pass_results: HeapVec::with_capacity(MAX_COPIED_PAGES),
            pass_pages: HeapVec::with_capacity(MAX_COPIED_PAGES),
            stats: core::cell::Cell::new(CopyStats::default()),
        }
    }

    pub fn stats(&self) -> CopyStats {
        self.stats.get()
    }

    /// Buffer pages handed out and not yet unmapped.
    pub fn copied_pages_live(&self) -> usize {
        MAX_COPIED_PAGES.saturating_sub(self.free.len())
    }

    /// The grants behind a run of our (copied) pieces, checked as a mapping would be, each
    /// inside a local buffer of `local_len` bytes.
    fn grants(
        &self,
        run: &[Placed],
        write: bool,
        local_len: usize,
    ) -> Result<Vec<GrantPiece, PIECES_PER_ACCESS>, AccessError> {
        let mut grants = Vec::new();
        for &placed in run {
            let piece = placed.piece;
            if placed_range(&placed).is_none_or(|range| range.end > local_len) {
                return Err(AccessError::OutOfPage);
            }
            let (gref, access) = self.lookup(piece.page).ok_or(AccessError::NotMapped)?;
            if write && access != Access::ReadWrite {
                return Err(AccessError::ReadOnly);
            }
            if piece
                .offset
                .checked_add(piece.len)
                .is_none_or(|end| end > crate::grant::PAGE_SIZE)
            {
                return Err(AccessError::OutOfPage);
            }
            let grant = GrantPiece {
                gref,
                offset: piece.offset,
                len: piece.len,
                local: placed.local,
            };
            grants.push(grant).map_err(|_| AccessError::OutOfPage)?;
        }
        Ok(grants)
    }

    fn lookup(&self, page: MappedPage) -> Option<(GrantRef, Access)> {
        if !is_copied(page) {
            return None;
        }
        let index = usize::try_from(page.token & !COPIED).ok()?;
        self.copied.get(index).copied().flatten()
    }

    fn count(&self, result: Result<(), AccessError>, bytes: usize) -> Result<(), AccessError> {
        let mut stats = self.stats.get();
        stats.copies = stats.copies.saturating_add(1);
        match result {
            Ok(()) => stats.bytes = stats.bytes.saturating_add(bytes as u64),
            Err(_) => stats.refused = stats.refused.saturating_add(1),
        }
        self.stats.set(stats);
        result
    }
}

impl<M: GuestMemory, C: GrantCopier> GuestMemory for CopyRoute<M, C> {
    // Rings and indirect tables are never copied: `map_batch` hands every page but a
    // request buffer to the wrapped memory.
    type Rings = M;

    fn rings(&self) -> &M {
        &self.mapped
    }

    fn rings_mut(&mut self) -> &mut M {
        &mut self.mapped
    }

    fn map_batch(&mut self, requests: &[MapRequest], results: &mut [Result<MappedPage, MapError>]) {
        self.pass_requests.clear();
        self.pass_index.clear();
        for (index, (request, result)) in requests.iter().zip(results.iter_mut()).enumerate() {
            let slot = (request.usage == PageUse::Buffer)
                .then(|| self.free.pop())
                .flatten();
            match slot.and_then(|s| self.copied.get_mut(s as usize).map(|e| (s, e))) {
                Some((slot, entry)) => {
                    *entry = Some((request.gref, request.access));
                    *result = Ok(MappedPage {
                        token: COPIED | u64::from(slot),
                        access: request.access,
                    });
                }
                None => {
                    self.pass_requests.push(*request);
                    self.pass_index.push(index);
                }
            }
        }
        if self.pass_requests.is_empty() {
            return;
        }
        self.pass_results.clear();
        self.pass_results
            .resize(self.pass_requests.len(), Err(MapError::Again));
        self.mapped
            .map_batch(&self.pass_requests, &mut self.pass_results);
        for (&index, &outcome) in self.pass_index.iter().zip(self.pass_results.iter()) {
            let outcome = match outcome {
                // A token we could not tell from ours: give the mapping back, refuse it.
                Ok(page) if is_copied(page) => {
                    self.mapped.unmap_batch(&[page]);
                    Err(MapError::Other(0))
                }
                other => other,
            };
            if let Some(result) = results.get_mut(index) {
                *result = outcome;
            }
        }
    }

    fn unmap_batch(&mut self, pages: &[MappedPage]) -> usize {
        self.pass_pages.clear();
        let mut unknown: usize = 0;
        for &page in pages {
            if !is_copied(page) {
                self.pass_pages.push(page);
                continue;
            }
            let index = (page.token & !COPIED) as usize;
            match self.copied.get_mut(index) {
                Some(entry @ Some(_)) => {
                    *entry = None;
                    self.free.push(index as u32);
                }
                _ => unknown = unknown.saturating_add(1),
            }
        }
        if self.pass_pages.is_empty() {
            return unknown;
        }
        unknown.saturating_add(self.mapped.unmap_batch(&self.pass_pages))
    }

    fn read(&self, page: MappedPage, offset: usize, dst: &mut [u8]) -> Result<(), AccessError> {
        if !is_copied(page) {
            return self.mapped.read(page, offset, dst);
        }
        let len = dst.len();
        self.read_pieces(&[Piece { page, offset, len }], dst)
    }

    fn write(&mut self, page: MappedPage, offset: usize, src: &[u8]) -> Result<(), AccessError> {
        if !is_copied(page) {
            return self.mapped.write(page, offset, src);
        }
        let len = src.len();
        self.write_pieces(&[Piece { page, offset, len }], src)
    }

    // A request's pieces are placed one after the other in its buffer: the same copies.
    fn read_pieces(&self, pieces: &[Piece], dst: &mut [u8]) -> Result<(), AccessError> {
        one_after_another(pieces, |placed| self.read_placed(placed, dst))
    }

    fn write_pieces(&mut self, pieces: &[Piece], src: &[u8]) -> Result<(), AccessError> {
        one_after_another(pieces, |placed| self.write_placed(placed, src))
    }

    fn read_placed(&self, pieces: &[Placed], local: &mut [u8]) -> Result<(), AccessError> {
        for run in runs(pieces, |p| p.piece.page) {
            if run_is_copied(run, |p| p.piece.page) {
                let grants = self.grants(run, false, local.len())?;
                let result = self.copier.copy_from_grants(&grants, local);
                self.count(result, placed_bytes(run))?;
            } else {
                self.mapped.read_placed(run, local)?;
            }
        }
        Ok(())
    }

    fn write_placed(&mut self, pieces: &[Placed], local: &[u8]) -> Result<(), AccessError> {
        for run in runs(pieces, |p| p.piece.page) {
            if run_is_copied(run, |p| p.piece.page) {
                let grants = self.grants(run, true, local.len())?;
                let result = self.copier.copy_to_grants(&grants, local);
                self.count(result, placed_bytes(run))?;
            } else {
                self.mapped.write_placed(run, local)?;
            }
        }
        Ok(())
    }

    fn moves_pieces_together(&self) -> bool {
        true
    }

    fn barrier(&self, kind: Barrier) {
        self.mapped.barrier(kind);
    }

    fn read_descriptor(
        &self,
        page: MappedPage,
        offset: usize,
    ) -> Result<DescriptorWords, AccessError> {
        if !is_copied(page) {
            return self.mapped.read_descriptor(page, offset);
        }
        let mut bytes = [0; 16];
        self.read(page, offset, &mut bytes)?;
        Ok(descriptor_words(&bytes))
    }

    fn read_u16(&self, page: MappedPage, offset: usize) -> Result<u16, AccessError> {
        if !is_copied(page) {
            return self.mapped.read_u16(page, offset);
        }
        let mut bytes = [0; 2];
        self.read(page, offset, &mut bytes)?;
        Ok(u16::from_le_bytes(bytes))
    }

    fn write_u16(
        &mut self,
        page: MappedPage,
        offset: usize,
        value: u16,
    ) -> Result<(), AccessError> {
        if !is_copied(page) {
            return self.mapped.write_u16(page, offset, value);
        }
        self.write(page, offset, &value.to_le_bytes())
    }
}

fn is_copied(page: MappedPage) -> bool {
    page.token & COPIED != 0
}

/// Whether a run of [`runs`] is of our (copied) pieces.
fn run_is_copied<T>(run: &[T], page: impl Fn(&T) -> MappedPage) -> bool {
    run.first().is_some_and(|p| is_copied(page(p)))
}

/// `pieces` placed one after the other from the start of the local buffer, handed to
/// `copy` [`PIECES_PER_ACCESS`] at a time (the length of each piece is checked against
/// the buffer by the copy).
fn one_after_another(
    pieces: &[Piece],
    mut copy: impl FnMut(&[Placed]) -> Result<(), AccessError>,
) -> Result<(), AccessError> {
    let mut group: Vec<Placed, PIECES_PER_ACCESS> = Vec::new();
    let mut at: usize = 0;
    for &piece in pieces {
        if group.is_full() {
            copy(&group)?;
            group.clear();
        }
        // Room was made above.
        let _ = group.push(Placed { piece, local: at });
        at = at.checked_add(piece.len).ok_or(AccessError::OutOfPage)?;
    }
    copy(&group)
}

/// The bytes a gathered run moves.
fn placed_bytes(run: &[Placed]) -> usize {
    run.iter()
        .fold(0, |sum: usize, p| sum.saturating_add(p.piece.len))
}

/// `pieces` (whose pages `page` gives) cut into runs of one kind (copied or mapped) of at
/// most [`PIECES_PER_ACCESS`]: each run is one copy operation or goes to the wrapped
/// memory. A chain mixes kinds only when the table of copied pages ran out in the middle
/// of a batch.
fn runs<T>(pieces: &[T], page: impl Fn(&T) -> MappedPage) -> impl Iterator<Item = &[T]> {
    let mut rest = pieces;
    core::iter::from_fn(move || {
        let kind = is_copied(page(rest.first()?));
        let len = rest
            .iter()
            .take(PIECES_PER_ACCESS)
            .take_while(|p| is_copied(page(p)) == kind)
            .count();
        let (run, after) = rest.split_at(len);
        rest = after;
        Some(run)
    })
}

#[cfg(test)]
mod tests;
