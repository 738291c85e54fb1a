//! `HYPERVISOR_console_io` output (allowed for dom0).

use super::abi::{op, CONSOLEIO_WRITE};
use crate::arch::{Arch, Current};

/// Whether Xen lets us write to its console (dom0, or any domain on a debug Xen): an
/// empty write succeeds then, and fails with `-EPERM` otherwise.
pub fn allowed() -> bool {
    // SAFETY: a zero-length write makes Xen read nothing.
    let ret =
        unsafe { Current::hypercall(op::CONSOLE_IO, [u64::from(CONSOLEIO_WRITE), 0, 0, 0, 0]) };
    ret == 0
}

pub fn write(bytes: &[u8]) {
    // SAFETY: Xen reads `len` bytes from `bytes`, which stays borrowed for the call.
    // Errors (not allowed) are ignored: there is nowhere to report them.
    let _ = unsafe {
        Current::hypercall(
            op::CONSOLE_IO,
            [
                u64::from(CONSOLEIO_WRITE),
                bytes.len() as u64,
                bytes.as_ptr() as u64,
                0,
                0,
            ],
        )
    };
}
