//! Who this domain is, as Xen reports it: domid, Xen's version, the domain's capabilities
//! and whether it is direct-mapped. Printed once at boot as `STUBVIRT-DOMAIN ...`, so a
//! reader of a run sees which privileges the backend really held (e.g. `caps=control`
//! and `dom0=0` on the route with no dom0).

use super::abi::domctl::*;
use super::abi::op;
use super::evtchn;
use super::hypercall::{with_arg, XenError};
use crate::arch::{Arch, Current};
use core::fmt::Write;

/// `XENVER_*` sub-ops (`public/version.h`).
const XENVER_VERSION: u32 = 0;
const XENVER_EXTRAVERSION: u32 = 1;
const XENVER_GET_FEATURES: u32 = 6;
/// `XENFEAT_*` bits of submap 0 (`public/features.h`).
const XENFEAT_DOM0: u32 = 11;
const XENFEAT_DIRECT_MAPPED: u32 = 17;

/// `struct xen_feature_info`.
#[repr(C)]
struct FeatureInfo {
    submap_idx: u32,
    submap: u32,
}

/// Submap 0 of `XENVER_get_features` (0 if Xen refuses).
fn feature_bits() -> u32 {
    let mut info = FeatureInfo {
        submap_idx: 0,
        submap: 0,
    };
    // SAFETY: `xen_feature_info` holds no addresses; Xen writes `submap`.
    match unsafe { with_arg(op::XEN_VERSION, XENVER_GET_FEATURES, &mut info) } {
        Ok(_) => info.submap,
        Err(_) => 0,
    }
}

/// Whether Xen reports this domain as the hardware/control domain (XENFEAT_dom0).
pub fn is_dom0() -> bool {
    feature_bits() & (1 << XENFEAT_DOM0) != 0
}

/// Whether Xen reports this domain's guest-physical addresses as machine addresses
/// (XENFEAT_direct_mapped: Arm's dom0, or a dom0less domU with `direct-map`), so a device
/// without an IOMMU DMAs to the address we give it.
pub fn is_direct_mapped() -> bool {
    feature_bits() & (1 << XENFEAT_DIRECT_MAPPED) != 0
}

/// Xen's version as `major.minor` plus its extra version (e.g. `4.22.0`).
pub struct XenVersion {
    major: u32,
    minor: u32,
    extra: [u8; 16],
}

impl core::fmt::Display for XenVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let len = self.extra.iter().position(|&b| b == 0).unwrap_or(16);
        let extra = self.extra.get(..len).unwrap_or(&[]);
        let extra = core::str::from_utf8(extra).unwrap_or("");
        // Xen's extra version may carry spaces or a vendor tail: keep the line one word.
        let extra = extra.split_whitespace().next().unwrap_or("");
        write!(f, "{}.{}{}", self.major, self.minor, extra)
    }
}

pub fn xen_version() -> XenVersion {
    // SAFETY: XENVER_version takes no argument (a null handle).
    let packed =
        unsafe { Current::hypercall(op::XEN_VERSION, [XENVER_VERSION.into(), 0, 0, 0, 0]) };
    let mut extra = [0u8; 16];
    // SAFETY: XENVER_extraversion writes exactly a `char[16]`.
    if unsafe { with_arg(op::XEN_VERSION, XENVER_EXTRAVERSION, &mut extra) }.is_err() {
        extra = [0; 16];
    }
    let packed = u32::try_from(packed).unwrap_or(0);
    XenVersion {
        major: packed >> 16,
        minor: packed & 0xffff,
        extra,
    }
}

/// `XEN_DOMCTL_get_domain_state` of `domid`: its capability bits (`GETDOMSTATE_CAP_*`).
/// Xen before 4.21 has no such op (it refuses the stable interface version).
pub fn capabilities(domid: u16) -> Result<u16, XenError> {
    let done = super::domain_control::get_domain_state(domid)?;
    Ok(done.payload.u16_at(GETDOMSTATE_CAPS))
}

/// Whether domain `domid` exists, as `XEN_DOMCTL_get_domain_state` says; `None` when Xen
/// cannot say (before 4.21, or not allowed).
pub fn exists(domid: u16) -> Option<bool> {
    const ENOENT: i64 = 2;
    const ESRCH: i64 = 3;
    match capabilities(domid) {
        Ok(_) => Some(true),
        Err(XenError(ENOENT | ESRCH)) => Some(false),
        Err(_) => None,
    }
}

/// Names of the capability bits, `,`-separated (`none` for none).
fn cap_names(caps: u16, out: &mut impl Write) -> core::fmt::Result {
    let names = [
        (GETDOMSTATE_CAP_CONTROL, "control"),
        (GETDOMSTATE_CAP_HARDWARE, "hardware"),
        (GETDOMSTATE_CAP_XENSTORE, "xenstore"),
    ];
    let mut first = true;
    for (bit, name) in names {
        if caps & bit != 0 {
            write!(out, "{}{name}", if first { "" } else { "," })?;
            first = false;
        }
    }
    if first {
        out.write_str("none")?;
    }
    Ok(())
}

/// Prints `STUBVIRT-DOMAIN domid=N xen=X.Y.Z caps=... dom0=0|1 direct_mapped=0|1`
/// (`caps=unknown(errnoN)` where Xen cannot say, e.g. 4.17).
pub fn report() {
    let mut w = crate::console::Writer;
    let domid = evtchn::own_domid();
    let _ = write!(w, "STUBVIRT-DOMAIN domid=");
    let _ = match domid {
        Ok(d) => write!(w, "{d}"),
        Err(e) => write!(w, "unknown(errno{})", e.0),
    };
    let _ = write!(w, " xen={} caps=", xen_version());
    let _ = match domid.and_then(capabilities) {
        Ok(caps) => cap_names(caps, &mut w),
        Err(e) => write!(w, "unknown(errno{})", e.0),
    };
    let _ = writeln!(
        w,
        " dom0={} direct_mapped={}",
        u8::from(is_dom0()),
        u8::from(is_direct_mapped())
    );
}
