//! stubvirt's FLASK policy: Xen's own policy (`tools/flask/policy` of the Xen source the
//! route with no dom0 is built from) plus our module `tools/flask/stubvirt.te`, compiled by
//! Debian's `checkpolicy` with Xen's `Makefile.common`. Cached in `~/.cache/stubvirt/`,
//! keyed by the Xen source, the module and the recipe; a missing cache is rebuilt (about a
//! second). docs/privilege.md says what the module allows.

use crate::apt;
use crate::process::{run, step};
use crate::xen_arm64::fnv1a64;
use crate::xen_source::XenSource;
use crate::xen_x86::cache_root;
use std::path::PathBuf;
use std::process::Command;

pub const MODULE: &str = include_str!("../flask/stubvirt.te");
/// Part of the cache key: bump when the recipe changes.
const RECIPE: &str =
    "tools/flask/policy+xen/xsm/flask/policy;modules.conf+=stubvirt;make -f Makefile.common";
/// What Xen's policy build reads.
const PARTS: [&str; 2] = ["tools/flask/policy", "xen/xsm/flask/policy"];
/// The Xen command line that makes FLASK Xen's XSM and enforces the policy module.
pub const XEN_ARGS: &str = "xsm=flask flask=enforcing";

/// The binary policy for `source`, built when missing.
pub fn policy(source: &XenSource) -> Result<PathBuf, String> {
    let key = fnv1a64(&[source.sha256(), MODULE, RECIPE]);
    let dir = cache_root().join(format!("flask-policy-{}-{key:016x}", source.version));
    let policy = dir.join("xenpolicy");
    if policy.exists() {
        return Ok(policy);
    }
    apt::ensure_installed(&["checkpolicy", "m4"], "compiling the FLASK policy")?;
    step(&format!(
        "compiling the FLASK policy: Xen {}'s with tools/flask/stubvirt.te",
        source.version
    ));
    let work = dir.join("build");
    let _ = std::fs::remove_dir_all(&work);
    let tree = work.join("tree");
    source.extract(&PARTS, &tree)?;
    let policy_dir = tree.join("tools/flask/policy");
    let modules = policy_dir.join("modules");
    std::fs::write(modules.join("stubvirt.te"), MODULE).map_err(|e| format!("stubvirt.te: {e}"))?;
    let conf = modules.join("modules.conf");
    let mut enabled =
        std::fs::read_to_string(&conf).map_err(|e| format!("{}: {e}", conf.display()))?;
    enabled.push_str("\nstubvirt = on\n");
    std::fs::write(&conf, enabled).map_err(|e| format!("{}: {e}", conf.display()))?;
    run(Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(&policy_dir)
        .args(["-f", "Makefile.common"])
        .arg(format!("FLASK_BUILD_DIR={}", work.display()))
        .arg(format!("XEN_FULLVERSION={}", source.version)))?;
    let built = work.join(format!("xenpolicy-{}", source.version));
    std::fs::rename(&built, &policy).map_err(|e| format!("{}: {e}", built.display()))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(policy)
}
