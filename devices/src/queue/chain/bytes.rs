//! A selected chain as two byte streams, device-readable and device-writable, whatever
//! the descriptor boundaries: pieces, read-ahead of the leading bytes, reads and writes.

use super::*;

impl ChainBatch {
    /// Calls `f` for each page piece of `len` bytes at `at` in the readable
    /// (`writable == false`) or writable stream, in order.
    pub fn for_each_piece(
        &self,
        writable: bool,
        at: usize,
        len: usize,
        mut f: impl FnMut(Piece) -> Result<(), BufferError>,
    ) -> Result<(), BufferError> {
        let stream_len = if writable {
            self.writable_len()
        } else {
            self.readable_len()
        };
        if at.checked_add(len).is_none_or(|end| end > stream_len) {
            return Err(BufferError::OutOfRange);
        }
        let mut skip = at;
        let mut remaining = len;
        for segment in self
            .selected_segments()
            .iter()
            .filter(|s| s.writable == writable)
        {
            if remaining == 0 {
                break;
            }
            let seg_len = segment.len as usize;
            if let Some(still) = skip.checked_sub(seg_len) {
                skip = still;
                continue;
            }
            let first = segment.first_page().map_err(BufferError::Segment)?;
            // The segment's bytes from `skip` on (some: skip < seg_len), and where they
            // start counted from its first page's.
            let mut in_segment = seg_len.saturating_sub(skip);
            let mut absolute = usize::from(segment.offset)
                .checked_add(skip)
                .ok_or(BufferError::OutOfRange)?;
            skip = 0;
            while remaining > 0 && in_segment > 0 {
                let (index, offset, room) = page_position(absolute);
                let page = first
                    .checked_add(index)
                    .and_then(|index| self.pages.page(index))
                    .ok_or(BufferError::Access(AccessError::NotMapped))?;
                let chunk = remaining.min(room).min(in_segment);
                f(Piece {
                    page,
                    offset,
                    len: chunk,
                })?;
                // `chunk` is at most either count: they reach 0 exactly.
                in_segment = in_segment.saturating_sub(chunk);
                remaining = remaining.saturating_sub(chunk);
                absolute = absolute.checked_add(chunk).ok_or(BufferError::OutOfRange)?;
            }
        }
        Ok(())
    }

    /// The piece holding the `len` bytes at `at` of a stream when they lie in one page of
    /// the stream's first readable or last writable segment: a request header or a status
    /// byte, found without walking segments. `None` sends the caller down the general
    /// path, which also reports why an access cannot be made.
    #[inline]
    pub(super) fn single_piece(&self, writable: bool, at: usize, len: usize) -> Option<Piece> {
        let segments = self.selected_segments();
        let (segment, skip) = if writable {
            // Writable segments come last: the final one ends the writable stream.
            let last = segments.last().filter(|s| s.writable)?;
            let start = self.writable_len().checked_sub(last.len as usize)?;
            (last, at.checked_sub(start)?)
        } else {
            (segments.first().filter(|s| !s.writable)?, at)
        };
        if skip.checked_add(len)? > segment.len as usize {
            return None;
        }
        let first = segment.first_page().ok()?;
        let (index, offset, room) = page_position(usize::from(segment.offset).checked_add(skip)?);
        if len > room {
            return None;
        }
        let page = self.pages.page(first.checked_add(index)?)?;
        Some(Piece { page, offset, len })
    }

    /// The piece holding byte `at` of the selected chain's writable stream, when it lies
    /// in its last segment (a status byte); `None` otherwise, or when it is unreachable.
    pub fn byte_piece(&self, at: usize) -> Option<Piece> {
        self.single_piece(true, at, 1)
    }

    /// Reads the first `len` bytes of every chain's readable stream ahead of serving the
    /// batch, when `mem` moves the pieces of one read together: the pieces of several
    /// chains go in one read, up to [`PIECES_PER_ACCESS`], so the copy route reads a
    /// pass's request headers in one grant copy per group instead of one per chain. Not
    /// prefetched, and so read from memory by its own [`Self::read`] (which reports any
    /// error for that chain alone): a chain whose bytes cannot be gathered or that is
    /// alone in its group, every chain of a group whose read fails, and everything when
    /// `len` is above [`MAX_PREFETCH`].
    pub fn prefetch<M: GuestMemory + ?Sized>(&mut self, mem: &M, len: usize) {
        if len == 0 || len > MAX_PREFETCH || !mem.moves_pieces_together() {
            return;
        }
        let mut group: Vec<Piece, PIECES_PER_ACCESS> = Vec::new();
        let mut members: Vec<usize, PIECES_PER_ACCESS> = Vec::new();
        let mut pieces: Vec<Piece, MAX_PREFETCH> = Vec::new();
        let mut filled = 0;
        for index in 0..self.chains.len() {
            self.selected = index;
            if !self.leading_pieces(len, &mut pieces) {
                continue;
            }
            if group.len().saturating_add(pieces.len()) > PIECES_PER_ACCESS {
                self.read_ahead(mem, &group, &members, filled, len);
                // Saturated, `filled` is past the buffer: later groups are not read ahead.
                filled = filled.saturating_add(members.len().saturating_mul(len));
                group.clear();
                members.clear();
            }
            // Each chain adds at least one piece, so both have room.
            let _ = group.extend_from_slice(&pieces);
            let _ = members.push(index);
        }
        self.read_ahead(mem, &group, &members, filled, len);
        self.selected = 0;
    }

