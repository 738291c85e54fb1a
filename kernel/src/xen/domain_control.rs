//! Domain-control ops on other domains, for a frontend's lifecycle: whether it still
//! runs, the exception virq that says when some domain changed state, and destroying a
//! frontend once nothing of it is held. Each needs control-domain rights (dom0, or a
//! dom0less domain with `capabilities` control); without them Xen refuses and the
//! caller falls back (polling the state, leaving the domain to its owner).

use super::abi::domctl::*;
use super::abi::errno::{EACCES, ENOENT, ESRCH};
use super::abi::op;
use super::hypercall::XenError;
use crate::arch::{Arch, Current};

/// What Xen says about a domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainState {
    Running,
    /// Shut down (crashed, powered off, rebooted), not yet destroyed.
    ShutDown,
    /// Being destroyed: Xen waits for every page and mapping of it to be released.
    Dying,
    /// No such domain any more.
    Gone,
}

impl DomainState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::ShutDown => "shutdown",
            Self::Dying => "dying",
            Self::Gone => "gone",
        }
    }
}

/// Issues `arg` as `XEN_DOMCTL` and returns it as Xen left it.
fn issue(mut arg: Domctl) -> Result<Domctl, XenError> {
    let ptr = core::ptr::from_mut(&mut arg) as u64;
    // SAFETY: `arg` is a live `struct xen_domctl` of the full union size holding no
    // addresses; Xen reads and writes only it.
    let ret = unsafe { Current::hypercall(op::DOMCTL, [ptr, 0, 0, 0, 0]) };
    if ret < 0 {
        return Err(XenError(-ret));
    }
    Ok(arg)
}

/// An unstable domctl: tried with each interface version this build knows, as Xen
/// refuses any but its own with `-EACCES`.
fn issue_unstable(cmd: u32, domid: u16, fill: impl Fn(&mut Domctl)) -> Result<Domctl, XenError> {
    let mut last = XenError(EACCES);
    for version in INTERFACE_VERSIONS {
        let mut arg = Domctl::new(cmd, version, domid);
        fill(&mut arg);
        match issue(arg) {
            Err(XenError(EACCES)) => last = XenError(EACCES),
            other => return other,
        }
    }
    Err(last)
}

/// `XEN_DOMCTL_get_domain_state` (Xen 4.21+) of `domid`.
pub fn get_domain_state(domid: u16) -> Result<Domctl, XenError> {
    issue(Domctl::new(
        XEN_DOMCTL_GET_DOMAIN_STATE,
        STABLE_INTERFACE_VERSION,
        domid,
    ))
}

/// The state of `domid`: by `XEN_DOMCTL_get_domain_state`, else (Xen before 4.21) by
/// `XEN_DOMCTL_getdomaininfo`.
pub fn state(domid: u16) -> Result<DomainState, XenError> {
    match get_domain_state(domid) {
        Ok(info) => {
            let bits = info.payload.u16_at(GETDOMSTATE_STATE);
            return Ok(if bits & GETDOMSTATE_STATE_EXIST == 0 {
                DomainState::Gone
            } else if bits & (GETDOMSTATE_STATE_DYING | GETDOMSTATE_STATE_DEAD) != 0 {
                DomainState::Dying
            } else if bits & GETDOMSTATE_STATE_SHUTDOWN != 0 {
                DomainState::ShutDown
            } else {
                DomainState::Running
            });
        }
        Err(XenError(ESRCH | ENOENT)) => return Ok(DomainState::Gone),
        Err(_) => {}
    }
    let info = match issue_unstable(XEN_DOMCTL_GETDOMAININFO, domid, |_| {}) {
        Ok(info) => info,
        Err(XenError(ESRCH | ENOENT)) => return Ok(DomainState::Gone),
        Err(e) => return Err(e),
    };
    // Xen before 4.19 answers with the next domain at or above `domid`.
    if info.payload.u16_at(GETDOMAININFO_DOMAIN) != domid {
        return Ok(DomainState::Gone);
    }
    let flags = info.payload.u32_at(GETDOMAININFO_FLAGS);
    Ok(if flags & DOMINF_DYING != 0 {
        DomainState::Dying
    } else if flags & DOMINF_SHUTDOWN != 0 {
        DomainState::ShutDown
    } else {
        DomainState::Running
    })
}

/// Makes this domain the handler of global `virq` (`XEN_DOMCTL_set_virq_handler`):
/// without a hardware domain nobody else is, and `VIRQ_DOM_EXC` can be bound only by it.
pub fn handle_virq(own_domid: u16, virq: u32) -> Result<(), XenError> {
    issue_unstable(XEN_DOMCTL_SET_VIRQ_HANDLER, own_domid, |arg| {
        arg.payload.put(SET_VIRQ_HANDLER_VIRQ, &virq.to_le_bytes());
    })
    .map(|_| ())
}

/// Pauses `domid` (`XEN_DOMCTL_pausedomain`).
pub fn pause(domid: u16) -> Result<(), XenError> {
    issue_unstable(XEN_DOMCTL_PAUSEDOMAIN, domid, |_| {}).map(|_| ())
}

/// Lets a paused `domid` run again (`XEN_DOMCTL_unpausedomain`).
pub fn unpause(domid: u16) -> Result<(), XenError> {
    issue_unstable(XEN_DOMCTL_UNPAUSEDOMAIN, domid, |_| {}).map(|_| ())
}

/// Destroys `domid` (`XEN_DOMCTL_destroydomain`; Xen restarts the call itself until its
/// resources are released, except pages others still map, which keep it dying).
pub fn destroy(domid: u16) -> Result<(), XenError> {
    issue_unstable(XEN_DOMCTL_DESTROYDOMAIN, domid, |_| {}).map(|_| ())
}
