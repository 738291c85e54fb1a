//! System-control ops (`sysctl.h`, tools-only, not in `xen-sys`): only reading Xen's
//! console ring, which the privilege self-test tries (a backend has no business there).

use super::abi::errno::EACCES;
use super::abi::op;
use super::abi::payload::Payload;
use super::hypercall::XenError;
use crate::arch::{Arch, Current};
use core::mem::{offset_of, size_of};

const XEN_SYSCTL_READCONSOLE: u32 = 1;
/// `XEN_SYSCTL_INTERFACE_VERSION` of Xen 4.22, and of 4.17 and 4.20: Xen answers
/// `-EACCES` to any other.
const INTERFACE_VERSIONS: [u32; 2] = [0x16, 0x15];
// Offsets in `struct xen_sysctl_readconsole`.
const BUFFER: usize = 8;
const COUNT: usize = 16;

/// `struct xen_sysctl` with its 128-byte union as bytes.
#[repr(C, align(8))]
struct Sysctl {
    cmd: u32,
    interface_version: u32,
    payload: Payload<128>,
}

const _: () = assert!(offset_of!(Sysctl, payload) == 8);
const _: () = assert!(size_of::<Sysctl>() == 8 + 128);

/// Reads the start of Xen's console ring into `buf` (`XEN_SYSCTL_readconsole`); returns
/// the bytes Xen wrote.
pub fn read_console(buf: &mut [u8]) -> Result<usize, XenError> {
    let count = u32::try_from(buf.len()).unwrap_or(u32::MAX);
    let mut last = XenError(EACCES);
    for version in INTERFACE_VERSIONS {
        let mut arg = Sysctl {
            cmd: XEN_SYSCTL_READCONSOLE,
            interface_version: version,
            payload: Payload::zeroed(),
        };
        arg.payload
            .put(BUFFER, &(buf.as_mut_ptr() as u64).to_le_bytes());
        arg.payload.put(COUNT, &count.to_le_bytes());
        let ptr = core::ptr::from_mut(&mut arg) as u64;
        // SAFETY: `arg` is a live `struct xen_sysctl`; the only address in it is `buf`,
        // borrowed exclusively for the call, of which Xen writes at most `count` bytes.
        let ret = unsafe { Current::hypercall(op::SYSCTL, [ptr, 0, 0, 0, 0]) };
        match ret {
            0 => return Ok(arg.payload.u32_at(COUNT) as usize),
            r if -r == EACCES => last = XenError(EACCES),
            r => return Err(XenError(-r)),
        }
    }
    Err(last)
}
