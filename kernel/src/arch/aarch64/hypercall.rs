//! Xen hypercalls on Arm: `hvc #0xEA1`, operation in x16, arguments in x0..x4, result in
//! x0. Xen clobbers x16 and the argument registers it used (`public/arch-arm.h`; debug
//! builds poison them). `xen-sys` 0.0.0-pre2's aarch64 `hypercall_N` declare those
//! registers as inputs only, so the compiler may assume they survive: unsound, hence this
//! wrapper, which marks all of them clobbered.

use crate::xen::abi::op;
use core::arch::asm;

/// `XENVER_get_features` (`public/version.h`) and its `XENFEAT_dom0` bit
/// (`public/features.h`): only the arm64 boot code needs them.
const XENVER_GET_FEATURES: u64 = 6;
const XENFEAT_DOM0: u32 = 11;

/// Issues hypercall `op`.
///
/// # Safety
/// Xen must be present, and every argument Xen reads as a guest address must point to
/// memory valid for that hypercall's accesses for its duration.
pub unsafe fn hvc(op: u32, args: [u64; 5]) -> i64 {
    let ret: u64;
    // SAFETY: the caller guarantees Xen is present and the pointers are valid. x1..x4 and
    // x16 are declared clobbered; without `nomem` the asm block is a memory clobber too.
    unsafe {
        asm!(
            "hvc #0xEA1",
            inlateout("x0") args[0] => ret,
            inlateout("x1") args[1] => _,
            inlateout("x2") args[2] => _,
            inlateout("x3") args[3] => _,
            inlateout("x4") args[4] => _,
            inlateout("x16") u64::from(op) => _,
            options(nostack),
        );
    }
    ret as i64
}

/// Whether Xen reports this domain as the hardware/control domain (XENFEAT_dom0).
pub fn is_dom0() -> bool {
    #[repr(C)]
    struct FeatureInfo {
        submap_idx: u32,
        submap: u32,
    }
    let mut info = FeatureInfo {
        submap_idx: 0,
        submap: 0,
    };
    // SAFETY: only called once Xen was detected; `info` is a live `xen_feature_info`
    // that Xen writes for the duration of the call.
    let rc = unsafe {
        hvc(
            op::XEN_VERSION,
            [XENVER_GET_FEATURES, &raw mut info as u64, 0, 0, 0],
        )
    };
    rc == 0 && info.submap & (1 << XENFEAT_DOM0) != 0
}
