//! Memory ops: the domain's memory map, and placing Xen-owned pages in our physmap.

use super::abi::memory::*;
use super::abi::{op, DOMID_SELF};
use super::hypercall::{with_arg, XenError};

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
    domid: super::abi::DomId,
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
