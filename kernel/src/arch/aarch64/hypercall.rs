//! Xen hypercalls on Arm: `hvc #0xEA1`, operation in x16, arguments in x0..x4, result in
//! x0. Xen clobbers x16 and the argument registers it used (`public/arch-arm.h`; debug
//! builds poison them). `xen-sys` 0.0.0-pre2's aarch64 `hypercall_N` declare those
//! registers as inputs only, so the compiler may assume they survive: unsound, hence this
//! wrapper, which marks all of them clobbered.

use core::arch::asm;

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
