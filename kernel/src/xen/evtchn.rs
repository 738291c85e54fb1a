//! Event channels, 2-level ABI: allocation and binding hypercalls, and the pending/mask
//! bitmaps in the shared-info page (mapped at grant-window slot 0).

use super::abi::event_channel::*;
use super::abi::memory::XENMAPSPACE_SHARED_INFO;
use super::abi::{op, DomainId, DOMID_SELF};
use super::hypercall::{with_arg, XenError};
use super::{memory, sched, window};
use crate::arch::{Arch, Current, PAGE_SIZE};
use core::mem::offset_of;
use core::sync::atomic::{AtomicU64, Ordering};

/// Bits per bitmap word (`xen_ulong_t`).
const WORD_BITS: u32 = 64;
/// Ports the 2-level ABI can address (64 words of 64 bits).
pub const MAX_PORTS: u32 = 64 * WORD_BITS;

/// Places the shared-info page at window slot 0 and maps it.
pub fn init_shared_info() -> Result<(), XenError> {
    let slot = window::SHARED_INFO_SLOT;
    let gpa = window::gpa(slot);
    // SAFETY: window slots are never RAM; slot 0 is reserved for the shared-info page.
    unsafe { memory::add_to_physmap(XENMAPSPACE_SHARED_INFO, 0, gpa / PAGE_SIZE as u64) }?;
    // SAFETY: Xen has just placed the shared-info page at `gpa`; slot 0 is unmapped.
    unsafe { Current::map_window_page(slot, gpa, true) };
    Ok(())
}

/// One 64-bit word of a shared-info bitmap, as an atomic (Xen updates it concurrently).
fn bitmap_word(field_offset: usize, port: Port) -> Option<&'static AtomicU64> {
    if port >= MAX_PORTS {
        return None;
    }
    let va = Current::window_va(window::SHARED_INFO_SLOT)
        + field_offset
        + (port / WORD_BITS) as usize * core::mem::size_of::<u64>();
    // SAFETY: the shared-info page stays mapped at slot 0 from init_shared_info on; the
    // word is inside the bitmap (port < MAX_PORTS), 8-byte aligned, and only ever accessed
    // atomically by us and by Xen.
    Some(unsafe { &*(va as *const AtomicU64) })
}

fn bit(port: Port) -> u64 {
    1 << (port % WORD_BITS)
}

/// Whether `port` is pending in the shared-info bitmap.
pub fn is_pending(port: Port) -> bool {
    bitmap_word(offset_of!(SharedInfo, evtchn_pending), port)
        .is_some_and(|w| w.load(Ordering::Acquire) & bit(port) != 0)
}

/// Clears `port`'s pending bit (after handling it).
pub fn clear_pending(port: Port) {
    if let Some(w) = bitmap_word(offset_of!(SharedInfo, evtchn_pending), port) {
        w.fetch_and(!bit(port), Ordering::AcqRel);
    }
}

/// Sets `port`'s mask bit: Xen still marks it pending but sends no upcall.
pub fn mask(port: Port) {
    if let Some(w) = bitmap_word(offset_of!(SharedInfo, evtchn_mask), port) {
        w.fetch_or(bit(port), Ordering::AcqRel);
    }
}

/// Whether `port` is masked.
pub fn is_masked(port: Port) -> bool {
    bitmap_word(offset_of!(SharedInfo, evtchn_mask), port)
        .is_some_and(|w| w.load(Ordering::Acquire) & bit(port) != 0)
}

/// The lowest port that is pending and not masked, if any: the 2-level scan over the
/// shared-info bitmaps (the event loop's source of work).
pub fn next_pending() -> Option<Port> {
    let pending = offset_of!(SharedInfo, evtchn_pending);
    let masked = offset_of!(SharedInfo, evtchn_mask);
    (0..MAX_PORTS / WORD_BITS).find_map(|word| {
        let port = word * WORD_BITS;
        let live = bitmap_word(pending, port)?.load(Ordering::Acquire)
            & !bitmap_word(masked, port)?.load(Ordering::Acquire);
        (live != 0).then(|| port + live.trailing_zeros())
    })
}

/// Unmasks `port` through Xen (`EVTCHNOP_unmask`), which also re-raises it if pending.
pub fn unmask(port: Port) -> Result<(), XenError> {
    let mut arg = EvtchnUnmask { port };
    // SAFETY: evtchn_unmask holds no addresses.
    unsafe { with_arg(op::EVENT_CHANNEL_OP, EVTCHNOP_UNMASK, &mut arg) }.map(|_| ())
}

