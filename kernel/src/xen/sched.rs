//! Scheduler ops: shutdown, and waiting for an event channel without spinning.

use super::abi::event_channel::Port;
use super::abi::op;
use super::abi::sched::{SchedPoll, SchedShutdown, SCHEDOP_POLL, SCHEDOP_SHUTDOWN};
use super::hypercall::{with_arg, XenError};

/// Asks Xen to shut this domain down with `reason` (`SHUTDOWN_*`). Returns only if Xen
/// refused.
pub fn shutdown(reason: u32) -> XenError {
    let mut arg = SchedShutdown { reason };
    // SAFETY: sched_shutdown holds no addresses.
    match unsafe { with_arg(op::SCHED_OP, SCHEDOP_SHUTDOWN, &mut arg) } {
        Ok(_) => XenError(0),
        Err(e) => e,
    }
}

/// Blocks this vcpu until one of `ports` is pending or Xen system time reaches
/// `deadline_ns` (0: no deadline). Returns at once if a port is pending already.
pub fn poll(ports: &mut [Port], deadline_ns: u64) -> Result<(), XenError> {
    let mut arg = SchedPoll {
        ports: ports.as_mut_ptr() as u64,
        nr_ports: ports.len() as u32,
        timeout: deadline_ns,
    };
    // SAFETY: `ports` is borrowed for the call; Xen only reads nr_ports entries of it.
    unsafe { with_arg(op::SCHED_OP, SCHEDOP_POLL, &mut arg) }.map(|_| ())
}
