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
    Access, AccessError, Barrier, GuestMemory, MapError, MapRequest, MappedPage, PageUse,
};
use alloc::vec::Vec;

/// Copies between the backend's memory and one frontend's grants (the kernel: one
/// `GNTTABOP_copy`; the tests: the simulated Xen's checks).
pub trait GrantCopier {
    fn copy_from_grant(
        &self,
        gref: GrantRef,
        offset: usize,
        dst: &mut [u8],
    ) -> Result<(), AccessError>;
    fn copy_to_grant(&self, gref: GrantRef, offset: usize, src: &[u8]) -> Result<(), AccessError>;
}

/// Marks a token as one of ours (a buffer reached by copy). The wrapped implementation's
/// tokens never have it (a mapped page whose token does is refused).
const COPIED: u64 = 1 << 63;

/// Buffer pages that may be outstanding at once: two full batches of chains. Past it,
/// buffers are mapped (correct, only slower).
pub const MAX_COPIED_PAGES: usize = 2048;

/// Grant copies made and refused, for the counters line.
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
    copied: Vec<Option<(GrantRef, Access)>>,
    free: Vec<u32>,
    /// Scratch for the requests and pages passed through (allocated once).
    pass_requests: Vec<MapRequest>,
    pass_index: Vec<usize>,
    pass_results: Vec<Result<MappedPage, MapError>>,
    pass_pages: Vec<MappedPage>,
    stats: core::cell::Cell<CopyStats>,
}

impl<M: GuestMemory, C: GrantCopier> CopyRoute<M, C> {
    pub fn new(mapped: M, copier: C) -> Self {
        Self {
            mapped,
            copier,
            copied: alloc::vec![None; MAX_COPIED_PAGES],
            free: (0..MAX_COPIED_PAGES as u32).rev().collect(),
            pass_requests: Vec::with_capacity(MAX_COPIED_PAGES),
            pass_index: Vec::with_capacity(MAX_COPIED_PAGES),
            pass_results: Vec::with_capacity(MAX_COPIED_PAGES),
            pass_pages: Vec::with_capacity(MAX_COPIED_PAGES),
            stats: core::cell::Cell::new(CopyStats::default()),
        }
    }

    pub fn stats(&self) -> CopyStats {
        self.stats.get()
    }

    /// Buffer pages handed out and not yet unmapped.
    pub fn copied_pages_live(&self) -> usize {
        MAX_COPIED_PAGES - self.free.len()
    }

    pub fn mapped(&self) -> &M {
        &self.mapped
    }

    fn lookup(&self, page: MappedPage) -> Option<(GrantRef, Access)> {
        if page.token & COPIED == 0 {
            return None;
        }
        let index = usize::try_from(page.token & !COPIED).ok()?;
        self.copied.get(index).copied().flatten()
    }

    fn count(&self, result: Result<(), AccessError>, bytes: usize) -> Result<(), AccessError> {
        let mut stats = self.stats.get();
        stats.copies += 1;
        match result {
            Ok(()) => stats.bytes += bytes as u64,
            Err(_) => stats.refused += 1,
        }
        self.stats.set(stats);
        result
    }
}

impl<M: GuestMemory, C: GrantCopier> GuestMemory for CopyRoute<M, C> {
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
                Ok(page) if page.token & COPIED != 0 => {
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
        let mut unknown = 0;
        for &page in pages {
            if page.token & COPIED == 0 {
                self.pass_pages.push(page);
                continue;
            }
            let index = (page.token & !COPIED) as usize;
            match self.copied.get_mut(index) {
                Some(entry @ Some(_)) => {
                    *entry = None;
                    self.free.push(index as u32);
                }
                _ => unknown += 1,
            }
        }
        if self.pass_pages.is_empty() {
            return unknown;
        }
        unknown + self.mapped.unmap_batch(&self.pass_pages)
    }

    fn read(&self, page: MappedPage, offset: usize, dst: &mut [u8]) -> Result<(), AccessError> {
        if page.token & COPIED == 0 {
            return self.mapped.read(page, offset, dst);
        }
        let (gref, _) = self.lookup(page).ok_or(AccessError::NotMapped)?;
        if offset
            .checked_add(dst.len())
            .is_none_or(|end| end > crate::grant::PAGE_SIZE)
        {
            return Err(AccessError::OutOfPage);
        }
        let len = dst.len();
        self.count(self.copier.copy_from_grant(gref, offset, dst), len)
    }

    fn write(&mut self, page: MappedPage, offset: usize, src: &[u8]) -> Result<(), AccessError> {
        if page.token & COPIED == 0 {
            return self.mapped.write(page, offset, src);
        }
        let (gref, access) = self.lookup(page).ok_or(AccessError::NotMapped)?;
        if access != Access::ReadWrite {
            return Err(AccessError::ReadOnly);
        }
        if offset
            .checked_add(src.len())
            .is_none_or(|end| end > crate::grant::PAGE_SIZE)
        {
            return Err(AccessError::OutOfPage);
        }
        self.count(self.copier.copy_to_grant(gref, offset, src), src.len())
    }

    fn barrier(&self, kind: Barrier) {
        self.mapped.barrier(kind);
    }

    fn read_u16(&self, page: MappedPage, offset: usize) -> Result<u16, AccessError> {
        if page.token & COPIED == 0 {
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
        if page.token & COPIED == 0 {
            return self.mapped.write_u16(page, offset, value);
        }
        self.write(page, offset, &value.to_le_bytes())
    }
}
