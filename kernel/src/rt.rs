//! What the precompiled host `core`/`alloc` expect from a C runtime: the mem* functions
//! and `_Unwind_Resume` (they were built for unwinding; with `panic = "abort"` it is never
//! reached).
//!
//! Copies and fills use `rep movsb` / `rep stosb`: one instruction the CPU runs at cache
//! bandwidth (fast strings), and which the compiler cannot turn back into a call to the
//! very function it implements. The grant data path copies every guest byte through
//! `memcpy`, so a byte-at-a-time loop here would cap it.

use core::arch::asm;

#[no_mangle]
unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the C contract: both ranges valid for n bytes and not overlapping. The
    // direction flag is clear (the SysV ABI guarantees it at every call).
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dst
}

#[no_mangle]
unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize).wrapping_add(n) {
        // SAFETY: forward copy is correct when dst is below src or the ranges do not meet.
        unsafe { memcpy(dst, src, n) };
    } else if n > 0 {
        // SAFETY: the C contract: both ranges valid for n bytes; dst overlaps the end of
        // src, so copy backwards from the last byte with the direction flag set, and clear
        // it again as the ABI requires.
        unsafe {
            asm!("std", "rep movsb", "cld",
                 inout("rcx") n => _, inout("rdi") dst.add(n - 1) => _,
                 inout("rsi") src.add(n - 1) => _, options(nostack));
        }
    }
    dst
}

#[no_mangle]
unsafe extern "C" fn memset(dst: *mut u8, value: i32, n: usize) -> *mut u8 {
    // SAFETY: the C contract: dst valid for n bytes. C passes the byte as an int.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") value as u8,
             options(nostack, preserves_flags));
    }
    dst
}

#[no_mangle]
unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: the C contract: both ranges valid for n bytes.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

#[no_mangle]
unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

/// Referenced by unwinding landing pads in the precompiled `alloc`; never reached with
/// `panic = "abort"`.
#[no_mangle]
extern "C" fn _Unwind_Resume() -> ! {
    crate::kmain::fatal_stop()
}

/// The personality routine the precompiled `alloc`'s unwind tables name; never called
/// with `panic = "abort"`.
#[no_mangle]
extern "C" fn rust_eh_personality() {}
