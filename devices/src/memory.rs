//! How a device reaches guest memory: grant mappings, and nothing else.
//!
//! The kernel implements [`GuestMemory`] with `GNTTABOP_map_grant_ref` batches into its
//! grant window; the host tests implement it with a simulated grant table that enforces
//! Xen's rules. One implementation serves one frontend domain, so devices never see domids.

use crate::grant::GrantRef;

/// The access a mapping is requested with. Device-readable buffers are mapped read-only,
/// so a frontend may grant them read-only (Linux does, for `DMA_TO_DEVICE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

/// What a page is mapped for. Rings and indirect tables are read a few bytes at a time
/// and must stay mapped; a request's data buffers are moved in bulk, so an implementation
/// may reach them by grant copy instead (see [`crate::copy_route`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageUse {
    Ring,
    Table,
    Buffer,
}

/// One page to map in a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapRequest {
    pub gref: GrantRef,
    pub access: Access,
    pub usage: PageUse,
}

/// A page mapped by [`GuestMemory::map_batch`]. The token's meaning belongs to the
/// implementation (the kernel packs its window slot and Xen's grant handle in it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappedPage {
    pub token: u64,
    pub access: Access,
}

/// Why one page of a batch could not be mapped (Xen's `GNTST_*`, grouped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// `GNTST_bad_gntref`: no such grant, or it was revoked.
    BadGrantRef,
    /// `GNTST_permission_denied`: granted read-only (asked writable) or to another domain.
    PermissionDenied,
    /// `GNTST_no_device_space`, or the backend's grant window is full.
    NoSpace,
    /// `GNTST_eagain`: try later.
    Again,
    /// `GNTST_bad_domain`: the frontend domain is gone.
    BadDomain,
    /// Any other `GNTST_*` status, kept for the log.
    Other(i16),
}

/// Why a read or write of a mapped page failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessError {
    /// The range leaves the page.
    OutOfPage,
    /// A write to a page mapped read-only.
    ReadOnly,
    /// The token is not a live mapping.
    NotMapped,
    /// A grant copy was refused: the grant was revoked, is not ours, or does not allow
    /// the access (only with [`crate::copy_route::CopyRoute`]).
    Refused,
}

/// Where a device needs ordering between its accesses to shared rings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Barrier {
    /// After reading an index the driver published, before reading what it covers
    /// (avail.idx -> ring entries and descriptors).
    Acquire,
    /// Before publishing an index, after writing what it covers (used entries -> used.idx).
    Release,
    /// Between publishing used.idx / avail_event and reading the driver's suppression
    /// fields (used_event, avail.flags): store-load ordering.
    Full,
}

/// A byte range of one mapped page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub page: MappedPage,
    pub offset: usize,
    pub len: usize,
}

/// A piece of guest memory and where its bytes are in a local buffer: one element of a
/// gathered transfer ([`GuestMemory::read_placed`], [`GuestMemory::write_placed`]), whose
/// pieces each have their own place in the buffer (the data of several requests, each at
/// its sectors of a RAM disk), in any order, overlapping or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    pub piece: Piece,
    /// Where the piece's bytes start in the local buffer.
    pub local: usize,
}

/// The part of `pieces` (consecutive in a stream) covering the `len` bytes from `at`,
/// trimmed at both ends. Bytes beyond the pieces are left out.
pub fn slice_pieces(
    pieces: &[Piece],
    at: usize,
    len: usize,
) -> heapless::Vec<Piece, PIECES_PER_ACCESS> {
    let mut out = heapless::Vec::new();
    let (mut skip, mut left) = (at, len);
    for piece in pieces {
        if left == 0 {
            break;
        }
        if let Some(still) = skip.checked_sub(piece.len) {
            skip = still;
            continue;
        }
        // What is left of the piece after `skip` (some of it: skip < piece.len).
        let take = piece.len.saturating_sub(skip).min(left);
        let Some(offset) = piece.offset.checked_add(skip) else {
            break;
        };
        let part = Piece {
            page: piece.page,
            offset,
            len: take,
        };
        if out.push(part).is_err() {
            break;
        }
        skip = 0;
        left = left.saturating_sub(take);
    }
    out
}

/// A split-ring descriptor as its two little-endian 64-bit words, decoded to native
/// order: the address, then `len | flags << 32 | next << 48`. Words rather than bytes, so
/// the hottest ring access is two loads and two stores, never a byte shuffle.
pub type DescriptorWords = [u64; 2];

/// The words of a descriptor's 16 bytes as they lie in memory.
pub fn descriptor_words(bytes: &[u8; 16]) -> DescriptorWords {
    let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7] = *bytes;
    [
        u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
        u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
    ]
}

/// Pieces a device hands to [`GuestMemory::read_pieces`] / [`GuestMemory::write_pieces`]
/// at once (32 pages of a request; one grant copy hypercall holds them all).
pub const PIECES_PER_ACCESS: usize = 32;

/// Guest memory of one frontend domain, reached through its grants.
pub trait GuestMemory {
    /// The memory that maps the rings and indirect tables ([`PageUse::Ring`],
    /// [`PageUse::Table`]): `Self` for a memory that maps every page; the wrapped memory
    /// for one that copies request buffers, since it maps the rest with that. The queue
    /// reads descriptors and ring fields from it directly, so the hottest accesses are
    /// compiled for one memory type whatever route wraps it.
    type Rings: GuestMemory + ?Sized;

    /// See [`Self::Rings`].
    fn rings(&self) -> &Self::Rings;

    /// See [`Self::Rings`].
    fn rings_mut(&mut self) -> &mut Self::Rings;

    /// Maps every request in one hypercall batch. `results[i]` receives the outcome of
    /// `requests[i]`; the slices have equal length. Entries fail independently.
    fn map_batch(&mut self, requests: &[MapRequest], results: &mut [Result<MappedPage, MapError>]);

