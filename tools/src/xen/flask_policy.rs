//! stubvirt's FLASK policy: Xen's own policy (`tools/flask/policy` of the Xen source the
//! route with no dom0 is built from) plus our module `tools/flask/stubvirt.te`, compiled by
//! Debian's `checkpolicy` with Xen's `Makefile.common`. Cached in `~/.cache/stubvirt/`,
//! keyed by the Xen source, the module and the recipe; a missing cache is rebuilt (about a
//! second). docs/privilege.md says what the module allows.

use super::source::XenSource;
use crate::apt;
use crate::arm64::xen::fnv1a64;
use crate::process::{run, step};
use crate::x86::xen::cache_root;
use std::path::PathBuf;
use std::process::Command;

pub const MODULE: &str = include_str!("../../flask/stubvirt.te");
/// Part of the cache key: bump when the recipe changes.
const RECIPE: &str =
    "tools/flask/policy+xen/xsm/flask/policy;modules.conf+=stubvirt;make -f Makefile.common";
/// What Xen's policy build reads.
const PARTS: [&str; 2] = ["tools/flask/policy", "xen/xsm/flask/policy"];
/// The Xen command line that makes FLASK Xen's XSM and enforces the policy module.
pub const XEN_ARGS: &str = "xsm=flask flask=enforcing";

/// The module as Xen `version` takes it. Before 4.21 there is no
/// `domain2:get_domain_state` (nor the domctl): stubvirt asks for a domain's state with
/// `XEN_DOMCTL_getdomaininfo` there, so each such rule allows `domain:getdomaininfo`.
pub fn module_for(version: &str) -> String {
    let mut numbers = version.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    if (major, minor) >= (4, 21) {
        return MODULE.to_string();
    }
    MODULE.replace(":domain2 get_domain_state;", ":domain getdomaininfo;")
}

/// The binary policy for `source`, built when missing.
pub fn policy(source: &XenSource) -> Result<PathBuf, String> {
    policy_with(source, "")
}

/// The binary policy for `source` with `extra` rules appended to the module (a run that
/// needs more than the product does, e.g. Linux's netback beside stubvirt), built when
/// missing.
pub fn policy_with(source: &XenSource, extra: &str) -> Result<PathBuf, String> {
    let module = module_for(&source.version) + extra;
    let key = fnv1a64(&[source.sha256(), &module, RECIPE]);
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
    std::fs::write(modules.join("stubvirt.te"), &module)
        .map_err(|e| format!("stubvirt.te: {e}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_4_21_the_state_rules_allow_getdomaininfo() {
        assert_eq!(module_for("4.22.0"), MODULE);
        let old = module_for("4.20.4");
        assert!(!old.contains("get_domain_state;"));
        assert_eq!(
            old.matches(":domain getdomaininfo;").count(),
            MODULE.matches(":domain2 get_domain_state;").count()
        );
    }
}
