//! The simulated hypervisor's state for one test thread: every domain's grant table, the
//! backend's live grant mappings, hypercall accounting and the record of refused accesses.
//!
//! Thread-local because `virtio-drivers`' `Hal` has no `self`: each test thread is its
//! own machine, so tests run in parallel without seeing each other.

use crate::grant_table::GrantTable;
use crate::host_pages::{self, SharedRange, PAGE_SIZE};
use devices::backend::{DomainId, Frontends};
use devices::buffer_route::BufferRoute;
use devices::copy_route::{CopyRoute, GrantCopier, GrantPiece};
use devices::memory::{
    Access, AccessError, Barrier, GuestMemory, MapError, MapRequest, MappedPage,
};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

/// The backend's domain id (stubvirt runs as dom0 in the Arm route).
pub const BACKEND_DOMID: DomainId = 0;

/// What the backend's hypercalls did, as Xen would count them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HypercallStats {
    pub map_batches: u64,
    pub map_entries: u64,
    pub map_failures: u64,
    pub unmap_batches: u64,
    pub unmap_entries: u64,
    pub unmap_failures: u64,
    pub reads: u64,
    pub writes: u64,
    pub barriers: u64,
    /// `GNTTABOP_copy` hypercalls, the pieces they named, and the pieces Xen refused.
    pub copy_calls: u64,
    pub copies: u64,
    pub copies_refused: u64,
}

#[derive(Clone, Copy, Debug)]
struct Mapping {
    /// The handle handed out; a stale handle whose slot was reused does not match it.
    token: u64,
    grantor: DomainId,
    gref: u32,
    frame: usize,
    shared: SharedRange,
    writable: bool,
}

/// Errors to inject into the backend's grant hypercalls (fault injection).
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Grant references whose mapping always fails with the given error.
    pub map_errors: BTreeMap<u32, MapError>,
    /// Fail one map entry, this many entries from now (0: the next), with this error:
    /// a partial failure inside a batch.
    pub map_entry_countdown: Option<(u64, MapError)>,
    /// Refuse this many upcoming unmap entries; as in Xen, the mapping then stays.
    pub unmap_refusals: u64,
    /// Fail one `GNTTABOP_copy` call, this many calls from now (0: the next), as Xen
    /// does with GNTST_general_error or eagain on its first piece: nothing is copied.
    pub copy_countdown: Option<u64>,
}

#[derive(Default)]
pub struct World {
    tables: BTreeMap<DomainId, GrantTable>,
    /// Live mappings by slot (Xen's maptrack table); freed slots are reused, so a
    /// handle carries a serial number above its slot: a stale one is still caught.
    mappings: Vec<Option<Mapping>>,
    free_slots: Vec<u32>,
    live: usize,
    next_handle: u64,
    pub stats: HypercallStats,
    /// Every access the simulated Xen refused or found wrong, in words.
    pub violations: Vec<String>,
    pub faults: Faults,
    /// Bytes each of the backend's disks touched, in the order they were added (every
    /// disk is a `MeteredDisk`).
    pub storage_bytes: Vec<u64>,
    /// Grants the backend copied into or mapped writable (grantor, reference), for a test
    /// to clear and read: a buffer that names the driver's own used ring shows here.
    pub grants_written: BTreeSet<(DomainId, u32)>,
}

thread_local! {
    static WORLD: RefCell<World> = RefCell::new(World::default());
}

/// Runs `f` with this thread's simulated Xen.
pub fn with<R>(f: impl FnOnce(&mut World) -> R) -> R {
    WORLD.with(|w| f(&mut w.borrow_mut()))
}

