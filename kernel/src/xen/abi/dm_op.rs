//! Device-model ops (`hvm/dm_op.h`) and the ioreq page (`hvm/ioreq.h`).

use super::DomainId;

/// An ioreq server id (`ioservid_t`).
pub type IoServId = u16;

pub const XEN_DMOP_CREATE_IOREQ_SERVER: u32 = 1;
pub const XEN_DMOP_GET_IOREQ_SERVER_INFO: u32 = 2;
pub const XEN_DMOP_MAP_IO_RANGE_TO_IOREQ_SERVER: u32 = 3;
pub const XEN_DMOP_UNMAP_IO_RANGE_FROM_IOREQ_SERVER: u32 = 4;
pub const XEN_DMOP_SET_IOREQ_SERVER_STATE: u32 = 5;
pub const XEN_DMOP_DESTROY_IOREQ_SERVER: u32 = 6;
pub const XEN_DMOP_SET_IRQ_LEVEL: u32 = 19;
pub const XEN_DMOP_NR_VCPUS: u32 = 20;

pub const XEN_DMOP_IO_RANGE_PORT: u32 = 0;
pub const XEN_DMOP_IO_RANGE_MEMORY: u32 = 1;
pub const XEN_DMOP_IO_RANGE_PCI: u32 = 2;

/// `struct xen_dm_op_create_ioreq_server`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenDmOpCreateIoreqServer {
    pub handle_bufioreq: u8,
    pub pad: [u8; 3],
    pub id: IoServId,
}

/// `struct xen_dm_op_get_ioreq_server_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenDmOpGetIoreqServerInfo {
    pub id: IoServId,
    pub flags: u16,
    pub bufioreq_port: u32,
    pub ioreq_gfn: u64,
    pub bufioreq_gfn: u64,
}

/// `struct xen_dm_op_ioreq_server_range` (inclusive `start..=end`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenDmOpIoreqServerRange {
    pub id: IoServId,
    pub pad: u16,
    pub type_: u32,
    pub start: u64,
    pub end: u64,
}

/// `struct xen_dm_op_set_ioreq_server_state`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenDmOpSetIoreqServerState {
    pub id: IoServId,
    pub enabled: u8,
    pub pad: u8,
}

/// `struct xen_dm_op_destroy_ioreq_server`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenDmOpDestroyIoreqServer {
    pub id: IoServId,
    pub pad: u16,
}

/// `struct xen_dm_op_set_irq_level`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenDmOpSetIrqLevel {
    pub irq: u32,
    pub level: u8,
    pub pad: [u8; 3],
}

/// `struct xen_dm_op_nr_vcpus`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenDmOpNrVcpus {
    pub vcpus: u32,
}

/// The payload of `struct xen_dm_op` for the sub-ops stubvirt issues. `_size` pads it to
/// the C union (the largest member, which we do not use), so `size_of::<XenDmOp>()` equals
/// the C `sizeof`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union XenDmOpPayload {
    pub create_ioreq_server: XenDmOpCreateIoreqServer,
    pub get_ioreq_server_info: XenDmOpGetIoreqServerInfo,
    pub map_io_range_to_ioreq_server: XenDmOpIoreqServerRange,
    pub unmap_io_range_from_ioreq_server: XenDmOpIoreqServerRange,
    pub set_ioreq_server_state: XenDmOpSetIoreqServerState,
    pub destroy_ioreq_server: XenDmOpDestroyIoreqServer,
    pub set_irq_level: XenDmOpSetIrqLevel,
    pub nr_vcpus: XenDmOpNrVcpus,
    pub _size: [u64; DM_OP_PAYLOAD_WORDS],
}

/// Size of the C union in `struct xen_dm_op`, in u64 words (checked by the layout test).
pub const DM_OP_PAYLOAD_WORDS: usize = 3;

/// `struct xen_dm_op`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct XenDmOp {
    pub op: u32,
    pub pad: u32,
    pub u: XenDmOpPayload,
}

/// `struct xen_dm_op_buf`; `h` is a guest handle.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenDmOpBuf {
    pub h: u64,
    pub size: u64,
}

/// Domain argument of `HYPERVISOR_dm_op(domid, nr_bufs, bufs)`.
pub type DmOpDomain = DomainId;

pub const IOREQ_STATE_NONE: u8 = 0;
pub const IOREQ_STATE_READY: u8 = 1;
pub const IOREQ_STATE_INPROCESS: u8 = 2;
pub const IORESP_STATE_READY: u8 = 3;

pub const IOREQ_TYPE_PIO: u8 = 0;
pub const IOREQ_TYPE_COPY: u8 = 1;
pub const IOREQ_TYPE_INVALIDATE: u8 = 8;

pub const IOREQ_DIR_WRITE: u8 = 0;
pub const IOREQ_DIR_READ: u8 = 1;

/// `struct ioreq`: one vcpu's slot in the shared ioreq page. `bits` holds the C
/// bitfields `state:4, data_is_ptr:1, dir:1, df:1, _pad1:1` (gcc packs them from bit 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Ioreq {
    pub addr: u64,
    pub data: u64,
    pub count: u32,
    pub size: u32,
    pub vp_eport: u32,
    pub _pad0: u16,
    pub bits: u8,
    pub type_: u8,
}

impl Ioreq {
    pub const fn state(&self) -> u8 {
        self.bits & 0xf
    }
    pub const fn data_is_ptr(&self) -> bool {
        self.bits & (1 << 4) != 0
    }
    pub const fn dir(&self) -> u8 {
        (self.bits >> 5) & 1
    }
    pub const fn df(&self) -> bool {
        self.bits & (1 << 6) != 0
    }
}
