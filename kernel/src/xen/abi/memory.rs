//! Memory ops (`memory.h`): physmap changes, resource acquisition, the memory map.

use super::DomainId;

pub const XENMEM_CURRENT_RESERVATION: u32 = 3;
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;
pub const XENMEM_MEMORY_MAP: u32 = 9;
pub const XENMEM_REMOVE_FROM_PHYSMAP: u32 = 15;
pub const XENMEM_ADD_TO_PHYSMAP_BATCH: u32 = 23;
pub const XENMEM_ACQUIRE_RESOURCE: u32 = 28;

pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// A page of another domain, by its gfn: a foreign mapping (`XENMAPSPACE_gmfn_foreign`).
pub const XENMAPSPACE_GMFN_FOREIGN: u16 = 4;

pub const XENMEM_RESOURCE_IOREQ_SERVER: u16 = 0;
pub const XENMEM_RESOURCE_GRANT_TABLE: u16 = 1;

/// `struct xen_add_to_physmap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenAddToPhysmap {
    pub domid: DomainId,
    pub size: u16,
    pub space: u32,
    pub idx: u64,
    pub gpfn: u64,
}

/// `struct xen_add_to_physmap_batch`; `idxs`, `gpfns` and `errs` are guest handles to
/// `size` entries each (`xen_ulong_t`, `xen_pfn_t`, `int`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenAddToPhysmapBatch {
    pub domid: DomainId,
    pub space: u16,
    pub size: u16,
    pub foreign_domid: DomainId,
    pub idxs: u64,
    pub gpfns: u64,
    pub errs: u64,
}

/// `struct xen_remove_from_physmap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenRemoveFromPhysmap {
    pub domid: DomainId,
    pub gpfn: u64,
}

/// `struct xen_mem_acquire_resource`; `frame_list` is a guest handle to `xen_pfn_t`s.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenMemAcquireResource {
    pub domid: DomainId,
    pub type_: u16,
    pub id: u32,
    pub nr_frames: u32,
    pub pad: u32,
    pub frame: u64,
    pub frame_list: u64,
}

/// `struct xen_memory_map`; `buffer` is a guest handle to [`E820Entry`]s.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenMemoryMap {
    pub nr_entries: u32,
    pub buffer: u64,
}

/// One BIOS e820 entry as `XENMEM_memory_map` returns it (packed, 20 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub type_: u32,
}

/// `E820Entry::type_` of usable RAM.
pub const E820_RAM: u32 = 1;