thread_local! {
    static GENERATION: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Starts this thread's machine afresh.
pub fn reset() {
    with(|w| *w = World::default());
    GENERATION.with(|g| g.set(g.get().wrapping_add(1)));
}

/// How many times this thread's machine was started afresh: frontends kept from an
/// earlier generation hold grants the simulated Xen no longer knows.
pub fn generation() -> u64 {
    GENERATION.with(|g| g.get())
}

impl World {
    pub fn table(&mut self, domain: DomainId) -> &mut GrantTable {
        self.tables.entry(domain).or_default()
    }

    pub fn live_mappings(&self) -> usize {
        self.live
    }

    /// Live mappings of pages `grantor` granted.
    pub fn live_mappings_of(&self, grantor: DomainId) -> usize {
        self.mappings
            .iter()
            .flatten()
            .filter(|m| m.grantor == grantor)
            .count()
    }

    fn mapping(&self, token: u64) -> Option<&Mapping> {
        let slot = self.mappings.get((token & u64::from(u32::MAX)) as usize)?;
        slot.as_ref().filter(|m| m.token == token)
    }

    fn insert_mapping(&mut self, mut mapping: Mapping) -> u64 {
        self.next_handle += 1;
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.mappings.push(None);
            (self.mappings.len() - 1) as u32
        });
        mapping.token = (self.next_handle << 32) | u64::from(slot);
        if let Some(entry) = self.mappings.get_mut(slot as usize) {
            *entry = Some(mapping);
        }
        self.live += 1;
        mapping.token
    }

    fn remove_mapping(&mut self, token: u64) -> Option<Mapping> {
        let slot = (token & u64::from(u32::MAX)) as u32;
        let entry = self.mappings.get_mut(slot as usize)?;
        let mapping = entry.filter(|m| m.token == token)?;
        *entry = None;
        self.free_slots.push(slot);
        self.live -= 1;
        Some(mapping)
    }

    fn map_one(&mut self, grantor: DomainId, request: &MapRequest) -> Result<MappedPage, MapError> {
        if let Some(error) = self.faults.map_errors.get(&request.gref.0) {
            return Err(*error);
        }
        if let Some((countdown, error)) = self.faults.map_entry_countdown.as_mut() {
            if *countdown == 0 {
                let error = *error;
                self.faults.map_entry_countdown = None;
                return Err(error);
            }
            *countdown -= 1;
        }
        let table = self.tables.get_mut(&grantor).ok_or(MapError::BadDomain)?;
        let entry = table
            .entry_mut(request.gref.0)
            .ok_or(MapError::BadGrantRef)?;
        if entry.grantee != BACKEND_DOMID {
            return Err(MapError::PermissionDenied);
        }
        let writable = request.access == Access::ReadWrite;
        if writable && entry.readonly {
            return Err(MapError::PermissionDenied);
        }
        entry.mapped += 1;
        if writable {
            self.grants_written.insert((grantor, request.gref.0));
        }
        let mapping = Mapping {
            token: 0,
            grantor,
            gref: request.gref.0,
            frame: entry.frame,
            shared: entry.shared,
            writable,
        };
        let token = self.insert_mapping(mapping);
        Ok(MappedPage {
            token,
            access: request.access,
        })
    }

    fn unmap_one(&mut self, page: &MappedPage) -> bool {
        if self.faults.unmap_refusals > 0 && self.mapping(page.token).is_some() {
            self.faults.unmap_refusals -= 1;
            return false;
        }
        let Some(mapping) = self.remove_mapping(page.token) else {
            self.violations
                .push(format!("unmap of unknown handle {}", page.token));
            return false;
        };
        if let Some(entry) = self
            .tables
            .get_mut(&mapping.grantor)
            .and_then(|t| t.entry_mut(mapping.gref))
        {
            entry.mapped = entry.mapped.saturating_sub(1);
        }
        true
    }

    fn access(
        &mut self,
        page: MappedPage,
        offset: usize,
        len: usize,
        write: bool,
    ) -> Result<(usize, SharedRange), AccessError> {
        let Some(mapping) = self.mapping(page.token).copied() else {
            self.violations
                .push(format!("access through unmapped handle {}", page.token));
            return Err(AccessError::NotMapped);
        };
        if offset.checked_add(len).is_none_or(|end| end > PAGE_SIZE) {
            self.violations.push(format!(
                "access past page end: gref {} offset {offset} len {len}",
                mapping.gref
            ));
            return Err(AccessError::OutOfPage);
        }
        if write && !mapping.writable {
            self.violations.push(format!(
                "write through read-only mapping of gref {}",
                mapping.gref
            ));
            return Err(AccessError::ReadOnly);
        }
        let addr = mapping.frame + offset;
        if !mapping.shared.contains(addr, len) {
            self.violations.push(format!(
                "access outside the shared bytes of gref {}: offset {offset} len {len}",
                mapping.gref
            ));
            return Err(AccessError::OutOfPage);
        }
        if write {
            self.stats.writes += 1;
        } else {
            self.stats.reads += 1;
        }
        Ok((addr, mapping.shared))
    }
}

