//! The domain-control ops stubvirt issues (`domctl.h`, not in `xen-sys`): Xen 4.21's
//! stable `XEN_DOMCTL_get_domain_state`, and for a frontend that went away
//! `XEN_DOMCTL_getdomaininfo` (Xen before 4.21), `XEN_DOMCTL_set_virq_handler` and
//! `XEN_DOMCTL_destroydomain`. The tools-only header is not in the layout test's C
//! includes, so the layout is pinned here by size and offset asserts.

use super::payload::Payload;
use core::mem::{offset_of, size_of};

pub const XEN_DOMCTL_DESTROYDOMAIN: u32 = 2;
pub const XEN_DOMCTL_PAUSEDOMAIN: u32 = 3;
pub const XEN_DOMCTL_UNPAUSEDOMAIN: u32 = 4;
pub const XEN_DOMCTL_GETDOMAININFO: u32 = 5;
pub const XEN_DOMCTL_SET_VIRQ_HANDLER: u32 = 66;
pub const XEN_DOMCTL_GET_DOMAIN_STATE: u32 = 90;
/// A stable domctl takes interface version 0 (not `XEN_DOMCTL_INTERFACE_VERSION`).
pub const STABLE_INTERFACE_VERSION: u32 = 0;
/// `XEN_DOMCTL_INTERFACE_VERSION` of the Xen releases stubvirt runs on (4.22, 4.20,
/// 4.17), newest first: Xen answers `-EACCES` to any other.
pub const INTERFACE_VERSIONS: [u32; 3] = [0x18, 0x17, 0x15];

pub const GETDOMSTATE_STATE_EXIST: u16 = 0x0001;
pub const GETDOMSTATE_STATE_SHUTDOWN: u16 = 0x0002;
pub const GETDOMSTATE_STATE_DYING: u16 = 0x0004;
pub const GETDOMSTATE_STATE_DEAD: u16 = 0x0008;
pub const GETDOMSTATE_CAP_CONTROL: u16 = 0x0001;
pub const GETDOMSTATE_CAP_HARDWARE: u16 = 0x0002;
pub const GETDOMSTATE_CAP_XENSTORE: u16 = 0x0004;

/// `XEN_DOMINF_*` flags of `struct xen_domctl_getdomaininfo`.
pub const DOMINF_DYING: u32 = 1 << 0;
pub const DOMINF_SHUTDOWN: u32 = 1 << 2;

/// `struct xen_domctl` with its 128-byte union as bytes.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug)]
pub struct Domctl {
    pub cmd: u32,
    pub interface_version: u32,
    pub domain: u16,
    pub pad: [u16; 3],
    pub payload: Payload<128>,
}

impl Domctl {
    pub fn new(cmd: u32, interface_version: u32, domain: u16) -> Self {
        Self {
            cmd,
            interface_version,
            domain,
            pad: [0; 3],
            payload: Payload::zeroed(),
        }
    }
}

/// Offsets in `struct xen_domctl_get_domain_state`.
pub const GETDOMSTATE_STATE: usize = 0;
pub const GETDOMSTATE_CAPS: usize = 2;
/// Offsets in `struct xen_domctl_getdomaininfo` (`domain`, `pad1`, `flags`, ...).
pub const GETDOMAININFO_DOMAIN: usize = 0;
pub const GETDOMAININFO_FLAGS: usize = 4;
/// Offset of `virq` in `struct xen_domctl_set_virq_handler`.
pub const SET_VIRQ_HANDLER_VIRQ: usize = 0;

const _: () = assert!(offset_of!(Domctl, domain) == 8);
const _: () = assert!(offset_of!(Domctl, payload) == 16);
const _: () = assert!(size_of::<Domctl>() == 16 + 128);
