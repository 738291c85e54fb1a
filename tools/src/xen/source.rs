//! A Xen hypervisor source the user gives us, for the routes the package registry cannot
//! serve (it has Xen up to 4.17.5 only): an archive (`.tar.xz`, `.tar.gz`, ...) or an
//! unpacked tree. The route with no dom0 needs 4.21 or later (a dom0less domU can be a
//! control domain, `capabilities = <1>`, from 4.21 on); the route with a Linux dom0 and
//! `xl` needs the release of Debian trixie's binary toolstack, 4.20.
//!
//! Where it comes from, first match: `--xen-source PATH`, `STUBVIRT_XEN_SOURCE` (route
//! with no dom0), then the route's archive in `../shared/xen/` beside the checkout (what
//! CI has). An archive whose file name we know must have the sha256 we know; any other
//! source is accepted by version and keyed by its own hash.
//!
//! The hypervisor is built for arm64 with `tools/configs/xen-arm64-nodom0.config`
//! (IOREQ server, static memory for the direct-mapped driver domain, FLASK without a
//! built-in policy) and cached in `~/.cache/stubvirt/`, keyed by the source's sha256, the
//! fragment and the recipe.

use crate::arm64::xen::{build_in_tree, fnv1a64, BUILD_DEPS};
use crate::process::{run, step, workspace_root};
use crate::x86::xen::cache_root;
use crate::{apt, demo};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const CONFIG_FRAGMENT: &str = include_str!("../../configs/xen-arm64-nodom0.config");
/// Part of the cache key: bump when the build recipe changes.
const RECIPE: &str = "copy xen,config,Config.mk;arm64_defconfig+fragment;olddefconfig;make -C xen";
/// The options the route cannot do without (checked after `olddefconfig`).
const NEEDED: &[&str] = &[
    "CONFIG_IOREQ_SERVER=y",
    "CONFIG_STATIC_MEMORY=y",
    "CONFIG_XSM_FLASK=y",
];
/// Archives whose content we know: file name and sha256 (`../shared/xen/README.md`).
const KNOWN_ARCHIVES: &[(&str, &str)] = &[
    (
        "xen-4.22.0-hypervisor.tar.xz",
        "d854694706507a7431caf61ba5239d06df31b415380c891a6b2c9a15e87b2fde",
    ),
    (
        "xen-4.20.4-hypervisor.tar.xz",
        "a6fc39fc864408af194f19d75f2490a57e29d51fb8ec746e8c4c6a28a5c4c111",
    ),
];
/// The Xen releases a route can boot, and how to say so when a source is not one.
pub struct Releases {
    /// The lowest `(major, minor)` accepted.
    pub min: (u32, u32),
    /// Whether `min` is also the highest (a route tied to one release line).
    pub only: bool,
    /// What needs it, for the refusal.
    pub why: &'static str,
    /// The archive of `../shared/xen/` to suggest, and the default.
    pub archive: &'static str,
}

/// The route with no dom0: the first release whose dom0less domUs take `capabilities` (a
/// control domain that is not the hardware domain).
pub const NO_DOM0: Releases = Releases {
    min: (4, 21),
    only: false,
    why: "a driver domain without dom0 (`capabilities` in dom0less)",
    archive: "xen-4.22.0-hypervisor.tar.xz",
};
/// The route with a Linux dom0 and `xl`: trixie's toolstack speaks 4.20's domctl and
/// sysctl interfaces, whose versions change with every release.
pub const XL_DOM0: Releases = Releases {
    min: (4, 20),
    only: true,
    why: "Debian trixie's xl (xen-utils-4.20)",
    archive: "xen-4.20.4-hypervisor.tar.xz",
};
pub const ENV_VAR: &str = "STUBVIRT_XEN_SOURCE";

/// A Xen source checked for a route.
#[derive(Debug)]
pub struct XenSource {
    pub path: PathBuf,
    /// `major.minor.extra` as the source's `xen/Makefile` has it, e.g. `4.22.0`.
    pub version: String,
    sha256: String,
    archive: bool,
}

/// Where the source of the route with no dom0 comes from when no `--xen-source` is given:
/// the variable, else the shared archive if it exists. `None`: nothing to build it from.
pub fn default_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(ENV_VAR) {
        return Some(PathBuf::from(path));
    }
    shared_archive(&NO_DOM0)
}

/// `releases`' archive in `../shared/xen/` beside the checkout, if it is there.
pub fn shared_archive(releases: &Releases) -> Option<PathBuf> {
    let shared = workspace_root()
        .parent()?
        .join("shared/xen")
        .join(releases.archive);
    shared.exists().then_some(shared)
}

impl Releases {
    /// `4.21 or later`, or `4.20` for a route tied to one release line.
    fn describe(&self) -> String {
        let (major, minor) = self.min;
        match self.only {
            true => format!("{major}.{minor}"),
            false => format!("{major}.{minor} or later"),
        }
    }

    fn accepts(&self, version: (u32, u32)) -> bool {
        version >= self.min && (!self.only || version == self.min)
    }
}

