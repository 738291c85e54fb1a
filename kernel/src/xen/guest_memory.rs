//! [`devices::memory::GuestMemory`] over grant mappings of one frontend domain: the
//! device models reach guest memory only through this.

use super::abi::grant_table::status;
use super::abi::DomainId;
use super::grant::{self, MapOne, Mapping};
use super::shared;
use crate::arch::{Arch, Current, GRANT_WINDOW_SLOTS, PAGE_SIZE};
use alloc::vec::Vec;
use core::sync::atomic::{fence, Ordering};
use devices::memory::{
    descriptor_words, Access, AccessError, Barrier, DescriptorWords, GuestMemory, MapError,
    MapRequest, MappedPage,
};

/// Grant mappings of one frontend. The token of a [`MappedPage`] packs the window slot
/// (low 32 bits) and Xen's grant handle (high 32 bits); `live` remembers which slots this
/// instance mapped, so a stale or forged token is refused instead of read.
pub struct GrantMemory {
    frontend: DomainId,
    live: Vec<Option<Mapping>>,
    /// Scratch for batches, allocated here once: mapping and unmapping allocate nothing.
    /// A batch maps at most one page per window slot, hence the capacities.
    scratch: grant::BatchScratch,
    ones: Vec<MapOne>,
    raw: Vec<Result<Mapping, i16>>,
    unmapping: Vec<Mapping>,
}

impl GrantMemory {
    pub fn new(frontend: DomainId) -> Self {
        Self {
            frontend,
            live: alloc::vec![None; GRANT_WINDOW_SLOTS],
            scratch: grant::BatchScratch::new(),
            ones: Vec::with_capacity(GRANT_WINDOW_SLOTS),
            raw: Vec::with_capacity(GRANT_WINDOW_SLOTS),
            unmapping: Vec::with_capacity(GRANT_WINDOW_SLOTS),
        }
    }

    fn mapping(&self, page: MappedPage) -> Result<Mapping, AccessError> {
        let slot = (page.token & 0xffff_ffff) as usize;
        let handle = (page.token >> 32) as u32;
        match self.live.get(slot).copied().flatten() {
            Some(m) if m.handle == handle => Ok(m),
            _ => Err(AccessError::NotMapped),
        }
    }

    /// The virtual address of `len` bytes at `offset` in a live page.
    fn address(&self, page: MappedPage, offset: usize, len: usize) -> Result<usize, AccessError> {
        let m = self.mapping(page)?;
        match offset.checked_add(len) {
            Some(end) if end <= PAGE_SIZE => Ok(Current::window_va(m.slot) + offset),
            _ => Err(AccessError::OutOfPage),
        }
    }

    fn writable_address(
        &self,
        page: MappedPage,
        offset: usize,
        len: usize,
    ) -> Result<usize, AccessError> {
        let va = self.address(page, offset, len)?;
        if self.mapping(page)?.readonly {
            return Err(AccessError::ReadOnly);
        }
        Ok(va)
    }
}

fn map_error(status: i16) -> MapError {
    match status {
        status::BAD_GNTREF => MapError::BadGrantRef,
        status::PERMISSION_DENIED => MapError::PermissionDenied,
        status::NO_DEVICE_SPACE => MapError::NoSpace,
        status::EAGAIN => MapError::Again,
        status::BAD_DOMAIN => MapError::BadDomain,
        other => MapError::Other(other),
    }
}

impl GuestMemory for GrantMemory {
    type Rings = Self;

    fn rings(&self) -> &Self {
        self
    }

    fn rings_mut(&mut self) -> &mut Self {
        self
    }

