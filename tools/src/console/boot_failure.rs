//! Why a Xen boot never got to the guests, in one line: Xen's own panic (a dom0less node it
//! refused, e.g. a passthrough it could not set up) with the error lines Xen printed just
//! before it, or stubvirt refusing the host devices it was given.

use crate::console::Transcript;

/// Xen's error lines that name a dom0less set-up problem (`dom0less-build.c`,
/// `device_tree.c`, `static-memory.c`).
const XEN_SETUP_ERRORS: &[&str] = &[
    "passthrough",
    "Failed to assign device",
    "Couldn't find node",
    "Unable to permit",
    "Failed to map",
    "xen,reg or xen,path",
    "not page aligned",
];

/// One line when Xen panicked: its panic message and the set-up errors before it.
pub fn xen_panic(t: &Transcript) -> Option<String> {
    let at = t
        .lines
        .iter()
        .position(|(_, l)| l.contains("Panic on CPU"))?;
    let message = t
        .lines
        .get(at + 1)
        .map(|(_, l)| l.trim_start_matches("(XEN) ").trim())
        .unwrap_or("(no message)");
    let causes: Vec<&str> = t.lines[..at]
        .iter()
        .rev()
        .take(40)
        .map(|(_, l)| l.trim_start_matches("(XEN) ").trim())
        .filter(|l| XEN_SETUP_ERRORS.iter().any(|e| l.contains(e)))
        .collect();
    let mut line = format!("Xen panicked while booting: {message}");
    if !causes.is_empty() {
        let causes: Vec<&str> = causes.into_iter().rev().collect();
        line.push_str(&format!(" (after: {})", causes.join("; ")));
    }
    Some(line)
}

/// stubvirt's line saying it left the host devices alone (its domain is not
/// direct-mapped, so their DMA would miss).
pub fn devices_refused(t: &Transcript) -> Option<String> {
    t.find("virtio-mmio devices in the device tree left alone")
        .map(|(_, l)| l.split("stubvirt: ").nth(1).unwrap_or(l).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript(lines: &[&str]) -> Transcript {
        Transcript::of(lines)
    }

    #[test]
    fn names_xen_s_panic_and_the_passthrough_error_before_it() {
        let t = transcript(&[
            "(XEN) *** LOADING DOMU cpus=1 memory=0x20000KB ***",
            "(XEN) Couldn't find node /virtio_mmio@a00ff00 in host_dt!",
            "(XEN) Failed to assign device to d1",
            "(XEN) ****************************************",
            "(XEN) Panic on CPU 0:",
            "(XEN) Could not set up domain domU1 (rc = -22)",
        ]);
        let line = xen_panic(&t).unwrap();
        assert_eq!(
            line,
            "Xen panicked while booting: Could not set up domain domU1 (rc = -22) (after: \
             Couldn't find node /virtio_mmio@a00ff00 in host_dt!; Failed to assign device to d1)"
        );
        assert!(xen_panic(&transcript(&["(XEN) all fine"])).is_none());
    }

    #[test]
    fn names_host_devices_stubvirt_refused() {
        let t = transcript(&[
            "(XEN) DOM1: stubvirt: virtio-mmio devices in the device tree left alone: this \
             domain is not direct-mapped",
        ]);
        assert!(devices_refused(&t)
            .unwrap()
            .starts_with("virtio-mmio devices in the device tree left alone"));
        assert!(devices_refused(&transcript(&["x"])).is_none());
    }
}
