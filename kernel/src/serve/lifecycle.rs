//! Frontends that go away. A frontend whose domain shut down, crashed or was destroyed
//! is noticed (at once through `VIRQ_DOM_EXC` where Xen lets us bind it, and by polling
//! every frontend's state once a second in any case), then released: its devices
//! detached (every grant mapping of it unmapped, frames for it dropped), its ioreq
//! server destroyed, its event channels closed and its ioreq page given back, so that
//! nothing of ours keeps the domain from being freed. With `frontend_exit=destroy` and
//! control-domain rights stubvirt then destroys it, as xl's `on_crash=destroy` would.

use super::memories::Memories;
use super::setup::FrontendServer;
use crate::xen::abi::event_channel::{Port, VIRQ_DOM_EXC};
use crate::xen::abi::DomainId;
use crate::xen::domain_control::{self, DomainState};
use crate::xen::{dm_op, evtchn};
use alloc::vec::Vec;
use core::fmt::Write;
use devices::backend::{Backend, Detached, Frontends};

/// Longest time between two checks of every frontend's state.
const CHECK_EVERY_NS: u64 = 1_000_000_000;
/// How long a destroyed domain may stay dying before we report it still held.
const DESTROY_WAIT_NS: u64 = 2_000_000_000;

/// How frontends that go away are noticed.
pub struct Watch {
    /// `VIRQ_DOM_EXC`, bound and masked (polled with the ioreq channels).
    virq: Option<Port>,
    next_check_ns: u64,
}

/// A frontend found not running, and what told us.
pub struct Gone {
    pub domid: DomainId,
    pub state: DomainState,
    pub via: &'static str,
}

impl Watch {
    /// Binds `VIRQ_DOM_EXC` if Xen lets us: as dom0 we are its handler already (the
    /// hardware domain); with no dom0 nobody is until a control domain asks.
    /// `take_virq`: make this domain `VIRQ_DOM_EXC`'s handler first. Not where a dom0
    /// runs xenstored (the xl route): it is the handler there, and needs the virq to
    /// notice dying domains itself.
    pub fn start(own_domid: DomainId, take_virq: bool) -> Self {
        if take_virq {
            if let Err(e) = domain_control::handle_virq(own_domid, VIRQ_DOM_EXC) {
                log::info!("serve: XEN_DOMCTL_set_virq_handler(VIRQ_DOM_EXC): {e}");
            }
        }
        let virq = match evtchn::bind_virq(VIRQ_DOM_EXC, 0) {
            Ok(port) => {
                evtchn::mask(port);
                Some(port)
            }
            Err(e) => {
                log::info!("serve: VIRQ_DOM_EXC not bound ({e}): frontends are polled");
                None
            }
        };
        Self {
            virq,
            next_check_ns: 0,
        }
    }

    /// `STUBVIRT-WATCH virq=dom_exc|none poll_ms=1000`.
    pub fn describe(&self) -> alloc::string::String {
        alloc::format!(
            "STUBVIRT-WATCH virq={} poll_ms={}",
            if self.virq.is_some() {
                "dom_exc"
            } else {
                "none"
            },
            CHECK_EVERY_NS / 1_000_000
        )
    }

    pub fn port(&self) -> Option<Port> {
        self.virq
    }

    /// The frontends among `domids` that no longer run: checked when the virq fired and
    /// at least every [`CHECK_EVERY_NS`]. A state Xen will not tell is taken as running.
    pub fn check(&mut self, now: u64, domids: impl Iterator<Item = DomainId>) -> Vec<Gone> {
        let fired = self.virq.is_some_and(evtchn::is_pending);
        if !fired && now < self.next_check_ns {
            return Vec::new();
        }
        if let Some(port) = self.virq.filter(|_| fired) {
            evtchn::clear_pending(port);
        }
        self.next_check_ns = now.saturating_add(CHECK_EVERY_NS);
        domids
            .filter_map(|domid| match domain_control::state(domid) {
                Ok(DomainState::Running) | Err(_) => None,
                Ok(state) => Some(Gone {
                    domid,
                    state,
                    via: if fired { "virq" } else { "poll" },
                }),
            })
            .collect()
    }
}