impl XenSource {
    /// [`Self::open_for`] the route with no dom0.
    pub fn open(path: &Path) -> Result<Self, String> {
        Self::open_for(path, &NO_DOM0)
    }

    /// Checks `path`: it exists, is an archive or a tree with `xen/Makefile`, has the known
    /// hash if its name is known, and is one of `releases`. Each failure is one line that
    /// says what to pass instead.
    pub fn open_for(path: &Path, releases: &Releases) -> Result<Self, String> {
        let hint = format!(
            "pass --xen-source with a Xen {} source tree or archive (e.g. ../shared/xen/{})",
            releases.describe(),
            releases.archive
        );
        let metadata = std::fs::metadata(path)
            .map_err(|e| format!("Xen source {}: {e}; {hint}", path.display()))?;
        let archive = metadata.is_file();
        let makefile = if archive {
            archive_member(path, "xen/Makefile")
        } else {
            let in_tree = path.join("xen/Makefile");
            std::fs::read_to_string(&in_tree).map_err(|e| format!("{}: {e}", in_tree.display()))
        }
        .map_err(|e| format!("{} is not a Xen source ({e}); {hint}", path.display()))?;
        let (major, minor, extra) = version_of(&makefile)
            .ok_or_else(|| format!("{}: no XEN_VERSION in xen/Makefile; {hint}", path.display()))?;
        let version = format!("{major}.{minor}{extra}");
        if !releases.accepts((major, minor)) {
            return Err(format!(
                "{} is Xen {version}: {} needs Xen {}; {hint}",
                path.display(),
                releases.why,
                releases.describe()
            ));
        }
        let sha256 = if archive {
            demo::host::sha256_of_file(path)?
        } else {
            tree_sha256(path)?
        };
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some((_, known)) = KNOWN_ARCHIVES.iter().find(|(n, _)| *n == name) {
            if archive && sha256 != *known {
                return Err(format!(
                    "{}: sha256 {sha256}, expected {known}: the archive is damaged or not \
                     the release it is named after",
                    path.display()
                ));
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            version,
            sha256,
            archive,
        })
    }

    /// The source's sha256 (of the archive, or of the tree's files): keys what is built
    /// from it.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Copies the directories `parts` (relative to the source's top, e.g.
    /// `tools/flask/policy`) into `tree`, keeping their paths.
    pub fn extract(&self, parts: &[&str], tree: &Path) -> Result<(), String> {
        std::fs::create_dir_all(tree).map_err(|e| format!("{}: {e}", tree.display()))?;
        if self.archive {
            return run(Command::new("tar")
                .arg("-xf")
                .arg(&self.path)
                .arg("-C")
                .arg(tree)
                .arg("--strip-components=1")
                .arg("--wildcards")
                .args(parts.iter().map(|p| format!("*/{p}"))));
        }
        for part in parts {
            let to = tree.join(part);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            run(Command::new("cp")
                .arg("-a")
                .arg(self.path.join(part))
                .arg(&to))?;
        }
        Ok(())
    }

    /// The arm64 hypervisor built from this source (cached), building it when missing.
    pub fn hypervisor(&self) -> Result<PathBuf, String> {
        let key = fnv1a64(&[&self.sha256, CONFIG_FRAGMENT, RECIPE]);
        let dir = cache_root().join(format!("xen-arm64-{}-{key:016x}", self.version));
        let xen = dir.join("xen");
        if xen.exists() {
            return Ok(xen);
        }
        apt::ensure_installed(BUILD_DEPS, "building Xen for arm64 from source")?;
        let started = Instant::now();
        let work = dir.join("build");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
        step(&format!(
            "building Xen {} for arm64 from {} (IOREQ_SERVER, STATIC_MEMORY, DEBUG)",
            self.version,
            self.path.display()
        ));
        let tree = work.join("tree");
        std::fs::create_dir_all(&tree).map_err(|e| format!("{}: {e}", tree.display()))?;
        if self.archive {
            run(Command::new("tar")
                .arg("-xf")
                .arg(&self.path)
                .arg("-C")
                .arg(&tree)
                .arg("--strip-components=1"))?;
        } else {
            // Only what a hypervisor build reads: the user's tree is never written to.
            run(Command::new("cp")
                .arg("-a")
                .args(["xen", "config", "Config.mk"].map(|p| self.path.join(p)))
                .arg(&tree))?;
        }
        build_in_tree(&tree, CONFIG_FRAGMENT, NEEDED)?;
        let partial = dir.join("xen.partial");
        std::fs::copy(tree.join("xen/xen"), &partial).map_err(|e| format!("copy xen: {e}"))?;
        std::fs::rename(&partial, &xen).map_err(|e| format!("{}: {e}", xen.display()))?;
        let _ = std::fs::remove_dir_all(&work);
        step(&format!(
            "Xen {} for arm64 built in {:.0} s: {}",
            self.version,
            started.elapsed().as_secs_f64(),
            xen.display()
        ));
        Ok(xen)
    }
}

