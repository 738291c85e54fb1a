//! Debian arm64 packages for the guests' initramfs, through a private apt configuration:
//! the machine's own apt sources (or the same sources renamed to another Debian release,
//! see [`source::write_sources`]), arm64 as the only architecture, own package lists
//! and cache under `~/.cache/stubvirt/apt-arm64[-<release>]/`, and an empty dpkg status
//! (the system's dpkg state is never read or changed). Packages are only downloaded and
//! unpacked with `dpkg -x`, never installed. No registry host is named here.
//!
//! The unpacked trees are cached in
//! `~/.cache/stubvirt/<label>[-<release>]-arm64-<version>-<key>/`, keyed by the versions
//! of all their packages.

use super::source;
use crate::arm64::xen::fnv1a64;
use crate::process::{run, run_in, step};
use crate::x86::xen::cache_root;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The configurations whose package lists this process refreshed already.
static LISTS_UPDATED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
/// Written last into a cached tree: a tree without it is an interrupted unpack.
const COMPLETE: &str = ".complete";

/// Which Debian release the packages come from.
#[derive(Clone, Copy, Debug)]
pub enum Suite {
    /// The machine's own apt sources, as configured.
    Machine,
    /// Another Debian release, e.g. `trixie`: the machine's sources, renamed.
    Release(&'static str),
}

impl Suite {
    /// The private configuration's directory: its own lists and cache per release.
    fn root(self) -> PathBuf {
        match self {
            Suite::Machine => cache_root().join("apt-arm64"),
            Suite::Release(release) => cache_root().join(format!("apt-arm64-{release}")),
        }
    }

    /// What the progress lines and errors call it.
    fn describe(self) -> String {
        match self {
            Suite::Machine => "the machine's sources".to_string(),
            Suite::Release(release) => format!("{release}: the machine's sources renamed"),
        }
    }

    /// `<label>[-<release>]-arm64-`: how the cached trees from this suite are named.
    fn tree_prefix(self, label: &str) -> String {
        match self {
            Suite::Machine => format!("{label}-arm64-"),
            Suite::Release(release) => format!("{label}-{release}-arm64-"),
        }
    }
}

/// The unpacked tree of `packages` (arm64) from `suite`: the cached one when present, else
/// downloaded and unpacked now. `label` names the cache directory.
pub fn unpacked(suite: Suite, label: &str, packages: &[&str]) -> Result<PathBuf, String> {
    let prefix = suite.tree_prefix(label);
    if let Some(tree) = newest_cached(&prefix, packages) {
        return Ok(tree);
    }
    step(&format!(
        "fetching {} for arm64 (private apt configuration, {})",
        packages.join(" "),
        suite.describe()
    ));
    let work = suite.root().join("download");
    let _ = std::fs::remove_dir_all(&work);
    create_dir(&work)?;
    let debs = download(suite, packages, &work)?;
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

/// apt options of the private configuration (the sources are the machine's own, or for
/// another release those [`source::write_sources`] wrote into its directory).
fn options(suite: Suite) -> Vec<String> {
    let apt = suite.root();
    let sources = match suite {
        Suite::Machine => Vec::new(),
        Suite::Release(_) => source::sources_options(&apt),
    };
    let private = [
        "APT::Architecture=arm64".to_string(),
        "APT::Architectures::=arm64".to_string(),
        format!("Dir::State::Lists={}", apt.join("lists").display()),
        format!("Dir::Cache={}", apt.join("cache").display()),
        "Dir::State::status=/dev/null".to_string(),
        "APT::Sandbox::User=root".to_string(),
    ]
    .into_iter()
    .flat_map(|option| ["-o".to_string(), option]);
    sources.into_iter().chain(private).collect()
}

/// Refreshes `suite`'s package lists, once per process.
fn update_lists(suite: Suite) -> Result<(), String> {
    let apt = suite.root();
    let fresh = LISTS_UPDATED
        .lock()
        .map_err(|_| "apt list bookkeeping poisoned".to_string())?
        .insert(apt.clone());
    if !fresh {
        return Ok(());
    }
    create_dir(&apt.join("lists/partial"))?;
    create_dir(&apt.join("cache"))?;
    if let Suite::Release(release) = suite {
        source::write_sources(&apt, "deb", Some(release))?;
    }
    run(Command::new("apt-get")
        .arg("-q")
        .args(options(suite))
        .arg("update"))
}

/// The packages `package`'s candidate version in `suite` depends on (versions and
/// alternatives left out): what a metapackage such as `linux-image-arm64` stands for.
/// Reads the package lists as they are, refreshing them only when there are none.
pub fn depends(suite: Suite, package: &str) -> Result<Vec<String>, String> {
    let has_lists = std::fs::read_dir(suite.root().join("lists"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
        })
        .unwrap_or(false);
    if !has_lists {
        update_lists(suite)?;
    }
    let out = Command::new("apt-cache")
        .arg("-q")
        .args(options(suite))
        .args(["show", "--no-all-versions"])
        .arg(format!("{package}:arm64"))
        .output()
        .map_err(|e| format!("cannot start apt-cache: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "apt-cache show {package} ({}): {}",
            suite.describe(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(depends_field(&text))
}

/// The package names of a control text's `Depends` field.
fn depends_field(control: &str) -> Vec<String> {
    control
        .lines()
        .find_map(|l| l.strip_prefix("Depends:"))
        .unwrap_or("")
        .split(',')
        .filter_map(|dep| dep.split(['|', '(', ':']).next())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

/// Downloads the `.deb` of each package into `dir` (package lists refreshed once per run).
fn download(suite: Suite, packages: &[&str], dir: &Path) -> Result<Vec<Deb>, String> {
    update_lists(suite)?;
    let arm64: Vec<String> = packages.iter().map(|p| format!("{p}:arm64")).collect();
    run_in(
        dir,
        Command::new("apt-get")
            .arg("-q")
            .args(options(suite))
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
        let options = options(Suite::Machine);
        assert!(options.contains(&"Dir::State::status=/dev/null".to_string()));
        assert!(options.contains(&"APT::Architectures::=arm64".to_string()));
        assert_eq!(options.iter().filter(|o| *o == "-o").count(), 6);
        // Another release: its own sources, lists and cache besides the same options.
        let trixie = super::options(Suite::Release("trixie"));
        assert_eq!(trixie.iter().filter(|o| *o == "-o").count(), 8);
        assert!(trixie
            .iter()
            .any(|o| o.ends_with("apt-arm64-trixie/sources.list")));
        assert!(trixie.iter().any(|o| o.ends_with("apt-arm64-trixie/lists")));
    }

    #[test]
    fn depends_names_the_packages_only() {
        let control = "Package: linux-image-arm64\nDepends: linux-image-6.12.118+deb13-arm64 \
                       (= 6.12.118-1), a | b, python3:any (>= 3)\nDescription: x\n";
        assert_eq!(
            depends_field(control),
            ["linux-image-6.12.118+deb13-arm64", "a", "python3"]
        );
        assert!(depends_field("Package: x\n").is_empty());
    }
}