/// What releasing a server gave back to Xen.
pub struct Released {
    pub ioreq_server: bool,
    pub channels_closed: usize,
    pub channels: usize,
}

/// Gives back to Xen what `server` holds: the ioreq server, its event channels, and
/// (with the vcpus' slots dropped) its ioreq page. The server stays, marked departed.
pub fn release(server: &mut FrontendServer) -> Released {
    let ioreq_server = match dm_op::destroy_ioreq_server(server.domid, server.id) {
        Ok(()) => true,
        Err(e) => {
            log::warn!(
                "serve: XEN_DMOP_destroy_ioreq_server({}): {e}",
                server.domid
            );
            false
        }
    };
    let vcpus = core::mem::take(&mut server.vcpus);
    let channels = vcpus.len();
    let channels_closed = vcpus
        .iter()
        .filter(|v| evtchn::close(v.channel.port).is_ok())
        .count();
    server.departed = Some(vcpus.iter().map(|v| v.served).collect());
    // The last slot dropped unmaps the ioreq page and gives its frame back.
    drop(vcpus);
    Released {
        ioreq_server,
        channels_closed,
        channels,
    }
}

/// `STUBVIRT-FRONTEND-GONE frontend=N state=S via=virq|poll devices=D pages_held=P
/// ioreq_server=released channels=C/C`
pub fn report_gone(gone: &Gone, detached: Detached, released: &Released) {
    let _ = writeln!(
        crate::console::Writer,
        "STUBVIRT-FRONTEND-GONE frontend={} state={} via={} devices={} pages_held={} ioreq_server={} channels={}/{}",
        gone.domid,
        gone.state.name(),
        gone.via,
        detached.devices,
        detached.pages_held,
        if released.ioreq_server { "released" } else { "kept" },
        released.channels_closed,
        released.channels
    );
}

/// Destroys `domid` and waits (bounded) until Xen has freed it, printing
/// `STUBVIRT-FRONTEND-DESTROYED frontend=N result=freed|dying|refused(errnoE) ms=M`:
/// `dying` means something still holds its pages.
pub fn destroy(domid: DomainId) {
    let start = evtchn::system_time_ns();
    let result = match domain_control::destroy(domid) {
        Err(e) => alloc::format!("refused(errno{})", e.0),
        Ok(()) => {
            let mut state = domain_control::state(domid);
            while state != Ok(DomainState::Gone)
                && evtchn::system_time_ns().saturating_sub(start) < DESTROY_WAIT_NS
            {
                // Xen frees the domain after an RCU grace period: look again shortly.
                let _ = crate::xen::sched::poll(&mut [], evtchn::system_time_ns() + 10_000_000);
                state = domain_control::state(domid);
            }
            match state {
                Ok(DomainState::Gone) => "freed".into(),
                Ok(other) => other.name().into(),
                Err(e) => alloc::format!("unknown(errno{})", e.0),
            }
        }
    };
    let ms = evtchn::system_time_ns().saturating_sub(start) / 1_000_000;
    let _ = writeln!(
        crate::console::Writer,
        "STUBVIRT-FRONTEND-DESTROYED frontend={domid} result={result} ms={ms}"
    );
}

/// Releases a frontend's devices, memory and IOREQ server; `None` if it is not served
/// (or already released).
pub fn release_frontend(
    servers: &mut [FrontendServer],
    backend: &mut Backend,
    memories: &mut Memories,
    domid: DomainId,
) -> Option<(Detached, Released)> {
    let server = servers
        .iter_mut()
        .find(|s| s.domid == domid && s.departed.is_none())?;
    let detached = memories
        .memory(domid)
        .map(|memory| backend.detach_frontend(domid, memory))
        .unwrap_or_default();
    memories.remove(domid);
    Some((detached, release(server)))
}
