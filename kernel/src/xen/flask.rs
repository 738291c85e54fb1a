//! FLASK operations (`xsm/flask_op.h`, `__HYPERVISOR_xsm_op`): turning a security context
//! into a SID and relabelling a domain, with which stubvirt gives itself and its frontends
//! the types of its FLASK policy before it serves (docs/privilege.md).

use super::abi::op;
use super::abi::payload::Payload;
use super::hypercall::XenError;
use crate::arch::{Arch, Current};
use core::mem::{offset_of, size_of};

const FLASK_CONTEXT_TO_SID: u32 = 4;
const FLASK_RELABEL_DOMAIN: u32 = 24;
const XEN_FLASK_INTERFACE_VERSION: u32 = 1;
// Offsets in the union: `struct xen_flask_sid_context` and `struct xen_flask_relabel`.
const SID: usize = 0;
const SIZE: usize = 4;
const CONTEXT: usize = 8;
const RELABEL_DOMID: usize = 0;
const RELABEL_SID: usize = 4;

/// `struct xen_flask_op`: its largest union member (`xen_flask_access`) is 32 bytes.
#[repr(C, align(8))]
struct FlaskOp {
    cmd: u32,
    interface_version: u32,
    payload: Payload<32>,
}

const _: () = assert!(offset_of!(FlaskOp, payload) == 8);
const _: () = assert!(size_of::<FlaskOp>() == 40);

impl FlaskOp {
    fn new(cmd: u32) -> Self {
        Self {
            cmd,
            interface_version: XEN_FLASK_INTERFACE_VERSION,
            payload: Payload::zeroed(),
        }
    }
}

fn issue(arg: &mut FlaskOp) -> Result<(), XenError> {
    let ptr = core::ptr::from_mut(arg) as u64;
    // SAFETY: `arg` is a live `struct xen_flask_op`; the only address it may hold is a
    // context string the caller keeps borrowed for the call (Xen only reads it).
    let ret = unsafe { Current::hypercall(op::XSM_OP, [ptr, 0, 0, 0, 0]) };
    if ret < 0 {
        return Err(XenError(-ret));
    }
    Ok(())
}

/// The SID of a security context, e.g. `system_u:system_r:stubvirt_t`
/// (`FLASK_CONTEXT_TO_SID`). Fails with `ENOSYS` when FLASK is not Xen's XSM.
pub fn context_to_sid(context: &str) -> Result<u32, XenError> {
    let mut arg = FlaskOp::new(FLASK_CONTEXT_TO_SID);
    let size = u32::try_from(context.len()).unwrap_or(u32::MAX);
    arg.payload.put(SIZE, &size.to_le_bytes());
    arg.payload
        .put(CONTEXT, &(context.as_ptr() as u64).to_le_bytes());
    issue(&mut arg)?;
    Ok(arg.payload.u32_at(SID))
}

/// Gives domain `domid` (`DOMID_SELF` for ourselves) the SID `sid`
/// (`FLASK_RELABEL_DOMAIN`).
pub fn relabel_domain(domid: u16, sid: u32) -> Result<(), XenError> {
    let mut arg = FlaskOp::new(FLASK_RELABEL_DOMAIN);
    arg.payload
        .put(RELABEL_DOMID, &u32::from(domid).to_le_bytes());
    arg.payload.put(RELABEL_SID, &sid.to_le_bytes());
    issue(&mut arg)
}