impl World {
    /// One `GNTTABOP_copy` piece between the backend and `grantor`'s grant `gref`, with
    /// Xen's checks: the grant exists and names the backend, a copy into it needs a
    /// writable grant, and only the granted page's shared bytes move. A refusal is Xen's
    /// answer to a bad grant, not a backend bug, so it is counted, not a violation.
    fn copy_check(
        &mut self,
        grantor: DomainId,
        gref: u32,
        offset: usize,
        len: usize,
        into_grant: bool,
    ) -> Result<(usize, SharedRange), AccessError> {
        self.stats.copies += 1;
        let checked = (|| {
            let entry = self.tables.get(&grantor)?.entry(gref)?;
            let fits = offset.checked_add(len).is_some_and(|end| end <= PAGE_SIZE);
            let addr = entry.frame + offset;
            let allowed = entry.grantee == BACKEND_DOMID
                && !(into_grant && entry.readonly)
                && fits
                && entry.shared.contains(addr, len);
            allowed.then_some((addr, entry.shared))
        })();
        match checked {
            None => self.stats.copies_refused += 1,
            Some(_) if into_grant => {
                self.grants_written.insert((grantor, gref));
            }
            Some(_) => {}
        }
        checked.ok_or(AccessError::Refused)
    }
}

/// `GNTTABOP_copy` against the simulated Xen, for `devices::copy_route::CopyRoute`.
#[derive(Clone, Copy, Debug)]
pub struct SimCopier {
    pub frontend: DomainId,
}

impl SimCopier {
    /// One `GNTTABOP_copy` call: every piece checked as Xen checks it, then `copy` moves
    /// its bytes (shared range, address in the frontend, range of the local buffer).
    fn call(
        &self,
        pieces: &[GrantPiece],
        into_grant: bool,
        mut copy: impl FnMut(SharedRange, usize, core::ops::Range<usize>) -> bool,
    ) -> Result<(), AccessError> {
        // One visit to the simulated Xen per call, as one hypercall is.
        with(|w| {
            w.stats.copy_calls += 1;
            let refuse = w.faults.copy_countdown == Some(0);
            w.faults.copy_countdown = w.faults.copy_countdown.and_then(|n| n.checked_sub(1));
            w.stats.copies_refused += u64::from(refuse);
            if refuse {
                return Err(AccessError::Refused);
            }
            for piece in pieces {
                let (addr, shared) = w.copy_check(
                    self.frontend,
                    piece.gref.0,
                    piece.offset,
                    piece.len,
                    into_grant,
                )?;
                if !copy(shared, addr, piece.local..piece.local + piece.len) {
                    return Err(AccessError::Refused);
                }
            }
            Ok(())
        })
    }
}

impl GrantCopier for SimCopier {
    fn copy_from_grants(&self, pieces: &[GrantPiece], dst: &mut [u8]) -> Result<(), AccessError> {
        self.call(pieces, false, |shared, addr, range| {
            dst.get_mut(range)
                .is_some_and(|part| host_pages::read(shared, addr, part))
        })
    }