    /// Unmaps every page in one hypercall batch. Returns how many entries Xen refused;
    /// the pages are forgotten by the caller either way.
    fn unmap_batch(&mut self, pages: &[MappedPage]) -> usize;

    /// Copies `dst.len()` bytes out of a mapped page, starting at `offset`.
    fn read(&self, page: MappedPage, offset: usize, dst: &mut [u8]) -> Result<(), AccessError>;

    /// Copies `src` into a page mapped writable, starting at `offset`.
    fn write(&mut self, page: MappedPage, offset: usize, src: &[u8]) -> Result<(), AccessError>;

    /// An ordering point between ring accesses.
    fn barrier(&self, kind: Barrier);

    /// Reads a naturally aligned ring field in one access (the kernel overrides this with a
    /// single volatile load so the driver never sees it torn).
    fn read_u16(&self, page: MappedPage, offset: usize) -> Result<u16, AccessError> {
        let mut bytes = [0; 2];
        self.read(page, offset, &mut bytes)?;
        Ok(u16::from_le_bytes(bytes))
    }

    /// Reads a 16-byte descriptor at `offset` (inside the page): the hottest ring access,
    /// so an implementation may do it in two 8-byte loads when aligned instead of a byte
    /// copy.
    fn read_descriptor(
        &self,
        page: MappedPage,
        offset: usize,
    ) -> Result<DescriptorWords, AccessError> {
        let mut bytes = [0; 16];
        self.read(page, offset, &mut bytes)?;
        Ok(descriptor_words(&bytes))
    }

    /// Reads `pieces` in order into `dst`, whose length is the sum of theirs. Each piece
    /// by itself here; an implementation may move them all in one operation (the copy
    /// route: one `GNTTABOP_copy`). On an error some pieces may have been read.
    fn read_pieces(&self, pieces: &[Piece], dst: &mut [u8]) -> Result<(), AccessError> {
        let mut rest = dst;
        for piece in pieces {
            let (part, tail) = core::mem::take(&mut rest)
                .split_at_mut_checked(piece.len)
                .ok_or(AccessError::OutOfPage)?;
            self.read(piece.page, piece.offset, part)?;
            rest = tail;
        }
        Ok(())
    }

    /// Whether [`Self::read_pieces`] moves its pieces in one operation, so that small
    /// reads of several chains are worth gathering into one call (the copy route: one
    /// hypercall instead of one per piece). Not here: each piece by itself.
    fn moves_pieces_together(&self) -> bool {
        false
    }

    /// Writes `src` over `pieces` in order; see [`GuestMemory::read_pieces`].
    fn write_pieces(&mut self, pieces: &[Piece], src: &[u8]) -> Result<(), AccessError> {
        let mut rest = src;
        for piece in pieces {
            let (part, tail) = rest
                .split_at_checked(piece.len)
                .ok_or(AccessError::OutOfPage)?;
            self.write(piece.page, piece.offset, part)?;
            rest = tail;
        }
        Ok(())
    }

    /// Copies each of `pieces`, in order, from guest memory into its place in `local`. At
    /// most [`PIECES_PER_ACCESS`]; each piece by itself here, and in one operation on the
    /// copy route (one `GNTTABOP_copy`), as [`Self::read_pieces`]. A piece whose place
    /// leaves `local` is refused ([`AccessError::OutOfPage`]). On an error some pieces may
    /// have been copied.
    fn read_placed(&self, pieces: &[Placed], local: &mut [u8]) -> Result<(), AccessError> {
        for placed in pieces {
            let part = placed_range(placed).and_then(|range| local.get_mut(range));
            let piece = placed.piece;
            self.read(
                piece.page,
                piece.offset,
                part.ok_or(AccessError::OutOfPage)?,
            )?;
        }
        Ok(())
    }

    /// Copies each of `pieces`, in order, from its place in `local` into guest memory; see
    /// [`Self::read_placed`].
    fn write_placed(&mut self, pieces: &[Placed], local: &[u8]) -> Result<(), AccessError> {
        for placed in pieces {
            let part = placed_range(placed).and_then(|range| local.get(range));
            let piece = placed.piece;
            self.write(
                piece.page,
                piece.offset,
                part.ok_or(AccessError::OutOfPage)?,
            )?;
        }
        Ok(())
    }

    /// Writes a naturally aligned ring field in one access.
    fn write_u16(
        &mut self,
        page: MappedPage,
        offset: usize,
        value: u16,
    ) -> Result<(), AccessError> {
        self.write(page, offset, &value.to_le_bytes())
    }
}

/// The bytes of the local buffer a [`Placed`] piece names.
pub fn placed_range(placed: &Placed) -> Option<core::ops::Range<usize>> {
    let end = placed.local.checked_add(placed.piece.len)?;
    Some(placed.local..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(token: u64, offset: usize, len: usize) -> Piece {
        let page = MappedPage {
            token,
            access: Access::ReadWrite,
        };
        Piece { page, offset, len }
    }

    #[test]
    fn slices_trim_both_ends_and_stop_at_the_pieces_end() {
        let pieces = [piece(1, 100, 3996), piece(2, 0, 4096), piece(3, 0, 10)];
        let middle = slice_pieces(&pieces, 3990, 200);
        assert_eq!(&middle[..], &[piece(1, 4090, 6), piece(2, 0, 194)]);
        assert_eq!(&slice_pieces(&pieces, 8092, 100)[..], &[piece(3, 0, 10)]);
        assert!(slice_pieces(&pieces, 9000, 5).is_empty());
        assert_eq!(&slice_pieces(&pieces, 0, 8102)[..], &pieces[..]);
    }
}
