//! Installing Debian packages the project needs, from the machine's own apt sources.
//!
//! Idempotent: packages already installed are not touched, and `apt-get update` runs at
//! most once per xtask invocation. No registry host is named here: apt uses the
//! machine's configured sources.

pub mod arm64;
pub mod source;

use crate::process::{run, step};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

static UPDATED: AtomicBool = AtomicBool::new(false);

/// Whether a Debian package is installed.
pub fn is_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Runs `apt-get update` once per process.
pub fn update_once() -> Result<(), String> {
    if UPDATED.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    step("apt-get update (package lists)");
    run(Command::new("apt-get").args(["-q", "update"]))
}

/// Installs the packages that are missing; says which and why.
pub fn ensure_installed(packages: &[&str], why: &str) -> Result<(), String> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !is_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    update_once()?;
    step(&format!("installing {} ({why})", missing.join(" ")));
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["-q", "-y", "--no-install-recommends", "install"])
        .args(&missing))
}
