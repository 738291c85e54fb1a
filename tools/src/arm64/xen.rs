//! Xen 4.17.5 for arm64 with `CONFIG_IOREQ_SERVER`. Debian's arm64 hypervisor packages are
//! built without IOREQ (dm_op's create_ioreq_server returns -ENOSYS), so this builds the
//! hypervisor alone from Debian's `xen` source package: `arm64_defconfig` plus
//! `tools/configs/xen-arm64-extra.config`, cross-compiled with `aarch64-linux-gnu-`.
//!
//! The binary is cached in `~/.cache/stubvirt/`, keyed by the source version and the
//! config fragment; a fresh machine (or a changed fragment) rebuilds, in about 25 s.

use crate::apt;
use crate::apt::source::AptSource;
use crate::process::{run, step};
use crate::x86::xen::cache_root;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The Debian source version (bookworm). Pinned: the registry here serves 4.17.5's files,
/// while the newer bookworm-security version's files are not downloadable.
const VERSION: &str = "4.17.5+72-g01140da4e8-1";
const CONFIG_FRAGMENT: &str = include_str!("../../configs/xen-arm64-extra.config");
/// Part of the cache key: bump when the build recipe below changes.
const RECIPE: &str = "arm64_defconfig+fragment;olddefconfig;make -C xen";
pub const BUILD_DEPS: &[&str] = &[
    "gcc-aarch64-linux-gnu",
    "binutils-aarch64-linux-gnu",
    "make",
    "flex",
    "bison",
    "python3",
    "dpkg-dev",
    "xz-utils",
];

/// The path of the cached `xen` binary (arm64 Image), building it when missing.
pub fn hypervisor() -> Result<PathBuf, String> {
    let key = fnv1a64(&[VERSION, CONFIG_FRAGMENT, RECIPE]);
    let dir = cache_root().join(format!("xen-arm64-{VERSION}-{key:016x}"));
    let xen = dir.join("xen");
    if xen.exists() {
        return Ok(xen);
    }
    apt::ensure_installed(
        BUILD_DEPS,
        "building Xen for arm64 from Debian's source package",
    )?;
    let started = Instant::now();
    let source = AptSource::new(&cache_root().join("apt-src"))?;
    let work = dir.join("build");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    step(&format!("fetching Debian source package xen={VERSION}"));
    source.run(
        &work,
        &["source", "--download-only", &format!("xen={VERSION}")],
    )?;
    let dsc = find_with_extension(&work, "dsc")?;
    let tree = work.join("xen");
    run(Command::new("dpkg-source").arg("-x").arg(&dsc).arg(&tree))?;

    step("building the Xen hypervisor for arm64 (IOREQ_SERVER, DEBUG)");
    build_in_tree(
        &tree,
        CONFIG_FRAGMENT,
        &["CONFIG_IOREQ_SERVER=y", "CONFIG_DEBUG=y"],
    )?;

    let partial = dir.join("xen.partial");
    std::fs::copy(tree.join("xen/xen"), &partial).map_err(|e| format!("copy xen: {e}"))?;
    std::fs::rename(&partial, &xen).map_err(|e| format!("{}: {e}", xen.display()))?;
    let _ = std::fs::remove_dir_all(&work);
    step(&format!(
        "Xen {VERSION} for arm64 built in {:.0} s: {}",
        started.elapsed().as_secs_f64(),
        xen.display()
    ));
    Ok(xen)
}

/// Configures and builds the hypervisor in `tree` (a Xen source tree: `xen/`, `config/`,
/// `Config.mk`): `arm64_defconfig` plus `fragment`, `olddefconfig`, then `make`. Every
/// line of `needed` must have survived `olddefconfig` (a Kconfig dependency can drop one).
pub fn build_in_tree(tree: &Path, fragment: &str, needed: &[&str]) -> Result<(), String> {
    let make = |args: &[&str]| {
        run(Command::new("make")
            .arg("-C")
            .arg(tree.join("xen"))
            .args(["XEN_TARGET_ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-"])
            .args(args))
    };
    make(&["arm64_defconfig"])?;
    let config = tree.join("xen/.config");
    let mut text = std::fs::read_to_string(&config).map_err(|e| format!("{config:?}: {e}"))?;
    text.push_str(fragment);
    std::fs::write(&config, text).map_err(|e| format!("{config:?}: {e}"))?;
    make(&["olddefconfig"])?;
    let text = std::fs::read_to_string(&config).map_err(|e| format!("{config:?}: {e}"))?;
    for option in needed {
        if !text.lines().any(|l| l == *option) {
            return Err(format!(
                "Xen config lost {option} (see {})",
                config.display()
            ));
        }
    }
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    make(&[&format!("-j{jobs}")])
}

fn find_with_extension(dir: &Path, extension: &str) -> Result<PathBuf, String> {
    std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == extension))
        .ok_or_else(|| format!("no .{extension} file in {}", dir.display()))
}

/// FNV-1a (64-bit) over the parts, each followed by a 0 byte: a cache key that stays the
/// same across Rust releases (unlike `DefaultHasher`).
pub fn fnv1a64(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in part.as_bytes().iter().chain(&[0u8]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::fnv1a64;

    #[test]
    fn cache_key_is_stable_and_separates_parts() {
        assert_eq!(fnv1a64(&[]), 0xcbf2_9ce4_8422_2325);
        assert_ne!(fnv1a64(&["ab", "c"]), fnv1a64(&["a", "bc"]));
        assert_eq!(fnv1a64(&["x"]), fnv1a64(&["x"]));
    }
}