    fn copy_to_grants(&self, pieces: &[GrantPiece], src: &[u8]) -> Result<(), AccessError> {
        self.call(pieces, true, |shared, addr, range| {
            src.get(range)
                .is_some_and(|part| host_pages::write(shared, addr, part))
        })
    }
}

/// The backend's view of one frontend's memory: grant maps into the simulated Xen.
#[derive(Clone, Copy, Debug)]
pub struct GrantedMemory {
    pub frontend: DomainId,
}

impl GuestMemory for GrantedMemory {
    type Rings = Self;

    fn rings(&self) -> &Self {
        self
    }

    fn rings_mut(&mut self) -> &mut Self {
        self
    }

    fn map_batch(&mut self, requests: &[MapRequest], results: &mut [Result<MappedPage, MapError>]) {
        with(|w| {
            w.stats.map_batches += 1;
            w.stats.map_entries += requests.len() as u64;
            for (request, result) in requests.iter().zip(results.iter_mut()) {
                *result = w.map_one(self.frontend, request);
                if result.is_err() {
                    w.stats.map_failures += 1;
                }
            }
        })
    }

    fn unmap_batch(&mut self, pages: &[MappedPage]) -> usize {
        with(|w| {
            w.stats.unmap_batches += 1;
            w.stats.unmap_entries += pages.len() as u64;
            let refused = pages.iter().filter(|p| !w.unmap_one(p)).count();
            w.stats.unmap_failures += refused as u64;
            refused
        })
    }

    fn read(&self, page: MappedPage, offset: usize, dst: &mut [u8]) -> Result<(), AccessError> {
        let (addr, shared) = with(|w| w.access(page, offset, dst.len(), false))?;
        host_pages::read(shared, addr, dst)
            .then_some(())
            .ok_or(AccessError::OutOfPage)
    }

    fn write(&mut self, page: MappedPage, offset: usize, src: &[u8]) -> Result<(), AccessError> {
        let (addr, shared) = with(|w| w.access(page, offset, src.len(), true))?;
        host_pages::write(shared, addr, src)
            .then_some(())
            .ok_or(AccessError::OutOfPage)
    }

    fn barrier(&self, _kind: Barrier) {
        with(|w| w.stats.barriers += 1);
    }
}

/// One frontend's memory as the backend reaches it: everything mapped, or request
/// buffers by grant copy (the kernel's default route), as the kernel holds it.
type Route = BufferRoute<GrantedMemory, SimCopier>;

/// Every frontend domain's memory, for the backend's event loop.
#[derive(Default)]
pub struct SimFrontends {
    memories: BTreeMap<DomainId, Route>,
}

impl SimFrontends {
    pub fn add(&mut self, frontend: DomainId) {
        self.memories
            .insert(frontend, Route::Mapped(GrantedMemory { frontend }));
    }

    /// From now on `frontend`'s request buffers are reached by grant copy.
    pub fn copy_buffers(&mut self, frontend: DomainId) {
        let route = CopyRoute::new(GrantedMemory { frontend }, SimCopier { frontend });
        self.memories.insert(frontend, Route::Copied(route));
    }

    /// Forgets `frontend`'s memory (its domain is gone).
    pub fn remove(&mut self, frontend: DomainId) {
        self.memories.remove(&frontend);
    }

    /// Buffer pages the copy route of `frontend` holds (handed out, not yet released).
    pub fn copied_pages_live(&self, frontend: DomainId) -> Option<usize> {
        let route = self.memories.get(&frontend)?.copy_route()?;
        Some(route.copied_pages_live())
    }
}

impl Frontends for SimFrontends {
    type Memory = Route;

    fn memory(&mut self, domain: DomainId) -> Option<&mut Route> {
        self.memories.get_mut(&domain)
    }
}
