//! Finding Xen and calling it through the hypercall page.
//!
//! We do not use `xen-sys`'s x86 hypercall functions: they `call` into the page with
//! `options(nostack)`, so the pushed return address overwrites the red zone the compiler
//! may be using (the host target has one), they declare no clobbers for the argument
//! registers Xen's debug builds scramble (rdi, rsi, rdx, r10, r8, r9), and they need an external `HYPERCALL_PAGE`. We
//! provide that symbol (boot/x86_64/entry.s) and our own call sequence below.

use super::cpu::{cpuid, wrmsr};
use crate::xen::abi::errno::ENOSYS;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

extern "C" {
    /// The page Xen fills with one 32-byte call stub per hypercall (in `.bss`).
    static HYPERCALL_PAGE: [u8; 4096];
}

static READY: AtomicBool = AtomicBool::new(false);

/// Looks for Xen's CPUID leaves ("XenVMMXenVMM" at 0x40000000 + n*0x100) and, when found,
/// asks Xen to write the hypercall page. Returns whether hypercalls work now.
pub fn detect_and_init() -> bool {
    let Some(base) = (0x4000_0000u32..0x4001_0000).step_by(0x100).find(|&leaf| {
        let (max, b, c, d) = cpuid(leaf);
        (b, c, d) == (0x566e_6558, 0x65584d4d, 0x4d4d566e) && max >= leaf + 2
    }) else {
        return false;
    };
    let (_pages, msr, _, _) = cpuid(base + 2);
    // Taking the address of the extern static reads nothing.
    let page = core::ptr::addr_of!(HYPERCALL_PAGE) as u64;
    // SAFETY: Xen writes its stubs into HYPERCALL_PAGE, a page-aligned 4 KiB array that
    // nothing else uses; the image is identity-mapped so its virtual address is its gpa.
    unsafe { wrmsr(msr, page) };
    READY.store(true, Ordering::Release);
    true
}

/// Whether [`detect_and_init`] found Xen.
pub fn ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// Calls hypercall `op` with five arguments (rdi, rsi, rdx, r10, r8); returns rax.
///
/// # Safety
/// See [`crate::arch::Arch::hypercall`]: pointer arguments must be valid for Xen's access.
pub unsafe fn hypercall5(op: u32, args: [u64; 5]) -> i64 {
    // Without Xen the page is zeroes, and an op past 127 would run off its end: refuse
    // both the way Xen refuses an unknown hypercall.
    if !ready() || op >= 128 {
        return -ENOSYS;
    }
    // Taking the address of the extern static reads nothing.
    let stub = core::ptr::addr_of!(HYPERCALL_PAGE) as u64 + u64::from(op) * 32;
    let ret: i64;
    // SAFETY: the stub executes vmcall/vmmcall and returns; Xen reads/writes guest memory
    // only through the pointers the caller vouches for. We step over the 128-byte red zone
    // before `call` pushes its return address, and declare all six argument registers
    // clobbered because debug builds of Xen overwrite the ones a hypercall does not use.
    unsafe {
        asm!(
            "lea rsp, [rsp - 128]",
            "call {stub}",
            "lea rsp, [rsp + 128]",
            stub = in(reg) stub,
            inlateout("rdi") args[0] => _,
            inlateout("rsi") args[1] => _,
            inlateout("rdx") args[2] => _,
            inlateout("r10") args[3] => _,
            inlateout("r8") args[4] => _,
            // Xen's sixth argument register, also scrambled by debug builds.
            lateout("r9") _,
            lateout("rax") ret,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}
