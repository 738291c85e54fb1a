//! What the precompiled host `core`/`alloc` expect from a C runtime: the mem* functions
//! and `_Unwind_Resume` (they were built for unwinding; with `panic = "abort"` it is never
//! reached).
//!
//! The loops are written byte-wise on purpose: the compiler must not turn them back into
//! calls to the very functions they implement, so each goes through volatile accesses.

#[no_mangle]
unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    for i in 0..n {
        // SAFETY: the C contract: both ranges valid for n bytes and not overlapping.
        unsafe { dst.add(i).write_volatile(src.add(i).read_volatile()) };
    }
    dst
}

#[no_mangle]
unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) {
        for i in 0..n {
            // SAFETY: the C contract: both ranges valid; forward copy is safe when dst <= src.
            unsafe { dst.add(i).write_volatile(src.add(i).read_volatile()) };
        }
    } else {
        for i in (0..n).rev() {
            // SAFETY: as above; backward copy is safe when dst > src.
            unsafe { dst.add(i).write_volatile(src.add(i).read_volatile()) };
        }
    }
    dst
}

#[no_mangle]
unsafe extern "C" fn memset(dst: *mut u8, value: i32, n: usize) -> *mut u8 {
    for i in 0..n {
        // SAFETY: the C contract: dst valid for n bytes. C passes the byte as an int.
        unsafe { dst.add(i).write_volatile(value as u8) };
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
