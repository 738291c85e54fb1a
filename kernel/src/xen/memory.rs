//! Memory ops: the domain's memory map, and placing Xen-owned pages in our physmap.

use super::abi::errno::EFAULT;
use super::abi::memory::*;
use super::abi::{op, DomainId, DOMID_SELF};
use super::hypercall::{with_arg, XenError};
use super::window;
use crate::arch::PAGE_SIZE;

/// Fills `entries` with our e820 map (`XENMEM_memory_map`); returns how many were stored.
pub fn memory_map(entries: &mut [E820Entry]) -> Result<usize, XenError> {
    let mut arg = XenMemoryMap {
        nr_entries: entries.len() as u32,
        buffer: entries.as_mut_ptr() as u64,
    };
    // SAFETY: `entries` is borrowed exclusively for the call; Xen writes at most
    // nr_entries of them.
    unsafe { with_arg(op::MEMORY_OP, XENMEM_MEMORY_MAP, &mut arg) }?;
    Ok(arg.nr_entries as usize)
}

/// Places page `idx` of `space` (`XENMAPSPACE_*`) at our guest frame `gpfn`.
///
/// # Safety
/// `gpfn` must not be RAM in use: whatever was there is replaced (grant-window frames).
pub unsafe fn add_to_physmap(space: u32, idx: u64, gpfn: u64) -> Result<(), XenError> {
    let mut arg = XenAddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space,
        idx,
        gpfn,
    };
    // SAFETY: the caller guarantees gpfn is free for Xen to populate.
    unsafe { with_arg(op::MEMORY_OP, XENMEM_ADD_TO_PHYSMAP, &mut arg) }.map(|_| ())
}

/// Tries to map page `gfn` of `foreign` by foreign mapping (`XENMEM_add_to_physmap_batch`,
/// `XENMAPSPACE_gmfn_foreign`) at a free window frame, and removes it again at once:
/// whether Xen lets this domain reach another's memory without its grant. Nothing reads
/// the page.
pub fn try_foreign_mapping(foreign: DomainId, gfn: u64) -> Result<(), XenError> {
    let slot = window::alloc().ok_or(XenError(EFAULT))?;
    let mut idxs = [gfn];
    let mut gpfns = [window::gpa(slot) / PAGE_SIZE as u64];
    let mut errs = [0i32];
    let mut arg = XenAddToPhysmapBatch {
        domid: DOMID_SELF,
        space: XENMAPSPACE_GMFN_FOREIGN,
        size: 1,
        foreign_domid: foreign,
        idxs: idxs.as_mut_ptr() as u64,
        gpfns: gpfns.as_mut_ptr() as u64,
        errs: errs.as_mut_ptr() as u64,
    };
    // SAFETY: the three arrays of one entry live across the call; the gpfn is a window
    // frame just reserved (not RAM), and our page tables never map it.
    let called = unsafe { with_arg(op::MEMORY_OP, XENMEM_ADD_TO_PHYSMAP_BATCH, &mut arg) };
    let result = called.and_then(|_| match errs[0] {
        0 => Ok(()),
        e => Err(XenError(-i64::from(e))),
    });
    if result.is_ok() {
        // SAFETY: the frame was never mapped by our page tables.
        if let Err(e) = unsafe { remove_from_physmap(gpfns[0]) } {
            log::error!("foreign mapping not removed from gfn {:#x}: {e}", gpfns[0]);
            return result;
        }
    }
    window::free(slot);
    result
}

/// The pages `domid` holds (`XENMEM_current_reservation`).
pub fn current_reservation(domid: DomainId) -> Result<u64, XenError> {
    let mut target = domid;
    // SAFETY: the argument is one domid_t, read by Xen.
    unsafe { with_arg(op::MEMORY_OP, XENMEM_CURRENT_RESERVATION, &mut target) }
        .map(|pages| pages as u64)
}

/// Removes whatever Xen placed at our frame `gpfn` (a foreign or resource page), which
/// drops the reference our physmap held on it.
///
/// # Safety
/// Nothing may still reach the page through our own page tables.
pub unsafe fn remove_from_physmap(gpfn: u64) -> Result<(), XenError> {
    let mut arg = XenRemoveFromPhysmap {
        domid: DOMID_SELF,
        gpfn,
    };
    // SAFETY: the caller guarantees the frame is no longer used through our mappings.
    unsafe { with_arg(op::MEMORY_OP, XENMEM_REMOVE_FROM_PHYSMAP, &mut arg) }.map(|_| ())
}

/// Maps `gfns.len()` frames of a resource of `domid` (`XENMEM_resource_*` `kind`, e.g. an
/// ioreq server's pages: `id` = server id, frame 1 + n = ioreq page n) at our frames `gfns`.
///
/// # Safety
/// Every gfn must be a free grant-window frame (Xen places the resource pages there).
pub unsafe fn acquire_resource(
    domid: super::abi::DomainId,
    kind: u16,
    id: u32,
    first_frame: u64,
    gfns: &mut [u64],
) -> Result<(), XenError> {
    let mut arg = XenMemAcquireResource {
        domid,
        type_: kind,
        id,
        nr_frames: gfns.len() as u32,
        pad: 0,
        frame: first_frame,
        frame_list: gfns.as_mut_ptr() as u64,
    };
    // SAFETY: frame_list points at gfns.len() entries borrowed for the call; the caller
    // guarantees the frames are free window frames.
    unsafe { with_arg(op::MEMORY_OP, XENMEM_ACQUIRE_RESOURCE, &mut arg) }.map(|_| ())
}
