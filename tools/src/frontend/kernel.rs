//! The frontend Linux for the end-to-end run: Debian's `linux-source-6.12` (Debian's own
//! arm64 kernels have `# CONFIG_XEN_VIRTIO is not set`, so they cannot be grant-DMA
//! frontends), `allnoconfig` with `tools/frontend/linux.config`, built by
//! `tools/frontend/build-linux.sh` into an arm64 `Image` plus the virtio modules.
//!
//! About 6 minutes on 2 cores. The result is cached in `~/.cache/stubvirt/`, keyed by the
//! installed source package version, the config and the build script; it is rebuilt only
//! when one of them changes.

use crate::apt;
use crate::arm64::xen::fnv1a64;
use crate::process::{run, step};
use crate::x86::xen::cache_root;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The Debian binary package carrying the source tarball (bookworm-security).
const SOURCE_PACKAGE: &str = "linux-source-6.12";
const TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";
pub const CONFIG: &str = include_str!("../../frontend/linux.config");
const BUILD_SCRIPT: &str = include_str!("../../frontend/build-linux.sh");
const BUILD_DEPS: &[&str] = &[
    "gcc-aarch64-linux-gnu",
    "binutils-aarch64-linux-gnu",
    "make",
    "flex",
    "bison",
    "bc",
    "xz-utils",
];

/// A built frontend kernel: the `Image` and the directory of its modules (`*.ko`).
pub struct Kernel {
    pub image: PathBuf,
    pub modules: PathBuf,
    /// `linux-source-6.12` version it was built from.
    pub version: String,
    /// Seconds the build took when it ran now; `None` when it came from the cache.
    pub built_seconds: Option<u64>,
}

/// The installed version of a Debian package, if any.
fn installed_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status} ${Version}", package])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let version = text.strip_prefix("install ok installed ")?.trim();
    (!version.is_empty()).then(|| version.to_string())
}

/// The cache directory name for a source version, config and build script.
pub fn cache_name(version: &str, config: &str, script: &str) -> String {
    let key = fnv1a64(&[SOURCE_PACKAGE, version, config, script]);
    format!("linux-frontend-{version}-{key:016x}")
}

/// The cached frontend kernel, building it when missing.
pub fn ensure() -> Result<Kernel, String> {
    apt::ensure_installed(
        &[SOURCE_PACKAGE],
        "the frontend Linux source (Debian's arm64 kernels lack CONFIG_XEN_VIRTIO)",
    )?;
    let version = installed_version(SOURCE_PACKAGE)
        .ok_or_else(|| format!("{SOURCE_PACKAGE} is not installed"))?;
    let dir = cache_root().join(cache_name(&version, CONFIG, BUILD_SCRIPT));
    let image = dir.join("Image");
    let modules = dir.join("modules");
    if image.exists() {
        step(&format!(
            "frontend Linux {version} (cached): {}",
            image.display()
        ));
        return Ok(Kernel {
            image,
            modules,
            version,
            built_seconds: None,
        });
    }
    apt::ensure_installed(BUILD_DEPS, "building the frontend Linux for arm64")?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let files = dir.join("inputs");
    std::fs::create_dir_all(&files).map_err(|e| format!("{}: {e}", files.display()))?;
    let config = files.join("linux.config");
    let script = files.join("build-linux.sh");
    std::fs::write(&config, CONFIG).map_err(|e| format!("{}: {e}", config.display()))?;
    std::fs::write(&script, BUILD_SCRIPT).map_err(|e| format!("{}: {e}", script.display()))?;
    step(&format!(
        "building the frontend Linux {version} for arm64 (about 6 min on 2 cores; \
         cached afterwards in {})",
        dir.display()
    ));
    let started = Instant::now();
    run(Command::new("bash")
        .arg(&script)
        .arg(TARBALL)
        .arg(&config)
        .arg(&dir))?;
    if !image.exists() {
        return Err(format!("the kernel build left no {}", image.display()));
    }
    Ok(Kernel {
        image,
        modules,
        version,
        built_seconds: Some(started.elapsed().as_secs()),
    })
}

/// The modules the init scripts load, in load order (virtio_mmio last: loading it probes
/// the devices, after the readiness handshake).
pub const MODULES: &[&str] = &[
    "virtio_ring.ko",
    "virtio.ko",
    "dimlib.ko",
    "failover.ko",
    "net_failover.ko",
    "virtio_blk.ko",
    "virtio_net.ko",
    "virtio_mmio.ko",
    // Xen's PV frontends: only the side-by-side bench loads them.
    "xen-blkfront.ko",
    "xen-netfront.ko",
];

/// Checks that the build produced every module the init script loads.
pub fn check_modules(dir: &Path) -> Result<(), String> {
    let missing: Vec<&str> = MODULES
        .iter()
        .copied()
        .filter(|m| !dir.join(m).exists())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "frontend kernel modules missing from {}: {}",
            dir.display(),
            missing.join(" ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_follows_inputs() {
        let a = cache_name("6.12.117-1~deb12u1", CONFIG, BUILD_SCRIPT);
        assert!(a.starts_with("linux-frontend-6.12.117-1~deb12u1-"));
        assert_ne!(a, cache_name("6.12.118-1", CONFIG, BUILD_SCRIPT));
        assert_ne!(a, cache_name("6.12.117-1~deb12u1", "x", BUILD_SCRIPT));
    }

    #[test]
    fn config_keeps_what_the_frontend_needs() {
        for needed in [
            "CONFIG_XEN_VIRTIO=y",
            "CONFIG_XEN_VIRTIO_FORCE_GRANT=y",
            "CONFIG_VIRTIO_MMIO=m",
            "CONFIG_MODULES=y",
            "CONFIG_DEVMEM=y",
            "CONFIG_BLK_DEV_INITRD=y",
            "CONFIG_EXT2_FS=y",
            "CONFIG_VIRTIO_BLK=m",
            "CONFIG_VIRTIO_NET=m",
        ] {
            assert!(CONFIG.lines().any(|l| l == needed), "{needed}");
        }
    }
}