/// Allocates a port that `remote` may bind to.
pub fn alloc_unbound(remote: DomainId) -> Result<Port, XenError> {
    let mut arg = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: remote,
        port: 0,
    };
    // SAFETY: evtchn_alloc_unbound holds no addresses.
    unsafe { with_arg(op::EVENT_CHANNEL_OP, EVTCHNOP_ALLOC_UNBOUND, &mut arg) }?;
    Ok(arg.port)
}

/// Binds a new local port to `remote_port` of `remote` (which must have allocated it
/// unbound for us).
pub fn bind_interdomain(remote: DomainId, remote_port: Port) -> Result<Port, XenError> {
    let mut arg = EvtchnBindInterdomain {
        remote_dom: remote,
        remote_port,
        local_port: 0,
    };
    // SAFETY: evtchn_bind_interdomain holds no addresses.
    unsafe { with_arg(op::EVENT_CHANNEL_OP, EVTCHNOP_BIND_INTERDOMAIN, &mut arg) }?;
    Ok(arg.local_port)
}

/// Binds a new local port to `virq` (delivered to `vcpu`).
pub fn bind_virq(virq: u32, vcpu: u32) -> Result<Port, XenError> {
    let mut arg = EvtchnBindVirq {
        virq,
        vcpu,
        port: 0,
    };
    // SAFETY: evtchn_bind_virq holds no addresses.
    unsafe { with_arg(op::EVENT_CHANNEL_OP, EVTCHNOP_BIND_VIRQ, &mut arg) }?;
    Ok(arg.port)
}

/// Notifies the other end of `port`.
pub fn send(port: Port) -> Result<(), XenError> {
    let mut arg = EvtchnSend { port };
    // SAFETY: evtchn_send holds no addresses.
    unsafe { with_arg(op::EVENT_CHANNEL_OP, EVTCHNOP_SEND, &mut arg) }.map(|_| ())
}

/// Closes `port`.
pub fn close(port: Port) -> Result<(), XenError> {
    let mut arg = EvtchnClose { port };
    // SAFETY: evtchn_close holds no addresses.
    unsafe { with_arg(op::EVENT_CHANNEL_OP, EVTCHNOP_CLOSE, &mut arg) }.map(|_| ())
}

/// Our own domain id. Xen has no direct query for it, but an unbound port allocated for
/// `DOMID_SELF` reports the resolved remote domain id in `EVTCHNOP_status`.
pub fn own_domid() -> Result<DomainId, XenError> {
    let port = alloc_unbound(DOMID_SELF)?;
    // SAFETY: all-zero is a valid value of this plain C struct (integers and a union of
    // integers).
    let mut arg: EvtchnStatus = unsafe { core::mem::zeroed() };
    arg.dom = DOMID_SELF;
    arg.port = port;
    // SAFETY: evtchn_status holds no addresses.
    let result = unsafe { with_arg(op::EVENT_CHANNEL_OP, EVTCHNOP_STATUS, &mut arg) };
    let _ = close(port);
    result?;
    if arg.status != EVTCHNSTAT_UNBOUND {
        return Err(XenError(super::abi::errno::EINVAL));
    }
    // SAFETY: for an unbound port Xen fills the `unbound` member of the union.
    Ok(unsafe { arg.u.unbound.dom })
}

/// Xen system time (ns): on arm64 an upper bound from the physical counter (Xen on Arm
/// does not publish system time, see [`crate::arch::counter_ns`]).
#[cfg(target_arch = "aarch64")]
pub fn system_time_ns() -> u64 {
    crate::arch::counter_ns()
}

/// Xen system time (ns) as last published for vcpu 0 (coarse: no TSC extrapolation).
#[cfg(not(target_arch = "aarch64"))]
pub fn system_time_ns() -> u64 {
    let offset = offset_of!(SharedInfo, vcpu_info) + offset_of!(VcpuInfo, time);
    let va = Current::window_va(window::SHARED_INFO_SLOT) + offset;
    // SAFETY: the shared-info page is mapped; vcpu_time_info is plain data that Xen
    // updates, read with a volatile copy (a torn read only skews a timeout).
    let time = unsafe { core::ptr::read_volatile(va as *const xen_sys::vcpu_time_info) };
    time.system_time
}

/// Blocks until `port` is pending or about `timeout_ns` passed (`SCHEDOP_poll`; no spinning).
/// Returns whether the port is pending.
pub fn wait(port: Port, timeout_ns: u64) -> Result<bool, XenError> {
    let mut ports = [port];
    sched::poll(&mut ports, system_time_ns().saturating_add(timeout_ns))?;
    Ok(is_pending(port))
}
