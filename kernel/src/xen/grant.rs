//! Grant tables: our own v1 table (to grant pages, e.g. to ourselves in the self-test)
//! and batched map/unmap of other domains' grants into the grant window.

use super::abi::grant_table::*;
use super::abi::memory::XENMAPSPACE_GRANT_TABLE;
use super::abi::{op, DomainId, DOMID_SELF};
use super::hypercall::{with_array, XenError};
use super::{memory, window};
use crate::arch::{Arch, Current, GRANT_WINDOW_SLOTS, PAGE_SIZE};
use alloc::vec::Vec;
use core::sync::atomic::{fence, Ordering};

/// Entries Xen and tools reserve at the start of every table (`GNTTAB_NR_RESERVED_ENTRIES`).
const RESERVED_ENTRIES: u32 = 8;
/// `grant_entry_v1.flags` bits Xen sets while a grant is mapped (`GTF_reading|GTF_writing`).
const GTF_IN_USE: u16 = (1 << 3) | (1 << 4);

/// Our grant table, mapped in the grant window.
pub struct GrantTable {
    next_free: u32,
    capacity: u32,
}

/// Current and maximum frames of our grant table (`GNTTABOP_query_size`).
pub fn query_size() -> Result<(u32, u32), XenError> {
    let mut arg = GnttabQuerySize {
        dom: DOMID_SELF,
        ..Default::default()
    };
    // SAFETY: gnttab_query_size holds no addresses. Grant sub-ops take a count: 1 here.
    unsafe {
        with_array(
            op::GRANT_TABLE_OP,
            GNTTABOP_QUERY_SIZE,
            core::slice::from_mut(&mut arg),
        )
    }?;
    match arg.status {
        status::OKAY => Ok((arg.nr_frames, arg.max_nr_frames)),
        s => Err(XenError(-i64::from(s))),
    }
}

impl GrantTable {
    /// Selects the v1 format and places our table's frames in the grant window.
    pub fn init() -> Result<Self, XenError> {
        let mut version = GnttabSetVersion { version: 1 };
        // Grant sub-ops take an array and a count: here one element.
        let one = core::slice::from_mut(&mut version);
        // SAFETY: gnttab_set_version holds no addresses.
        unsafe { with_array(op::GRANT_TABLE_OP, GNTTABOP_SET_VERSION, one) }?;
        for frame in 0..window::GRANT_FRAMES {
            let slot = window::GRANT_TABLE_SLOT + frame;
            let gpa = window::gpa(slot);
            // SAFETY: window slots are never RAM; these slots are reserved for the table.
            unsafe {
                memory::add_to_physmap(
                    XENMAPSPACE_GRANT_TABLE,
                    frame as u64,
                    gpa / PAGE_SIZE as u64,
                )
            }?;
            // SAFETY: Xen has just placed grant frame `frame` at `gpa`; the slot is unmapped.
            unsafe { Current::map_window_page(slot, gpa, true) };
        }
        Ok(Self {
            next_free: RESERVED_ENTRIES,
            capacity: (window::GRANT_FRAMES * V1_ENTRIES_PER_FRAME) as u32,
        })
    }

    fn entry(&self, gref: GrantRef) -> Option<*mut GrantEntryV1> {
        if gref >= self.capacity {
            return None;
        }
        let base = Current::window_va(window::GRANT_TABLE_SLOT) as *mut GrantEntryV1;
        // The table's frames occupy consecutive window slots, hence consecutive addresses.
        Some(base.wrapping_add(gref as usize))
    }

    /// Grants `domid` access to our frame `gfn`; returns the reference to pass to it.
    /// `None` when the table is full or `gfn` does not fit a v1 entry (32 bits).
    pub fn grant_access(&mut self, domid: DomainId, gfn: u64, readonly: bool) -> Option<GrantRef> {
        let frame = u32::try_from(gfn).ok()?;
        let gref = self.next_free;
        let entry = self.entry(gref)?;
        self.next_free += 1;
        let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
        // SAFETY: `entry` is inside our mapped table and unused; Xen reads `flags` last,
        // so frame and domid are written first and ordered before it.
        unsafe {
            core::ptr::addr_of_mut!((*entry).frame).write_volatile(frame);
            core::ptr::addr_of_mut!((*entry).domid).write_volatile(domid);
            fence(Ordering::Release);
            core::ptr::addr_of_mut!((*entry).flags).write_volatile(flags);
        }
        Some(gref)
    }

    /// Revokes a grant; fails (returns false) while the grantee still has it mapped.
    pub fn end_access(&mut self, gref: GrantRef) -> bool {
        let Some(entry) = self.entry(gref) else {
            return false;
        };
        // SAFETY: `entry` is inside our mapped table; Xen updates the in-use bits
        // concurrently, hence volatile access and the check before clearing.
        unsafe {
            let flags = core::ptr::addr_of_mut!((*entry).flags);
            if flags.read_volatile() & GTF_IN_USE != 0 {
                return false;
            }
            flags.write_volatile(0);
        }
        true
    }
}

