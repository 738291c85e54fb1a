//! The one domain-control op stubvirt issues (`domctl.h`): `XEN_DOMCTL_get_domain_state`,
//! Xen 4.21's stable op that reports a domain's capabilities. Not in Xen 4.17's headers,
//! which the layout test reads, so its layout is pinned here by size and offset asserts.

use core::mem::{offset_of, size_of};

pub const XEN_DOMCTL_GET_DOMAIN_STATE: u32 = 90;
/// A stable domctl takes interface version 0 (not `XEN_DOMCTL_INTERFACE_VERSION`).
pub const STABLE_INTERFACE_VERSION: u32 = 0;

pub const GETDOMSTATE_STATE_EXIST: u16 = 0x0001;
pub const GETDOMSTATE_CAP_CONTROL: u16 = 0x0001;
pub const GETDOMSTATE_CAP_HARDWARE: u16 = 0x0002;
pub const GETDOMSTATE_CAP_XENSTORE: u16 = 0x0004;

/// `struct xen_domctl_get_domain_state`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GetDomainState {
    pub state: u16,
    pub caps: u16,
    pub pad0: u32,
    pub unique_id: u64,
}

/// `struct xen_domctl` with its union (128 bytes, 8-aligned) as the one member we use,
/// padded to the union's size.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Domctl {
    pub cmd: u32,
    pub interface_version: u32,
    pub domain: u16,
    pub pad: [u16; 3],
    pub get_domain_state: GetDomainState,
    pub union_rest: [u64; 14],
}

const _: () = assert!(size_of::<GetDomainState>() == 16);
const _: () = assert!(offset_of!(Domctl, domain) == 8);
const _: () = assert!(offset_of!(Domctl, get_domain_state) == 16);
const _: () = assert!(size_of::<Domctl>() == 16 + 128);