    /// Puts in `pieces` those of the selected chain's first `len` readable bytes; false
    /// if the chain is not served or they cannot be reached.
    pub(super) fn leading_pieces(&self, len: usize, pieces: &mut Vec<Piece, MAX_PREFETCH>) -> bool {
        pieces.clear();
        if self.unreachable().is_some() {
            return false;
        }
        match self.single_piece(false, 0, len) {
            Some(piece) => pieces.push(piece).is_ok(),
            // Pieces are at least a byte long: `len` of them at most.
            None => self
                .for_each_piece(false, 0, len, |piece| {
                    pieces.push(piece).map_err(|_| BufferError::OutOfRange)
                })
                .is_ok(),
        }
    }

    /// Reads one group of [`Self::prefetch`] (`len` bytes for each of `members`, in
    /// order) into `prefetched` from byte `at`, and marks the members read ahead; after a
    /// failed read, none. A group of one chain is left to the chain's own read: one
    /// access either way, and a failure is then not tried twice.
    pub(super) fn read_ahead<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        group: &[Piece],
        members: &[usize],
        at: usize,
        len: usize,
    ) {
        if members.len() < 2 {
            return;
        }
        let end = members
            .len()
            .checked_mul(len)
            .and_then(|n| n.checked_add(at));
        let Some(dst) = end.and_then(|end| self.prefetched.get_mut(at..end)) else {
            return;
        };
        if mem.read_pieces(group, dst).is_err() {
            return;
        }
        // Within the buffer (checked above), so within u16.
        let starts = (at..).step_by(len.max(1));
        for (&index, start) in members.iter().zip(starts) {
            if let (Some(ahead), Ok(at), Ok(len)) = (
                self.read_ahead.get_mut(index),
                u16::try_from(start),
                u8::try_from(len),
            ) {
                *ahead = ReadAhead { at, len };
            }
        }
    }

    /// The selected chain's readable bytes `at..at + len` if [`Self::prefetch`] holds them.
    #[inline]
    pub(super) fn prefetched_bytes(&self, at: usize, len: usize) -> Option<&[u8]> {
        self.current()?;
        let ahead = self.read_ahead.get(self.selected)?;
        let end = at
            .checked_add(len)
            .filter(|&end| end <= usize::from(ahead.len))?;
        let base = usize::from(ahead.at);
        self.prefetched
            .get(base.checked_add(at)?..base.checked_add(end)?)
    }

    /// Copies `dst.len()` bytes from the readable stream at `at`.
    pub fn read<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        at: usize,
        dst: &mut [u8],
    ) -> Result<(), BufferError> {
        let len = dst.len();
        if let Some(bytes) = self.prefetched_bytes(at, len) {
            dst.copy_from_slice(bytes);
            return Ok(());
        }
        if let Some(piece) = self.single_piece(false, at, len) {
            return mem
                .read(piece.page, piece.offset, dst)
                .map_err(BufferError::Access);
        }
        self.read_pieces(mem, at, dst)
    }

    /// [`Self::read`] across pieces: out of line, so the one-piece path above keeps a
    /// small frame (no group of pieces on its stack, fewer registers saved).
    #[inline(never)]
    fn read_pieces<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        at: usize,
        dst: &mut [u8],
    ) -> Result<(), BufferError> {
        let len = dst.len();
        self.for_each_group(false, at, len, |group, range| {
            let part = dst.get_mut(range).ok_or(BufferError::OutOfRange)?;
            match group {
                // Headers and status bytes: one access, no group machinery.
                [one] => mem.read(one.page, one.offset, part),
                _ => mem.read_pieces(group, part),
            }
            .map_err(BufferError::Access)
        })
    }

    /// Copies `src` into the writable stream at `at`.
    #[inline(never)]
    pub fn write<M: GuestMemory + ?Sized>(
        &self,
        mem: &mut M,
        at: usize,
        src: &[u8],
    ) -> Result<(), BufferError> {
        if let Some(piece) = self.single_piece(true, at, src.len()) {
            return mem
                .write(piece.page, piece.offset, src)
                .map_err(BufferError::Access);
        }
        self.write_pieces(mem, at, src)
    }

    /// [`Self::write`] across pieces, out of line as [`Self::read_pieces`].
    #[inline(never)]
    fn write_pieces<M: GuestMemory + ?Sized>(
        &self,
        mem: &mut M,
        at: usize,
        src: &[u8],
    ) -> Result<(), BufferError> {
        self.for_each_group(true, at, src.len(), |group, range| {
            let part = src.get(range).ok_or(BufferError::OutOfRange)?;
            match group {
                [one] => mem.write(one.page, one.offset, part),
                _ => mem.write_pieces(group, part),
            }
            .map_err(BufferError::Access)
        })
    }

    /// The pieces of [`ChainBatch::for_each_piece`] in groups of up to [`PIECES_PER_ACCESS`],
    /// each with the range of the caller's buffer it covers: a copying memory then moves
    /// a group in one operation.
    pub fn for_each_group(
        &self,
        writable: bool,
        at: usize,
        len: usize,
        mut f: impl FnMut(&[Piece], core::ops::Range<usize>) -> Result<(), BufferError>,
    ) -> Result<(), BufferError> {
        let mut group: Vec<Piece, PIECES_PER_ACCESS> = Vec::new();
        let (mut start, mut done) = (0, 0);
        self.for_each_piece(writable, at, len, |piece| {
            if group.is_full() {
                f(&group, start..done)?;
                group.clear();
                start = done;
            }
            // Room was made above.
            let _ = group.push(piece);
            done = done.checked_add(piece.len).ok_or(BufferError::OutOfRange)?;
            Ok(())
        })?;
        f(&group, start..done)
    }
}
