//! Device-model ops (`HYPERVISOR_dm_op`) for an IOREQ server serving one frontend domain.
//!
//! Xen refuses dm_op on the caller's own domain, so under the self-test only the error
//! path runs; the full sequence needs a frontend (create, acquire the ioreq pages with
//! [`super::memory::acquire_resource`], map the MMIO range, enable, answer, set_irq_level).

use super::abi::dm_op::*;
use super::abi::{op, DomainId};
use super::hypercall::XenError;
use crate::arch::{Arch, Current};

/// Issues one dm_op with a single buffer holding `request`; Xen writes results back into it.
fn dm_op(domid: DomainId, request: &mut XenDmOp) -> Result<(), XenError> {
    let mut buf = XenDmOpBuf {
        h: core::ptr::from_mut(request) as u64,
        size: core::mem::size_of::<XenDmOp>() as u64,
    };
    // SAFETY: one buffer descriptor pointing at `request`, a live exclusive XenDmOp of the
    // declared size; Xen reads and writes only that.
    let ret = unsafe {
        Current::hypercall(
            op::DM_OP,
            [
                u64::from(domid),
                1,
                core::ptr::from_mut(&mut buf) as u64,
                0,
                0,
            ],
        )
    };
    if ret < 0 {
        Err(XenError(-ret))
    } else {
        Ok(())
    }
}

fn request(op: u32, u: XenDmOpPayload) -> XenDmOp {
    XenDmOp { op, pad: 0, u }
}

/// Creates an IOREQ server for `domid` (no buffered ioreqs); returns its id.
pub fn create_ioreq_server(domid: DomainId) -> Result<IoServId, XenError> {
    let mut r = request(
        XEN_DMOP_CREATE_IOREQ_SERVER,
        XenDmOpPayload {
            create_ioreq_server: XenDmOpCreateIoreqServer::default(),
        },
    );
    dm_op(domid, &mut r)?;
    // SAFETY: Xen filled the create_ioreq_server member we sent.
    Ok(unsafe { r.u.create_ioreq_server.id })
}

/// Routes accesses to `start..=end` of `kind` (`XEN_DMOP_IO_RANGE_*`) to server `id`.
pub fn map_io_range(
    domid: DomainId,
    id: IoServId,
    kind: u32,
    start: u64,
    end: u64,
) -> Result<(), XenError> {
    let range = XenDmOpIoreqServerRange {
        id,
        pad: 0,
        type_: kind,
        start,
        end,
    };
    let mut r = request(
        XEN_DMOP_MAP_IO_RANGE_TO_IOREQ_SERVER,
        XenDmOpPayload {
            map_io_range_to_ioreq_server: range,
        },
    );
    dm_op(domid, &mut r)
}

/// Enables or disables server `id`.
pub fn set_ioreq_server_state(
    domid: DomainId,
    id: IoServId,
    enabled: bool,
) -> Result<(), XenError> {
    let state = XenDmOpSetIoreqServerState {
        id,
        enabled: u8::from(enabled),
        pad: 0,
    };
    let mut r = request(
        XEN_DMOP_SET_IOREQ_SERVER_STATE,
        XenDmOpPayload {
            set_ioreq_server_state: state,
        },
    );
    dm_op(domid, &mut r)
}

/// Destroys server `id`.
pub fn destroy_ioreq_server(domid: DomainId, id: IoServId) -> Result<(), XenError> {
    let mut r = request(
        XEN_DMOP_DESTROY_IOREQ_SERVER,
        XenDmOpPayload {
            destroy_ioreq_server: XenDmOpDestroyIoreqServer { id, pad: 0 },
        },
    );
    dm_op(domid, &mut r)
}

/// Drives interrupt line `irq` of `domid` (the virtio-mmio interrupt on Arm).
pub fn set_irq_level(domid: DomainId, irq: u32, asserted: bool) -> Result<(), XenError> {
    let level = XenDmOpSetIrqLevel {
        irq,
        level: u8::from(asserted),
        pad: [0; 3],
    };
    let mut r = request(
        XEN_DMOP_SET_IRQ_LEVEL,
        XenDmOpPayload {
            set_irq_level: level,
        },
    );
    dm_op(domid, &mut r)
}

/// How many vcpus `domid` has (one ioreq slot each).
pub fn nr_vcpus(domid: DomainId) -> Result<u32, XenError> {
    let mut r = request(
        XEN_DMOP_NR_VCPUS,
        XenDmOpPayload {
            nr_vcpus: XenDmOpNrVcpus::default(),
        },
    );
    dm_op(domid, &mut r)?;
    // SAFETY: Xen filled the nr_vcpus member we sent.
    Ok(unsafe { r.u.nr_vcpus.vcpus })
}
