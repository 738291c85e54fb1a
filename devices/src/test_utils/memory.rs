//! [`TestMemory`]: a frontend's granted pages in a `Vec`, reached through grant DMA
//! addresses as a device reaches them, with Xen's checks, map accounting and faults.

use super::copier::TestCopier;
use crate::copy_route::GrantPiece;
use crate::grant::{GrantAddress, GrantRef, PAGE_SIZE};
use crate::memory::{Access, AccessError, Barrier, GuestMemory, MapError, MapRequest, MappedPage};
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};
use core::cell::RefCell;

/// The first grant reference handed out (Linux keeps the ones below for itself), so a
/// descriptor naming grant 0 finds no page.
pub const FIRST_GREF: u32 = 8;

struct Page {
    bytes: Vec<u8>,
    read_only: bool,
    /// The frontend took the grant back: maps and copies fail, as for an unknown grant.
    revoked: bool,
    /// Injected: every map of the page fails with this.
    map_error: Option<MapError>,
    /// Live mappings of the page.
    maps: usize,
}

#[derive(Default)]
struct State {
    pages: Vec<Page>,
    /// Live mappings by token, (grant, access); tokens are never reused, so a stale one
    /// is caught rather than aliasing a newer mapping.
    mappings: Vec<Option<(u32, Access)>>,
    map_batches: usize,
    copies: usize,
    /// What a correct device never does (bad tokens, accesses past a page or through a
    /// read-only mapping), in words.
    violations: Vec<String>,
}

impl State {
    fn page_mut(&mut self, gref: u32) -> Option<&mut Page> {
        let index = gref.checked_sub(FIRST_GREF)?;
        self.pages.get_mut(index as usize)
    }

    /// A page the driver side names: it must exist (a test's own mistake otherwise).
    fn driver_page(&mut self, gref: u32) -> &mut Page {
        self.page_mut(gref)
            .unwrap_or_else(|| panic!("grant {gref} was never allocated"))
    }

    fn map_one(&mut self, request: &MapRequest) -> Result<MappedPage, MapError> {
        let page = self
            .page_mut(request.gref.0)
            .filter(|p| !p.revoked)
            .ok_or(MapError::BadGrantRef)?;
        if let Some(error) = page.map_error {
            return Err(error);
        }
        if request.access == Access::ReadWrite && page.read_only {
            return Err(MapError::PermissionDenied);
        }
        page.maps += 1;
        self.mappings.push(Some((request.gref.0, request.access)));
        Ok(MappedPage {
            token: (self.mappings.len() - 1) as u64,
            access: request.access,
        })
    }

    fn unmap_one(&mut self, page: &MappedPage) -> bool {
        let live = self
            .mappings
            .get_mut(page.token as usize)
            .and_then(Option::take);
        let Some((gref, _)) = live else {
            self.violations
                .push(format!("unmap of unknown token {}", page.token));
            return false;
        };
        self.driver_page(gref).maps -= 1;
        true
    }

    /// The page behind a device access, checked as Xen checks it.
    fn access(
        &mut self,
        page: MappedPage,
        offset: usize,
        len: usize,
        write: bool,
    ) -> Result<&mut Page, AccessError> {
        let error = match self.mappings.get(page.token as usize).copied().flatten() {
            None => AccessError::NotMapped,
            Some(_) if offset + len > PAGE_SIZE => AccessError::OutOfPage,
            Some((_, Access::ReadOnly)) if write => AccessError::ReadOnly,
            Some((gref, _)) => return Ok(self.driver_page(gref)),
        };
        let token = page.token;
        let what = if write { "write" } else { "read" };
        (self.violations).push(format!(
            "{error:?}: {what} of {len} at {offset}, token {token}"
        ));
        Err(error)
    }
}

/// A frontend's memory as the backend sees it: pages granted under consecutive
/// references from [`FIRST_GREF`], mapped per [`MapRequest`] with Xen's checks (unknown
/// or revoked grant, writable map of a read-only grant). A cheap handle: clones share
/// the pages, so a test keeps one while a [`crate::copy_route::CopyRoute`] owns another.
#[derive(Clone, Default)]
pub struct TestMemory(Rc<RefCell<State>>);

