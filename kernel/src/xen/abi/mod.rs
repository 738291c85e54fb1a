//! Xen's public ABI as stubvirt uses it: hypercall numbers, sub-ops and argument structs.
//!
//! Event-channel structs and the x86 `shared_info` come from `xen-sys` (bindgen output of
//! the same headers); everything `xen-sys` lacks (grant tables, memory ops, HVM params,
//! dm_op, ioreq, sched/vcpu args, PVH start info) is defined here. Every struct is listed
//! in [`layout::TABLE`], which a host test compares with Xen's C headers.

pub mod dm_op;
pub mod domctl;
pub mod event_channel;
pub mod grant_table;
pub mod hvm;
pub mod layout;
pub mod memory;
pub mod payload;
pub mod sched;
pub mod start_info;
pub mod vcpu;
pub mod xenstore;

/// A domain id (`domid_t`): the devices crate's, so one name serves both sides.
pub use devices::backend::DomainId;

/// The calling domain, where a domid argument allows it.
pub const DOMID_SELF: DomainId = 0x7ff0;

/// Hypercall numbers (`xen.h`, `__HYPERVISOR_*`).
pub mod op {
    pub const MEMORY_OP: u32 = 12;
    pub const XSM_OP: u32 = 27;
    pub const XEN_VERSION: u32 = 17;
    pub const CONSOLE_IO: u32 = 18;
    pub const GRANT_TABLE_OP: u32 = 20;
    pub const VCPU_OP: u32 = 24;
    pub const SCHED_OP: u32 = 29;
    pub const EVENT_CHANNEL_OP: u32 = 32;
    pub const HVM_OP: u32 = 34;
    pub const SYSCTL: u32 = 35;
    pub const DOMCTL: u32 = 36;
    pub const DM_OP: u32 = 41;
}

/// `HYPERVISOR_console_io` sub-ops.
pub const CONSOLEIO_WRITE: u32 = 0;

/// Xen's errno values as hypercalls return them (negated), for the ones we test for.
pub mod errno {
    pub const EPERM: i64 = 1;
    pub const ENOENT: i64 = 2;
    pub const ESRCH: i64 = 3;
    pub const EACCES: i64 = 13;
    pub const EFAULT: i64 = 14;
    pub const EINVAL: i64 = 22;
    pub const ENOSYS: i64 = 38;
}
