//! Grant tables (`grant_table.h`): v1 entries, map/unmap batches, setup, copy.

use super::DomainId;

/// A grant reference (`grant_ref_t`).
pub type GrantRef = u32;
/// A grant mapping handle (`grant_handle_t`).
pub type GrantHandle = u32;

pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
pub const GNTTABOP_SETUP_TABLE: u32 = 2;
pub const GNTTABOP_COPY: u32 = 5;
pub const GNTTABOP_QUERY_SIZE: u32 = 6;
pub const GNTTABOP_SET_VERSION: u32 = 8;

/// `grant_entry_v1.flags`: the frame may be mapped/accessed by `domid`.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `grant_entry_v1.flags`: read-only access only.
pub const GTF_READONLY: u16 = 1 << 2;

pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
pub const GNTMAP_READONLY: u32 = 1 << 2;

/// `GNTST_*` statuses (`enum grant_status`).
pub mod status {
    pub const OKAY: i16 = 0;
    pub const GENERAL_ERROR: i16 = -1;
    pub const BAD_DOMAIN: i16 = -2;
    pub const BAD_GNTREF: i16 = -3;
    pub const BAD_HANDLE: i16 = -4;
    pub const BAD_VIRT_ADDR: i16 = -5;
    pub const BAD_DEV_ADDR: i16 = -6;
    pub const NO_DEVICE_SPACE: i16 = -7;
    pub const PERMISSION_DENIED: i16 = -8;
    pub const BAD_PAGE: i16 = -9;
    pub const BAD_COPY_ARG: i16 = -10;
    pub const ADDRESS_TOO_BIG: i16 = -11;
    pub const EAGAIN: i16 = -12;
}

/// A status Xen never writes (its `GNTST_*` are 0 and negatives): put in every entry of a
/// batch before the call, so an entry Xen did not reach is not taken for one that
/// succeeded (0).
pub const NOT_PROCESSED: i16 = i16::MAX;
const _: () = assert!(NOT_PROCESSED > 0, "no GNTST_* value is positive");

/// What one entry of a batched map or unmap came to, read from its own status only. Xen
/// goes through a batch entry by entry and writes each status back, so when the call
/// fails part-way the entries before the failure did take effect: a page it mapped
/// stays mapped, and its window slot must not be handed out again. The call's own
/// result is deliberately not an input.
pub fn entry_outcome(status: i16) -> Result<(), i16> {
    match status {
        status::OKAY => Ok(()),
        NOT_PROCESSED => Err(status::GENERAL_ERROR),
        other => Err(other),
    }
}

/// Entries per 4 KiB grant-table frame in the v1 format.
pub const V1_ENTRIES_PER_FRAME: usize = 4096 / core::mem::size_of::<GrantEntryV1>();

/// `struct grant_entry_v1`: one slot of our own grant table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GrantEntryV1 {
    pub flags: u16,
    pub domid: DomainId,
    pub frame: u32,
}

/// `struct gnttab_map_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabMapGrantRef {
    pub host_addr: u64,
    pub flags: u32,
    pub ref_: GrantRef,
    pub dom: DomainId,
    pub status: i16,
    pub handle: GrantHandle,
    pub dev_bus_addr: u64,
}

/// `struct gnttab_unmap_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabUnmapGrantRef {
    pub host_addr: u64,
    pub dev_bus_addr: u64,
    pub handle: GrantHandle,
    pub status: i16,
}

/// `struct gnttab_setup_table`; `frame_list` is a guest handle to `xen_pfn_t`s.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabSetupTable {
    pub dom: DomainId,
    pub nr_frames: u32,
    pub status: i16,
    pub frame_list: u64,
}

/// `struct gnttab_query_size`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabQuerySize {
    pub dom: DomainId,
    pub nr_frames: u32,
    pub max_nr_frames: u32,
    pub status: i16,
}

/// `struct gnttab_set_version`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabSetVersion {
    pub version: u32,
}

/// `struct gnttab_copy_ptr`: `u` is a grant ref or a gmfn (`GNTCOPY_*_gref` flags say which).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabCopyPtr {
    pub u: u64,
    pub domid: DomainId,
    pub offset: u16,
}

/// `struct gnttab_copy`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabCopy {
    pub source: GnttabCopyPtr,
    pub dest: GnttabCopyPtr,
    pub len: u16,
    pub flags: u16,
    pub status: i16,
}

pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_counts_by_its_own_status_whatever_the_call_returned() {
        // Mapped before the call failed on a later entry: kept (its slot is live).
        assert_eq!(entry_outcome(status::OKAY), Ok(()));
        // Never reached: an error, and its slot is free again.
        assert_eq!(entry_outcome(NOT_PROCESSED), Err(status::GENERAL_ERROR));
        for error in [status::BAD_GNTREF, status::NO_DEVICE_SPACE, status::EAGAIN] {
            assert_eq!(entry_outcome(error), Err(error));
        }
    }
}