impl TestMemory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Grants `pages` zeroed pages under consecutive references; returns the first.
    pub fn alloc(&self, pages: usize, read_only: bool) -> GrantRef {
        let mut state = self.0.borrow_mut();
        let first = FIRST_GREF + state.pages.len() as u32;
        for _ in 0..pages.max(1) {
            state.pages.push(Page {
                bytes: vec![0; PAGE_SIZE],
                read_only,
                revoked: false,
                map_error: None,
                maps: 0,
            });
        }
        GrantRef(first)
    }

    /// A buffer of `len` bytes starting `offset` bytes into fresh pages: its address.
    pub fn buffer(&self, offset: usize, len: usize, read_only: bool) -> u64 {
        let first = self.alloc((offset + len).div_ceil(PAGE_SIZE), read_only);
        dma(first, offset)
    }

    /// Writes `bytes` at `addr` as the driver does (its own memory: no grant checks).
    pub fn put(&self, addr: u64, bytes: &[u8]) {
        self.each_page(addr, bytes.len(), |page, range, done| {
            page.bytes[range.clone()].copy_from_slice(&bytes[done..done + range.len()]);
        });
    }

    /// Reads `len` bytes at `addr` as the driver does.
    pub fn get(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        self.each_page(addr, len, |page, range, done| {
            out[done..done + range.len()].copy_from_slice(&page.bytes[range]);
        });
        out
    }

    /// Calls `f` with each page `len` bytes at `addr` touch, the range of it they cover
    /// and how many bytes came before.
    fn each_page(
        &self,
        addr: u64,
        len: usize,
        mut f: impl FnMut(&mut Page, core::ops::Range<usize>, usize),
    ) {
        let start = GrantAddress::decode(addr).expect("a grant DMA address");
        let mut state = self.0.borrow_mut();
        let (mut gref, mut offset, mut done) = (start.gref.0, usize::from(start.offset), 0);
        while done < len {
            let chunk = (len - done).min(PAGE_SIZE - offset);
            f(state.driver_page(gref), offset..offset + chunk, done);
            (gref, offset, done) = (gref + 1, 0, done + chunk);
        }
    }

    /// Grants the page holding `addr` read-only (or writable again).
    pub fn set_read_only(&self, addr: u64, read_only: bool) {
        self.each_page(addr, 1, |page, _, _| page.read_only = read_only);
    }

    /// Takes back the grant of the page holding `addr`: later maps fail with
    /// `BadGrantRef` and copies are refused; a live mapping keeps the page, as in Xen.
    pub fn revoke(&self, addr: u64) {
        self.each_page(addr, 1, |page, _, _| page.revoked = true);
    }

    /// Makes every later map of the page holding `addr` fail with `error`.
    pub fn fail_maps(&self, addr: u64, error: MapError) {
        self.each_page(addr, 1, |page, _, _| page.map_error = Some(error));
    }

    /// Mappings the device holds now.
    pub fn live_mappings(&self) -> usize {
        self.0.borrow().mappings.iter().flatten().count()
    }

    /// Live mappings of the page holding `addr`.
    pub fn maps_of(&self, addr: u64) -> usize {
        let mut maps = 0;
        self.each_page(addr, 1, |page, _, _| maps = page.maps);
        maps
    }

    /// `map_batch` calls so far (one hypercall each on Xen).
    pub fn map_batches(&self) -> usize {
        self.0.borrow().map_batches
    }

    /// Grant copy calls made through [`Self::copier`] so far.
    pub fn copies(&self) -> usize {
        self.0.borrow().copies
    }

    /// What the device did that Xen would have refused as a bug of its own.
    pub fn violations(&self) -> Vec<String> {
        self.0.borrow().violations.clone()
    }

    /// A grant copier over the same pages, for a [`crate::copy_route::CopyRoute`].
    pub fn copier(&self) -> TestCopier {
        TestCopier(self.clone())
    }

    /// One grant copy call: each piece in order is checked and handed to `f` with its
    /// page's bytes. A revoked or unknown grant, a read-only one copied `into`, or a
    /// range past the page is refused (the guest's doing, so not a violation); the
    /// pieces before it were moved, as Xen moves them.
    pub(super) fn grant_copy(
        &self,
        pieces: &[GrantPiece],
        into: bool,
        mut f: impl FnMut(&mut [u8], &GrantPiece),
    ) -> Result<(), AccessError> {
        let mut state = self.0.borrow_mut();
        state.copies += 1;
        for piece in pieces {
            let refused = |p: &&mut Page| p.revoked || (into && p.read_only);
            let allowed = |p: &&mut Page| !refused(p) && piece.offset + piece.len <= PAGE_SIZE;
            let page = state.page_mut(piece.gref.0).filter(allowed);
            f(&mut page.ok_or(AccessError::Refused)?.bytes, piece);
        }
        Ok(())
    }
}

/// The grant DMA address of byte `at` of the pages granted from `first`.
pub fn dma(first: GrantRef, at: usize) -> u64 {
    let page = GrantRef(first.0 + (at / PAGE_SIZE) as u32);
    GrantAddress::encode(page, (at % PAGE_SIZE) as u16)
}

impl GuestMemory for TestMemory {
    type Rings = Self;

    fn rings(&self) -> &Self {
        self
    }

    fn rings_mut(&mut self) -> &mut Self {
        self
    }

    fn map_batch(&mut self, requests: &[MapRequest], results: &mut [Result<MappedPage, MapError>]) {
        let mut state = self.0.borrow_mut();
        state.map_batches += 1;
        for (request, result) in requests.iter().zip(results.iter_mut()) {
            *result = state.map_one(request);
        }
    }

    fn unmap_batch(&mut self, pages: &[MappedPage]) -> usize {
        let mut state = self.0.borrow_mut();
        pages.iter().filter(|p| !state.unmap_one(p)).count()
    }

    fn read(&self, page: MappedPage, offset: usize, dst: &mut [u8]) -> Result<(), AccessError> {
        let mut state = self.0.borrow_mut();
        let page = state.access(page, offset, dst.len(), false)?;
        dst.copy_from_slice(&page.bytes[offset..offset + dst.len()]);
        Ok(())
    }

    fn write(&mut self, page: MappedPage, offset: usize, src: &[u8]) -> Result<(), AccessError> {
        let mut state = self.0.borrow_mut();
        let page = state.access(page, offset, src.len(), true)?;
        page.bytes[offset..offset + src.len()].copy_from_slice(src);
        Ok(())
    }

    fn barrier(&self, _kind: Barrier) {}
}