/// One member of an archive whose entries sit under one top directory (`*/member`).
fn archive_member(archive: &Path, member: &str) -> Result<String, String> {
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(archive)
        .arg("--wildcards")
        .arg(format!("*/{member}"))
        .output()
        .map_err(|e| format!("cannot start tar: {e}"))?;
    if !out.status.success() || out.stdout.is_empty() {
        return Err(format!("no {member} in the archive"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `(major, minor, extra)` from `xen/Makefile`'s `XEN_VERSION`, `XEN_SUBVERSION` and
/// `XEN_EXTRAVERSION` (the latter without its `$(XEN_VENDORVERSION)` tail).
fn version_of(makefile: &str) -> Option<(u32, u32, String)> {
    let value = |name: &str| {
        makefile.lines().find_map(|line| {
            let line = line.trim().strip_prefix("export ").unwrap_or(line.trim());
            let rest = line.strip_prefix(name)?.trim_start();
            let rest = rest
                .strip_prefix("?=")
                .or_else(|| rest.strip_prefix(":="))
                .or_else(|| rest.strip_prefix('='))?;
            Some(rest.trim().to_string())
        })
    };
    let major = value("XEN_VERSION")?.parse().ok()?;
    let minor = value("XEN_SUBVERSION")?.parse().ok()?;
    let extra = value("XEN_EXTRAVERSION").unwrap_or_default();
    let extra = extra.split("$(").next().unwrap_or("").to_string();
    Some((major, minor, extra))
}

/// sha256 over the sorted file list and contents of what a hypervisor build reads.
fn tree_sha256(tree: &Path) -> Result<String, String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(
            "find xen config Config.mk -type f ! -path '*/.git/*' -print0 | LC_ALL=C sort -z \
             | xargs -0 sha256sum | sha256sum",
        )
        .current_dir(tree)
        .output()
        .map_err(|e| format!("cannot hash {}: {e}", tree.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().next() {
        Some(hex) if out.status.success() && hex.len() == 64 => Ok(hex.to_string()),
        _ => Err(format!("cannot hash {}", tree.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_version_from_xen_makefile() {
        let makefile = "# ...\nexport XEN_VERSION       = 4\nexport XEN_SUBVERSION    = 22\n\
                        export XEN_EXTRAVERSION ?= .0$(XEN_VENDORVERSION)\n";
        assert_eq!(version_of(makefile), Some((4, 22, ".0".to_string())));
        assert_eq!(version_of("XEN_VERSION = 4\n"), None);
    }

    #[test]
    fn refuses_what_is_not_a_new_enough_xen() {
        let dir = std::env::temp_dir().join(format!("stubvirt-xen-src-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("xen")).unwrap();
        let err = XenSource::open(&dir.join("missing")).unwrap_err();
        assert!(err.contains("--xen-source"), "{err}");
        let err = XenSource::open(&dir).unwrap_err();
        assert!(err.contains("is not a Xen source"), "{err}");
        std::fs::write(
            dir.join("xen/Makefile"),
            "export XEN_VERSION = 4\nexport XEN_SUBVERSION = 17\nexport XEN_EXTRAVERSION ?= .5\n",
        )
        .unwrap();
        let err = XenSource::open(&dir).unwrap_err();
        assert!(
            err.contains("is Xen 4.17.5") && err.contains("4.21 or later"),
            "{err}"
        );
        std::fs::write(
            dir.join("xen/Makefile"),
            "export XEN_VERSION = 4\nexport XEN_SUBVERSION = 21\nexport XEN_EXTRAVERSION ?= .1\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("config")).unwrap();
        std::fs::write(dir.join("Config.mk"), "").unwrap();
        let source = XenSource::open(&dir).unwrap();
        assert_eq!(source.version, "4.21.1");
        assert!(!source.archive);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_xl_route_takes_4_20_only() {
        assert!(XL_DOM0.accepts((4, 20)));
        assert!(!XL_DOM0.accepts((4, 19)) && !XL_DOM0.accepts((4, 22)));
        assert!(NO_DOM0.accepts((4, 21)) && NO_DOM0.accepts((5, 0)));
        assert!(!NO_DOM0.accepts((4, 20)));
        assert_eq!(XL_DOM0.describe(), "4.20");
    }

    #[test]
    fn checks_the_shared_archives_when_present() {
        // CI and every developer machine have them beside the checkout; elsewhere there is
        // nothing to check.
        for (releases, version, known) in [(&NO_DOM0, "4.22.0", 0), (&XL_DOM0, "4.20.4", 1)] {
            let Some(shared) = shared_archive(releases) else {
                continue;
            };
            let source = XenSource::open_for(&shared, releases).unwrap();
            assert_eq!(source.version, version);
            assert!(source.archive);
            assert_eq!(source.sha256, KNOWN_ARCHIVES[known].1);
            let err = XenSource::open_for(&shared, [&XL_DOM0, &NO_DOM0][known]).unwrap_err();
            assert!(err.contains(&format!("is Xen {version}")), "{err}");
        }
    }
}
