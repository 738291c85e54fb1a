//! Typed hypercall entry points over the arch's raw `hypercall`. Each takes a reference to
//! its argument struct, so Xen always gets a valid pointer of the right type.

use crate::arch::{Arch, Current};

/// A failed hypercall: Xen's negative errno, made positive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenError(pub i64);

impl core::fmt::Display for XenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Xen error -{}", self.0)
    }
}

fn check(ret: i64) -> Result<i64, XenError> {
    if ret < 0 {
        Err(XenError(-ret))
    } else {
        Ok(ret)
    }
}

/// `op(cmd, arg)` where `arg` points to one `T` Xen reads and/or writes.
///
/// # Safety
/// `T` must be the struct sub-op `cmd` takes, and every guest address inside it (buffers,
/// frame numbers Xen writes to) must be valid for what Xen does with it during the call.
pub unsafe fn with_arg<T>(op: u32, cmd: u32, arg: &mut T) -> Result<i64, XenError> {
    let ptr = core::ptr::from_mut(arg) as u64;
    // SAFETY: `arg` is a live, exclusive reference; the caller vouches for its contents.
    check(unsafe { Current::hypercall(op, [u64::from(cmd), ptr, 0, 0, 0]) })
}

/// `op(cmd, array, count)` for batched sub-ops (grant map/unmap): Xen processes every
/// element of `args` and writes each one's status back.
///
/// # Safety
/// As for [`with_arg`], for every element.
pub unsafe fn with_array<T>(op: u32, cmd: u32, args: &mut [T]) -> Result<i64, XenError> {
    let ptr = args.as_mut_ptr() as u64;
    // SAFETY: `args` is a live, exclusive slice; the caller vouches for its contents.
    check(unsafe { Current::hypercall(op, [u64::from(cmd), ptr, args.len() as u64, 0, 0]) })
}
