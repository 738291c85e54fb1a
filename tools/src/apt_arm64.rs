//! Debian arm64 packages for the frontend's initramfs, through a private apt
//! configuration: the machine's own apt sources, arm64 as the only architecture, own
//! package lists and cache under `~/.cache/stubvirt/apt-arm64/`, and an empty dpkg status
//! (the system's dpkg state is never read or changed). Packages are only downloaded and
//! unpacked with `dpkg -x`, never installed. No registry host is named here.
//!
//! The unpacked trees are cached in `~/.cache/stubvirt/<label>-arm64-<version>-<key>/`,
//! keyed by the versions of all their packages.

use crate::process::{run, run_in, step};
use crate::xen_arm64::fnv1a64;
use crate::xen_x86::cache_root;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

static LISTS_UPDATED: AtomicBool = AtomicBool::new(false);
/// Written last into a cached tree: a tree without it is an interrupted unpack.
const COMPLETE: &str = ".complete";

/// The unpacked tree of `packages` (arm64): the cached one when present, else downloaded
/// and unpacked now. `label` names the cache directory (`<label>-arm64-...`).
pub fn unpacked(label: &str, packages: &[&str]) -> Result<PathBuf, String> {
    let prefix = format!("{label}-arm64-");
    if let Some(tree) = newest_cached(&prefix, packages) {
        return Ok(tree);
    }
    step(&format!(
        "fetching {} for arm64 (private apt configuration, the machine's sources)",
        packages.join(" ")
    ));
    let work = cache_root().join("apt-arm64/download");
    let _ = std::fs::remove_dir_all(&work);
    create_dir(&work)?;
    let debs = download(packages, &work)?;
    let tree = cache_root().join(format!("{prefix}{}", cache_key(&debs)));
    let _ = std::fs::remove_dir_all(&tree);
    for deb in &debs {
        run(Command::new("dpkg").arg("-x").arg(&deb.path).arg(&tree))?;
    }
    std::fs::write(tree.join(COMPLETE), versions(&debs))
        .map_err(|e| format!("{}: {e}", tree.display()))?;
    let _ = std::fs::remove_dir_all(&work);
    step(&format!("unpacked into {}", tree.display()));
    Ok(tree)
}

/// A downloaded package file.
struct Deb {
    package: String,
    version: String,
    path: PathBuf,
}

/// `<version of the first package>-<FNV-1a of every package=version>`.
fn cache_key(debs: &[Deb]) -> String {
    let first = debs.first().map_or("none", |d| d.version.as_str());
    format!("{first}-{:016x}", fnv1a64(&[&versions(debs)]))
}

/// `package=version` lines, as the key is computed from them.
fn versions(debs: &[Deb]) -> String {
    debs.iter()
        .map(|d| format!("{}={}\n", d.package, d.version))
        .collect()
}

/// The newest complete tree named `prefix...` unpacked from exactly `packages`.
fn newest_cached(prefix: &str, packages: &[&str]) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(cache_root())
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .filter(|p| {
            std::fs::read_to_string(p.join(COMPLETE))
                .is_ok_and(|text| packages_of(&text) == packages)
        })
        .collect();
    found.sort();
    found.pop()
}

/// The package names of a `package=version` list.
fn packages_of(versions: &str) -> Vec<&str> {
    versions
        .lines()
        .filter_map(|line| line.split_once('=').map(|(package, _)| package))
        .collect()
}

fn create_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// apt options of the private configuration (the sources stay the machine's own).
fn options() -> Vec<String> {
    let apt = cache_root().join("apt-arm64");
    [
        "APT::Architecture=arm64".to_string(),
        "APT::Architectures::=arm64".to_string(),
        format!("Dir::State::Lists={}", apt.join("lists").display()),
        format!("Dir::Cache={}", apt.join("cache").display()),
        "Dir::State::status=/dev/null".to_string(),
        "APT::Sandbox::User=root".to_string(),
    ]
    .into_iter()
    .flat_map(|option| ["-o".to_string(), option])
    .collect()
}

/// Downloads the `.deb` of each package into `dir` (package lists refreshed once per run).
fn download(packages: &[&str], dir: &Path) -> Result<Vec<Deb>, String> {
    let apt = cache_root().join("apt-arm64");
    create_dir(&apt.join("lists/partial"))?;
    create_dir(&apt.join("cache"))?;
    if !LISTS_UPDATED.swap(true, Ordering::SeqCst) {
        run(Command::new("apt-get")
            .arg("-q")
            .args(options())
            .arg("update"))?;
    }
    let arm64: Vec<String> = packages.iter().map(|p| format!("{p}:arm64")).collect();
    run_in(
        dir,
        Command::new("apt-get")
            .arg("-q")
            .args(options())
            .arg("download")
            .args(&arm64),
    )?;
    packages.iter().map(|p| downloaded(dir, p)).collect()
}

/// The downloaded file of `package` in `dir`, with the version its control file names.
fn downloaded(dir: &Path, package: &str) -> Result<Deb, String> {
    let path = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{package}_")))
        })
        .ok_or_else(|| format!("apt-get download left no .deb for {package}"))?;
    let out = Command::new("dpkg-deb")
        .arg("-f")
        .arg(&path)
        .arg("Version")
        .output()
        .map_err(|e| format!("cannot start dpkg-deb: {e}"))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || version.is_empty() {
        return Err(format!("dpkg-deb -f {} Version failed", path.display()));
    }
    Ok(Deb {
        package: package.to_string(),
        version,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deb(package: &str, version: &str) -> Deb {
        Deb {
            package: package.into(),
            version: version.into(),
            path: PathBuf::new(),
        }
    }

    #[test]
    fn cache_key_changes_with_any_version() {
        let a = cache_key(&[deb("e2fsprogs", "1.47.0-2"), deb("libc6", "2.36-9")]);
        let b = cache_key(&[deb("e2fsprogs", "1.47.0-2"), deb("libc6", "2.36-10")]);
        assert!(a.starts_with("1.47.0-2-"));
        assert_ne!(a, b);
        assert_eq!(a.len(), "1.47.0-2-".len() + 16);
    }

    #[test]
    fn a_cached_tree_records_its_packages() {
        let text = versions(&[deb("busybox-static", "1:1.35.0-4"), deb("libc6", "2.36")]);
        assert_eq!(text, "busybox-static=1:1.35.0-4\nlibc6=2.36\n");
        assert_eq!(packages_of(&text), ["busybox-static", "libc6"]);
    }

    #[test]
    fn options_keep_the_system_dpkg_state_out() {
        let options = options();
        assert!(options.contains(&"Dir::State::status=/dev/null".to_string()));
        assert!(options.contains(&"APT::Architectures::=arm64".to_string()));
        assert_eq!(options.iter().filter(|o| *o == "-o").count(), 6);
    }
}
