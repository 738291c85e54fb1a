//! Debian's Xen 4.17 hypervisor for the x86_64 tests, unpacked into the user's cache.
//!
//! The package is fetched with `apt-get download` and unpacked with `dpkg -x` rather than
//! installed: installing it pulls in the toolstack and boot-loader hooks. The cache is keyed
//! by the package version, so a new Debian update is picked up and a fresh machine rebuilds.

use crate::{
    apt,
    process::{run, step},
};
use std::path::{Path, PathBuf};
use std::process::Command;

const PACKAGE: &str = "xen-hypervisor-4.17-amd64";
/// Inside the package: the gzipped multiboot ELF QEMU's `-kernel` loads.
const XEN_GZ: &str = "boot/xen-4.17-amd64.gz";

/// `$XDG_CACHE_HOME/stubvirt` or `~/.cache/stubvirt`.
pub fn cache_root() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("stubvirt")
}

fn candidate_version() -> Option<String> {
    let out = Command::new("apt-cache")
        .args(["show", "--no-all-versions", PACKAGE])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        l.strip_prefix("Version: ")
            .map(str::trim)
            .map(str::to_owned)
    })
}

/// The path of the uncompressed Xen binary, downloading and unpacking it when missing.
/// Stale package lists (a version the mirror no longer has) get one `apt-get update`.
pub fn hypervisor() -> Result<PathBuf, String> {
    if let Some(version) = candidate_version() {
        if let Ok(xen) = fetch(&version) {
            return Ok(xen);
        }
    }
    apt::update_once()?;
    let version = candidate_version().ok_or(format!("apt knows no package {PACKAGE}"))?;
    fetch(&version)
}

/// The cached Xen binary of `version`, fetched and unpacked first when absent.
fn fetch(version: &str) -> Result<PathBuf, String> {
    let dir = cache_root().join(format!("{PACKAGE}_{}", version.replace([':', '/'], "_")));
    let xen = dir.join("xen");
    if xen.exists() {
        return Ok(xen);
    }
    step(&format!(
        "fetching {PACKAGE} {version} into {} (apt-get download, dpkg -x)",
        dir.display()
    ));
    let work = dir.join("unpack");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("create {}: {e}", work.display()))?;
    // Not process::run: apt-get download writes into the current directory.
    let status = Command::new("apt-get")
        .current_dir(&work)
        .args(["-q", "download", &format!("{PACKAGE}={version}")])
        .status()
        .map_err(|e| format!("apt-get download: {e}"))?;
    if !status.success() {
        return Err(format!(
            "apt-get download {PACKAGE}={version} failed: {status}"
        ));
    }
    let deb = std::fs::read_dir(&work)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or("apt-get download left no .deb")?;
    run(Command::new("dpkg")
        .arg("-x")
        .arg(&deb)
        .arg(work.join("root")))?;
    let gz = work.join("root").join(XEN_GZ);
    let output = Command::new("gzip")
        .arg("-dc")
        .arg(&gz)
        .output()
        .map_err(|e| format!("gzip: {e}"))?;
    if !output.status.success() {
        return Err(format!("gzip -dc {} failed", gz.display()));
    }
    // Written under a temporary name and renamed, so an interrupted run leaves no
    // half-written binary that a later run would trust.
    let partial = dir.join("xen.partial");
    std::fs::write(&partial, &output.stdout).map_err(|e| e.to_string())?;
    std::fs::rename(&partial, &xen).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(xen)
}
