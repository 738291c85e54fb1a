//! The ioreq half of the backend's event loop: every frontend vcpu's slot is checked once
//! per pass, a ready access is answered, and the vcpu is notified. A notification that
//! fails (`EVTCHNOP_send` refused) is owed and retried at the start of every later pass:
//! the vcpu sleeps in Xen until it arrives, so dropping it would hang that vcpu for ever.

use crate::backend::{Backend, DomainId, Frontends};
use crate::ioreq::{self, Ioreq, IoreqError};

/// One frontend vcpu's ioreq slot and event channel, as the kernel (shared ioreq page +
/// event channel) or the simulated Xen provides them.
pub trait VcpuChannel {
    /// Consumes the channel's pending event (if any), then returns a copy of the slot if
    /// it is in state IOREQ_READY. The event is consumed first so that one raised after
    /// the slot was read is seen by the next wait.
    fn take_ready(&mut self) -> Option<Ioreq>;
    /// Writes the answer and sets IORESP_READY.
    fn complete(&mut self, data: u64);
    /// Notifies the vcpu that its answer is ready; `false` if the notification failed.
    fn notify(&mut self) -> bool;
}

/// A vcpu's channel and what the loop keeps about it.
pub struct Vcpu<C> {
    pub channel: C,
    /// Accesses answered from this vcpu's slot.
    pub served: u64,
    /// Answered, but the notification failed: owed until a retry succeeds.
    pub notify_owed: bool,
}

impl<C> Vcpu<C> {
    pub fn new(channel: C) -> Self {
        Self {
            channel,
            served: 0,
            notify_owed: false,
        }
    }
}

/// Counts of the ioreq loop over its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoreqStats {
    /// Accesses answered.
    pub ioreqs: u64,
    /// Accesses answered with an error (refused register access, unsupported ioreq).
    pub ioreq_errors: u64,
    /// Notifications that failed (each is retried until it succeeds).
    pub notify_failures: u64,
}

/// One pass over `vcpus` of `frontend`: owed notifications are retried, then each slot is
/// served at most once (bounded work). Returns how many accesses were answered; `report`
/// hears about each access answered with an error.
pub fn serve_pass<C: VcpuChannel, F: Frontends + ?Sized>(
    backend: &mut Backend,
    frontends: &mut F,
    frontend: DomainId,
    vcpus: &mut [Vcpu<C>],
    stats: &mut IoreqStats,
    report: &mut dyn FnMut(&Ioreq, IoreqError),
) -> usize {
    for vcpu in vcpus.iter_mut().filter(|v| v.notify_owed) {
        vcpu.notify_owed = !vcpu.channel.notify();
        stats.notify_failures = stats
            .notify_failures
            .saturating_add(u64::from(vcpu.notify_owed));
    }
    let mut served: usize = 0;
    for vcpu in vcpus.iter_mut() {
        let Some(request) = vcpu.channel.take_ready() else {
            continue;
        };
        let answer = ioreq::serve(backend, frontends, frontend, &request);
        stats.ioreqs = stats.ioreqs.saturating_add(1);
        if let Some(error) = answer.error {
            stats.ioreq_errors = stats.ioreq_errors.saturating_add(1);
            report(&request, error);
        }
        vcpu.channel.complete(answer.data);
        vcpu.served = vcpu.served.saturating_add(1);
        if !vcpu.channel.notify() {
            stats.notify_failures = stats.notify_failures.saturating_add(1);
            vcpu.notify_owed = true;
        }
        // At most one a vcpu.
        served = served.saturating_add(1);
    }
    served
}

/// Whether some vcpu is still owed a notification (the loop must wake up soon to retry).
pub fn notify_owed<C>(vcpus: &[Vcpu<C>]) -> bool {
    vcpus.iter().any(|v| v.notify_owed)
}
