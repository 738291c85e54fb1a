//! Confinement by FLASK (`confine=flask`): before it registers anything, stubvirt gives
//! its frontends the type `stubvirt_frontend_t` and itself `stubvirt_t`, the types of its
//! policy (`tools/flask/stubvirt.te`), under which Xen lets it serve those frontends and
//! nothing else. Xen labels a privileged dom0less domain `dom0_t` and the others
//! `unlabeled_t`; the policy lets `dom0_t` relabel exactly these, once. Asked for and not
//! possible (FLASK is not Xen's XSM, or the policy refuses), serve mode stops: a backend
//! that was meant to be confined must not run unconfined.
//!
//! Each frontend is paused while it is relabelled. A frontend runs from boot, and Xen's
//! FLASK hooks read a domain's label more than once in one hypercall: an event channel a
//! frontend created while being relabelled was labelled from its old type and checked
//! against its new one, and refused (seen once in the serve tests under load).

use crate::xen::abi::{DomainId, DOMID_SELF};
use crate::xen::{domain_control, flask};
use alloc::string::String;
use core::fmt::Write;

pub const BACKEND_CONTEXT: &str = "system_u:system_r:stubvirt_t";
pub const FRONTEND_CONTEXT: &str = "system_u:system_r:stubvirt_frontend_t";

fn sid(context: &str) -> Result<u32, String> {
    flask::context_to_sid(context)
        .map_err(|e| alloc::format!("FLASK_CONTEXT_TO_SID({context}): {e}"))
}

/// Relabels `frontends`, then stubvirt itself; prints `STUBVIRT-CONFINED`.
pub fn confine(frontends: &[DomainId]) -> Result<(), String> {
    let frontend_sid = sid(FRONTEND_CONTEXT)?;
    let backend_sid = sid(BACKEND_CONTEXT)?;
    let mut relabelled = String::new();
    for &domid in frontends {
        domain_control::pause(domid)
            .map_err(|e| alloc::format!("XEN_DOMCTL_pausedomain(frontend {domid}): {e}"))?;
        let relabelled_one = flask::relabel_domain(domid, frontend_sid);
        let unpaused = domain_control::unpause(domid);
        relabelled_one
            .map_err(|e| alloc::format!("FLASK_RELABEL_DOMAIN(frontend {domid}): {e}"))?;
        unpaused.map_err(|e| alloc::format!("XEN_DOMCTL_unpausedomain(frontend {domid}): {e}"))?;
        let _ = write!(
            relabelled,
            "{}{domid}",
            if relabelled.is_empty() { "" } else { "," }
        );
    }
    flask::relabel_domain(DOMID_SELF, backend_sid)
        .map_err(|e| alloc::format!("FLASK_RELABEL_DOMAIN(self): {e}"))?;
    let _ = writeln!(
        crate::console::Writer,
        "STUBVIRT-CONFINED backend=stubvirt_t frontends={relabelled} frontend_type=stubvirt_frontend_t"
    );
    Ok(())
}
