//! Debian trixie's arm64 packages for the Linux dom0: its kernel, the Xen 4.20 userland
//! (`xen-utils-4.20`: xl, xenstored, xenconsoled, xen-init-dom0) and the libraries these
//! load. The registry serves trixie's binary packages to the machine's bookworm sources
//! renamed (its source packages it does not), so they come through a private apt
//! configuration naming trixie ([`apt::arm64::Suite::Release`]), unpacked and cached keyed
//! by their versions.

use crate::apt::{self, arm64::Suite};
use std::path::{Path, PathBuf};

pub const SUITE: Suite = Suite::Release("trixie");
/// The metapackage naming trixie's current arm64 kernel (`linux-image-6.12.*+deb13-arm64`):
/// the kernel's package name changes with its ABI, this name does not.
const KERNEL_METAPACKAGE: &str = "linux-image-arm64";
/// The Xen userland and every library its programs load (their `NEEDED` closure is
/// checked when the initramfs is put together). Not their `Depends`: those pull in
/// python3, udev and more that a dom0 in an initramfs does not run.
pub const USERLAND: &[&str] = &[
    "xen-utils-4.20",
    "xen-utils-common",
    "xenstore-utils",
    "libxencall1",
    "libxenevtchn1",
    "libxenforeignmemory1",
    "libxengnttab1",
    "libxenmisc4.20",
    "libxenstore4",
    "libxentoollog1",
    "libxendevicemodel1",
    "libxentoolcore1",
    "libxenhypfs1",
    "libyajl2",
    "libc6",
    "libncurses6",
    "libtinfo6",
    "libgcc-s1",
    "zlib1g",
    "libzstd1",
    "liblzma5",
    "libbz2-1.0",
    "libuuid1",
    "libgnutls30t64",
    "libfdt1",
    "libext2fs2t64",
    "libgmp10",
    "libhogweed6t64",
    "libidn2-0",
    "libnettle8t64",
    "libp11-kit0",
    "libtasn1-6",
    "libunistring5",
    "libcom-err2",
    "libffi8",
];

/// dom0's kernel and userland, unpacked.
pub struct Dom0Packages {
    /// The kernel's package, e.g. `linux-image-6.12.118+deb13-arm64`.
    pub kernel_package: String,
    /// Its `vmlinuz`: a plain arm64 `Image`, which Xen boots as it is.
    pub kernel: PathBuf,
    /// Its `lib/modules/<release>/kernel` directory (modules as `.ko.xz`).
    pub modules: PathBuf,
    /// The tree [`USERLAND`] is unpacked into.
    pub userland: PathBuf,
}

/// dom0's packages from the cache, or downloaded and unpacked now.
pub fn fetch() -> Result<Dom0Packages, String> {
    // Resolved from the package lists as they are, which keeps a cached run offline. When
    // the archive has replaced that kernel since, the download fails after refreshing the
    // lists, and the kernel they name now is taken instead.
    let mut kernel_package = current_kernel()?;
    let kernel_tree = match apt::arm64::unpacked(SUITE, "dom0-linux", &[&kernel_package]) {
        Ok(tree) => tree,
        Err(first) => {
            let newer = current_kernel()?;
            if newer == kernel_package {
                return Err(first);
            }
            kernel_package = newer;
            apt::arm64::unpacked(SUITE, "dom0-linux", &[&kernel_package])?
        }
    };
    let (kernel, modules) = kernel_files(&kernel_tree)?;
    let userland = apt::arm64::unpacked(SUITE, "dom0-xen-userland", USERLAND)?;
    Ok(Dom0Packages {
        kernel_package,
        kernel,
        modules,
        userland,
    })
}

/// The kernel package [`KERNEL_METAPACKAGE`] depends on.
fn current_kernel() -> Result<String, String> {
    match apt::arm64::depends(SUITE, KERNEL_METAPACKAGE)?.as_slice() {
        [one] => Ok(one.clone()),
        other => Err(format!(
            "{KERNEL_METAPACKAGE} (trixie) depends on {other:?}, not on one kernel"
        )),
    }
}

/// The `vmlinuz-<release>` and `lib/modules/<release>/kernel` of an unpacked kernel package.
fn kernel_files(tree: &Path) -> Result<(PathBuf, PathBuf), String> {
    let boot = tree.join("boot");
    let image = std::fs::read_dir(&boot)
        .map_err(|e| format!("{}: {e}", boot.display()))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|name| name.starts_with("vmlinuz-"))
        .ok_or_else(|| format!("no vmlinuz-* in {}", boot.display()))?;
    let release = image.trim_start_matches("vmlinuz-");
    // trixie's kernels keep their modules under /usr/lib (merged /usr).
    let modules = ["usr/lib/modules", "lib/modules"]
        .iter()
        .map(|dir| tree.join(dir).join(release).join("kernel"))
        .find(|dir| dir.is_dir())
        .ok_or_else(|| format!("no modules of {release} in {}", tree.display()))?;
    Ok((boot.join(&image), modules))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_image_and_modules_of_a_kernel_tree() {
        let tree = std::env::temp_dir().join(format!("stubvirt-kernel-{}", std::process::id()));
        let modules = tree.join("usr/lib/modules/6.12.1+deb13-arm64/kernel");
        std::fs::create_dir_all(&modules).unwrap();
        std::fs::create_dir_all(tree.join("boot")).unwrap();
        std::fs::write(tree.join("boot/config-6.12.1+deb13-arm64"), "").unwrap();
        std::fs::write(tree.join("boot/vmlinuz-6.12.1+deb13-arm64"), "").unwrap();
        let (image, found) = kernel_files(&tree).unwrap();
        assert!(image.ends_with("boot/vmlinuz-6.12.1+deb13-arm64"));
        assert_eq!(found, modules);
        std::fs::remove_dir_all(&tree).unwrap();
    }
}
