//! Event channels (`event_channel.h`), 2-level ABI. Structs are `xen-sys`'s bindgen output.

pub use xen_sys::{
    evtchn_alloc_unbound as EvtchnAllocUnbound, evtchn_bind_interdomain as EvtchnBindInterdomain,
    evtchn_bind_virq as EvtchnBindVirq, evtchn_close as EvtchnClose, evtchn_send as EvtchnSend,
    evtchn_status as EvtchnStatus, evtchn_unmask as EvtchnUnmask,
};

/// An event-channel port (`evtchn_port_t`).
pub type Port = u32;

pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
pub const EVTCHNOP_CLOSE: u32 = 3;
pub const EVTCHNOP_SEND: u32 = 4;
pub const EVTCHNOP_STATUS: u32 = 5;
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
pub const EVTCHNOP_UNMASK: u32 = 9;

/// The shared-info page (per-arch layout): per-vcpu info, then the 2-level pending and
/// mask bitmaps the event-channel scan reads.
pub use xen_sys::{shared_info as SharedInfo, vcpu_info as VcpuInfo};

/// Global virq: some domain changed state (shut down, crashed, died) (`xen.h`).
pub const VIRQ_DOM_EXC: u32 = 3;

/// `evtchn_status.status` of a port allocated but not yet bound.
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
