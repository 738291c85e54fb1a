//! Free in-memory guest memory for stubvirt's queue, bare and inside the kernel's
//! `BufferRoute`: the floor of stubvirt's own costs, and what the route dispatch adds.

use crate::layout::{make_available, DriverView, TOTAL_PAGES};
use crate::serve::DriverLike;
use devices::buffer_route::BufferRoute;
use devices::copy_route::{GrantCopier, GrantPiece};
use devices::grant::{GrantAddress, GrantRef, PAGE_SIZE};
use devices::memory::{
    Access, AccessError, Barrier, DescriptorWords, GuestMemory, MapError, MapRequest, MappedPage,
};

/// Guest memory that costs nothing beyond the copies: grant `n` is page `n` of one
/// buffer, mapping hands out the grant as the token. The floor of stubvirt's own costs.
pub struct FastMemory {
    pub bytes: Vec<u8>,
}

impl FastMemory {
    fn page(
        &self,
        page: MappedPage,
        offset: usize,
        len: usize,
    ) -> Result<std::ops::Range<usize>, AccessError> {
        if offset + len > PAGE_SIZE {
            return Err(AccessError::OutOfPage);
        }
        let start = page.token as usize * PAGE_SIZE + offset;
        Ok(start..start + len)
    }
}

impl GuestMemory for FastMemory {
    type Rings = Self;

    fn rings(&self) -> &Self {
        self
    }

    fn rings_mut(&mut self) -> &mut Self {
        self
    }

    fn map_batch(&mut self, requests: &[MapRequest], results: &mut [Result<MappedPage, MapError>]) {
        for (request, result) in requests.iter().zip(results.iter_mut()) {
            *result = if (request.gref.0 as usize) < TOTAL_PAGES {
                Ok(MappedPage {
                    token: u64::from(request.gref.0),
                    access: request.access,
                })
            } else {
                Err(MapError::BadGrantRef)
            };
        }
    }

    fn unmap_batch(&mut self, _pages: &[MappedPage]) -> usize {
        0
    }

    fn read(&self, page: MappedPage, offset: usize, dst: &mut [u8]) -> Result<(), AccessError> {
        let range = self.page(page, offset, dst.len())?;
        dst.copy_from_slice(&self.bytes[range]);
        Ok(())
    }

    fn write(&mut self, page: MappedPage, offset: usize, src: &[u8]) -> Result<(), AccessError> {
        if page.access == Access::ReadOnly {
            return Err(AccessError::ReadOnly);
        }
        let range = self.page(page, offset, src.len())?;
        self.bytes[range].copy_from_slice(src);
        Ok(())
    }

    fn read_descriptor(
        &self,
        page: MappedPage,
        offset: usize,
    ) -> Result<DescriptorWords, AccessError> {
        let range = self.page(page, offset, 16)?;
        let word = |at: usize| {
            self.bytes
                .get(at..at + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_le_bytes)
                .ok_or(AccessError::OutOfPage)
        };
        Ok([word(range.start)?, word(range.start + 8)?])
    }

    // One access per ring field, as the kernel's implementation does.
    fn read_u16(&self, page: MappedPage, offset: usize) -> Result<u16, AccessError> {
        let range = self.page(page, offset, 2)?;
        match self.bytes.get(range) {
            Some(&[lo, hi]) => Ok(u16::from_le_bytes([lo, hi])),
            _ => Err(AccessError::OutOfPage),
        }
    }

    fn write_u16(
        &mut self,
        page: MappedPage,
        offset: usize,
        value: u16,
    ) -> Result<(), AccessError> {
        if page.access == Access::ReadOnly {
            return Err(AccessError::ReadOnly);
        }
        let range = self.page(page, offset, 2)?;
        self.bytes[range].copy_from_slice(&value.to_le_bytes());
        Ok(())
    }

    fn barrier(&self, kind: Barrier) {
        let order = match kind {
            Barrier::Acquire => std::sync::atomic::Ordering::Acquire,
            Barrier::Release => std::sync::atomic::Ordering::Release,
            Barrier::Full => std::sync::atomic::Ordering::SeqCst,
        };
        std::sync::atomic::fence(order);
    }
}

impl DriverView for FastMemory {
    fn addr(&self, page: usize, offset: usize) -> u64 {
        GrantAddress::encode(GrantRef(page as u32), offset as u16)
    }
    fn put(&mut self, page: usize, offset: usize, bytes: &[u8]) {
        let start = page * PAGE_SIZE + offset;
        self.bytes[start..start + bytes.len()].copy_from_slice(bytes);
    }
}

/// The copier of a route that never copies: the bench's free memory is the mapped route.
pub struct NoCopies;

impl GrantCopier for NoCopies {
    fn copy_from_grants(&self, _: &[GrantPiece], _: &mut [u8]) -> Result<(), AccessError> {
        Err(AccessError::Refused)
    }
    fn copy_to_grants(&self, _: &[GrantPiece], _: &[u8]) -> Result<(), AccessError> {
        Err(AccessError::Refused)
    }
}

/// [`FastMemory`] with the type the kernel compiles its devices for: a [`BufferRoute`].
pub type KernelShaped = BufferRoute<FastMemory, NoCopies>;

impl DriverLike for FastMemory {
    fn refill(&mut self, heads: &[u16], avail_idx: &mut u16) {
        make_available(self, heads, avail_idx);
    }
}

impl DriverLike for KernelShaped {
    fn refill(&mut self, heads: &[u16], avail_idx: &mut u16) {
        if let BufferRoute::Mapped(fast) = self {
            make_available(fast, heads, avail_idx);
        }
    }
}