/// A grant mapped into a window slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub slot: usize,
    pub handle: GrantHandle,
    pub readonly: bool,
}

/// One page to map: whose grant, which reference, and how.
#[derive(Clone, Copy, Debug)]
pub struct MapOne {
    pub dom: DomainId,
    pub gref: GrantRef,
    pub readonly: bool,
}

/// The hypercall argument arrays of map and unmap batches, allocated once so that a batch
/// allocates nothing. A batch holds at most one entry per window slot (a map entry takes
/// a free slot, an unmap entry gives one back), so the capacity is the window's.
pub struct BatchScratch {
    map_ops: Vec<GnttabMapGrantRef>,
    /// (index into the requests, window slot) of every entry of `map_ops`.
    placed: Vec<(usize, usize)>,
    unmap_ops: Vec<GnttabUnmapGrantRef>,
}

impl BatchScratch {
    pub fn new() -> Self {
        Self {
            map_ops: Vec::with_capacity(GRANT_WINDOW_SLOTS),
            placed: Vec::with_capacity(GRANT_WINDOW_SLOTS),
            unmap_ops: Vec::with_capacity(GRANT_WINDOW_SLOTS),
        }
    }
}

impl Default for BatchScratch {
    fn default() -> Self {
        Self::new()
    }
}

/// Maps every request with one `GNTTABOP_map_grant_ref` hypercall into free window slots.
/// `results[i]` gets request i's mapping or its `GNTST_*` status; entries fail on their own
/// (`GNTST_no_device_space` when the window is full).
pub fn map_batch(
    scratch: &mut BatchScratch,
    requests: &[MapOne],
    results: &mut [Result<Mapping, i16>],
) {
    let BatchScratch {
        map_ops: ops,
        placed,
        ..
    } = scratch;
    ops.clear();
    placed.clear();
    for (index, (request, result)) in requests.iter().zip(results.iter_mut()).enumerate() {
        // Every slot handed out fits the scratch: its capacity is the window's.
        let Some(slot) = window::alloc() else {
            *result = Err(status::NO_DEVICE_SPACE);
            continue;
        };
        ops.push(GnttabMapGrantRef {
            host_addr: window::gpa(slot),
            flags: GNTMAP_HOST_MAP | if request.readonly { GNTMAP_READONLY } else { 0 },
            ref_: request.gref,
            dom: request.dom,
            status: NOT_PROCESSED,
            ..Default::default()
        });
        placed.push((index, slot));
    }
    if ops.is_empty() {
        return;
    }
    // Each entry is judged by its own status (`entry_outcome`): after a call that failed
    // part-way, the entries Xen mapped before it are live and keep their slots.
    // SAFETY: every host_addr is a window slot we own (not RAM), so Xen placing a page
    // there cannot clobber memory in use.
    let _ = unsafe { with_array(op::GRANT_TABLE_OP, GNTTABOP_MAP_GRANT_REF, ops) };
    for (op, &(index, slot)) in ops.iter().zip(placed.iter()) {
        let readonly = op.flags & GNTMAP_READONLY != 0;
        let outcome = match entry_outcome(op.status) {
            Ok(()) => {
                // SAFETY: Xen has placed the granted page at window::gpa(slot); the slot
                // was free.
                unsafe { Current::map_window_page(slot, window::gpa(slot), !readonly) };
                Ok(Mapping {
                    slot,
                    handle: op.handle,
                    readonly,
                })
            }
            Err(error) => {
                window::free(slot);
                Err(error)
            }
        };
        if let Some(result) = results.get_mut(index) {
            *result = outcome;
        }
    }
}

/// Unmaps every mapping with one `GNTTABOP_unmap_grant_ref` hypercall. The CPU mapping
/// goes first (with TLB invalidation), so nothing can touch the page once Xen releases it.
/// Returns how many entries Xen refused (their slots stay reserved: Xen may still hold a
/// page there).
pub fn unmap_batch(scratch: &mut BatchScratch, mappings: &[Mapping]) -> usize {
    if mappings.is_empty() {
        return 0;
    }
    // SAFETY: callers hand over their mappings; no reference into the pages remains.
    unsafe { Current::unmap_window_pages(mappings.iter().map(|m| m.slot)) };
    let ops = &mut scratch.unmap_ops;
    ops.clear();
    // Each mapping holds its own slot, so there are no more than the capacity.
    ops.extend(mappings.iter().map(|m| GnttabUnmapGrantRef {
        host_addr: window::gpa(m.slot),
        handle: m.handle,
        status: NOT_PROCESSED,
        ..Default::default()
    }));
    // SAFETY: each entry names a window slot and the handle Xen returned for it. Each
    // entry is judged by its own status, as in `map_batch`.
    let _ = unsafe { with_array(op::GRANT_TABLE_OP, GNTTABOP_UNMAP_GRANT_REF, ops) };
    let mut refused = 0;
    for (op, m) in ops.iter().zip(mappings) {
        if entry_outcome(op.status).is_ok() {
            window::free(m.slot);
        } else {
            refused += 1;
        }
    }
    refused
}