    fn map_batch(&mut self, requests: &[MapRequest], results: &mut [Result<MappedPage, MapError>]) {
        // Requests past the window's size could not get a slot anyway: they get NoSpace.
        let fits = requests.len().min(self.ones.capacity());
        let frontend = self.frontend;
        self.ones.clear();
        self.ones.extend(requests.iter().take(fits).map(|r| MapOne {
            dom: frontend,
            gref: r.gref.0,
            readonly: r.access == Access::ReadOnly,
        }));
        self.raw.clear();
        self.raw.resize(fits, Err(status::NO_DEVICE_SPACE));
        grant::map_batch(&mut self.scratch, &self.ones, &mut self.raw);
        for (index, (result, request)) in results.iter_mut().zip(requests).enumerate() {
            let raw = self
                .raw
                .get(index)
                .copied()
                .unwrap_or(Err(status::NO_DEVICE_SPACE));
            *result = match raw {
                Ok(m) => {
                    if let Some(entry) = self.live.get_mut(m.slot) {
                        *entry = Some(m);
                    }
                    Ok(MappedPage {
                        token: m.slot as u64 | (u64::from(m.handle) << 32),
                        access: request.access,
                    })
                }
                Err(s) => Err(map_error(s)),
            };
        }
    }

    fn unmap_batch(&mut self, pages: &[MappedPage]) -> usize {
        self.unmapping.clear();
        let mut unknown = 0;
        for &page in pages {
            match self.mapping(page) {
                Ok(m) => {
                    if let Some(entry) = self.live.get_mut(m.slot) {
                        *entry = None;
                    }
                    // A live mapping owns its slot: no more of them than the capacity.
                    self.unmapping.push(m);
                }
                Err(_) => unknown += 1,
            }
        }
        unknown + grant::unmap_batch(&mut self.scratch, &self.unmapping)
    }

    fn read(&self, page: MappedPage, offset: usize, dst: &mut [u8]) -> Result<(), AccessError> {
        let va = self.address(page, offset, dst.len())?;
        // SAFETY: [va, va + len) lies in a page this instance mapped and has not unmapped
        // (checked above).
        unsafe { shared::copy_from(va, dst) };
        Ok(())
    }

    fn write(&mut self, page: MappedPage, offset: usize, src: &[u8]) -> Result<(), AccessError> {
        let va = self.writable_address(page, offset, src.len())?;
        // SAFETY: as in `read`, and the page is mapped writable.
        unsafe { shared::copy_to(va, src) };
        Ok(())
    }

    fn barrier(&self, kind: Barrier) {
        fence(match kind {
            Barrier::Acquire => Ordering::Acquire,
            Barrier::Release => Ordering::Release,
            Barrier::Full => Ordering::SeqCst,
        });
    }

    fn read_descriptor(
        &self,
        page: MappedPage,
        offset: usize,
    ) -> Result<DescriptorWords, AccessError> {
        let va = self.address(page, offset, 16)?;
        if va % 8 != 0 {
            let mut bytes = [0; 16];
            self.read(page, offset, &mut bytes)?;
            return Ok(descriptor_words(&bytes));
        }
        // SAFETY: 8-aligned and [va, va + 16) inside a live mapped page (checked above);
        // volatile because the frontend may rewrite a descriptor it does not own any more.
        let (low, high) = unsafe {
            (
                core::ptr::read_volatile(va as *const u64),
                core::ptr::read_volatile((va + 8) as *const u64),
            )
        };
        Ok([u64::from_le(low), u64::from_le(high)])
    }

    fn read_u16(&self, page: MappedPage, offset: usize) -> Result<u16, AccessError> {
        let va = self.address(page, offset, 2)?;
        if va % 2 != 0 {
            let mut bytes = [0; 2];
            self.read(page, offset, &mut bytes)?;
            return Ok(u16::from_le_bytes(bytes));
        }
        // SAFETY: aligned, inside a live mapped page (checked above): one untorn load.
        Ok(u16::from_le(unsafe {
            core::ptr::read_volatile(va as *const u16)
        }))
    }

    fn write_u16(
        &mut self,
        page: MappedPage,
        offset: usize,
        value: u16,
    ) -> Result<(), AccessError> {
        let va = self.writable_address(page, offset, 2)?;
        if va % 2 != 0 {
            return self.write(page, offset, &value.to_le_bytes());
        }
        // SAFETY: aligned, inside a live page mapped writable (checked above).
        unsafe { core::ptr::write_volatile(va as *mut u16, value.to_le()) };
        Ok(())
    }
}