/// One piece of a frontend's granted page, for `GNTTABOP_copy`, and where its bytes are
/// in the call's local buffer (`local..local + len`).
#[derive(Clone, Copy, Debug)]
pub struct GrantPiece {
    pub gref: GrantRef,
    pub offset: u16,
    pub len: u16,
    pub local: usize,
}

/// Copy operations one `GNTTABOP_copy` call carries (on the stack: 64 x 40 bytes).
pub const MAX_COPY_OPS: usize = 64;

/// Which way a grant copy goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CopyWay {
    FromGrants,
    ToGrants,
}

/// Why a grant copy did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyFailure {
    /// Our side: a buffer that is not identity-mapped RAM, a piece outside it, or more
    /// than [`MAX_COPY_OPS`] operations.
    Local,
    /// Xen's: the first failing entry's `GNTST_*` status (`GENERAL_ERROR` also when the
    /// whole call failed), e.g. a revoked grant or a read-only one written.
    Refused(i16),
}

/// Copies the bytes `pieces` name (in order) out of `dom`'s grants into their places in
/// `dest`, with one `GNTTABOP_copy` hypercall and no mapping.
pub fn copy_from_grants(
    dom: DomainId,
    pieces: &[GrantPiece],
    dest: &mut [u8],
) -> Result<(), CopyFailure> {
    copy(
        dom,
        pieces,
        dest.as_mut_ptr() as u64,
        dest.len(),
        CopyWay::FromGrants,
    )
}

/// Copies the bytes of `src` at the pieces' places into the bytes they name in `dom`'s
/// grants; see [`copy_from_grants`].
pub fn copy_to_grants(dom: DomainId, pieces: &[GrantPiece], src: &[u8]) -> Result<(), CopyFailure> {
    copy(
        dom,
        pieces,
        src.as_ptr() as u64,
        src.len(),
        CopyWay::ToGrants,
    )
}

fn copy(
    dom: DomainId,
    pieces: &[GrantPiece],
    local: u64,
    len: usize,
    way: CopyWay,
) -> Result<(), CopyFailure> {
    if !crate::mem::is_identity_mapped(local, len) {
        return Err(CopyFailure::Local);
    }
    let mut ops: heapless::Vec<GnttabCopy, MAX_COPY_OPS> = heapless::Vec::new();
    for piece in pieces {
        let inside = piece.local.checked_add(usize::from(piece.len));
        if inside.is_none_or(|end| end > len) {
            return Err(CopyFailure::Local);
        }
        // Inside the identity-mapped buffer (checked above): no overflow.
        let mut at = local + piece.local as u64;
        let (mut offset, mut left) = (piece.offset, piece.len);
        // A local page boundary inside the piece splits it: one op names one page each side.
        while left > 0 {
            let local_offset = (at % PAGE_SIZE as u64) as u16;
            let room = (PAGE_SIZE as u16).saturating_sub(local_offset);
            let chunk = left.min(room);
            let granted = GnttabCopyPtr {
                u: u64::from(piece.gref),
                domid: dom,
                offset,
            };
            let ours = GnttabCopyPtr {
                u: at / PAGE_SIZE as u64,
                domid: DOMID_SELF,
                offset: local_offset,
            };
            let (source, dest, flags) = match way {
                CopyWay::FromGrants => (granted, ours, GNTCOPY_SOURCE_GREF),
                CopyWay::ToGrants => (ours, granted, GNTCOPY_DEST_GREF),
            };
            ops.push(GnttabCopy {
                source,
                dest,
                len: chunk,
                flags,
                status: 0,
            })
            .map_err(|_| CopyFailure::Local)?;
            at += u64::from(chunk);
            offset = offset.saturating_add(chunk);
            left -= chunk;
        }
    }
    if ops.is_empty() {
        return Ok(());
    }
    // SAFETY: every local frame named is inside the caller's buffer (identity-mapped RAM,
    // checked above), which the caller lends exclusively (`&mut`) when Xen writes to it;
    // granted frames are the other domain's and Xen checks the grants.
    let call = unsafe { with_array(op::GRANT_TABLE_OP, GNTTABOP_COPY, &mut ops) };
    if call.is_err() {
        return Err(CopyFailure::Refused(status::GENERAL_ERROR));
    }
    match ops.iter().find(|o| o.status != status::OKAY) {
        Some(failed) => Err(CopyFailure::Refused(failed.status)),
        None => Ok(()),
    }
}
