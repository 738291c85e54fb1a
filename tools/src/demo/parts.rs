//! The demo's boot pieces: Xen (4.17.5 from the registry, or 4.21+ from a source), the
//! stubvirt image and its partial device tree, the frontend kernel, initramfs and partial
//! trees, and the system device tree that loads them all (`cargo xtask demo`).

use super::frontends;
use super::layout::{self, Backend, Frontend, Route};
use super::options::Options;
use crate::arm64::sysdt::{Load, MODULE_BASE};
use crate::frontend::initramfs::HostFile;
use crate::process::{run, step};
use crate::{apt, arm64, frontend};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn size_of(path: &Path) -> Result<u64, String> {
    Ok(std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len())
}

/// Everything the boot needs, built or taken from the caches.
pub struct Parts {
    pub xen: PathBuf,
    /// e.g. `4.22.0`, as the source says (the run also prints what Xen itself reports).
    pub xen_version: String,
    pub backend: PathBuf,
    /// stubvirt's partial device tree (route with no dom0 only).
    pub backend_dtb: Option<PathBuf>,
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    /// Each frontend's partial device tree.
    pub dtbs: Vec<PathBuf>,
    pub kernel_version: String,
    pub kernel_built_seconds: Option<u64>,
    /// The FLASK policy Xen enforces (`--confine`).
    pub xsm_policy: Option<PathBuf>,
}

pub fn prepare(dir: &Path, options: &Options) -> Result<Parts, String> {
    apt::ensure_installed(
        &["qemu-system-arm", "device-tree-compiler", "gzip"],
        "booting Xen for arm64 in QEMU",
    )?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (xen, xen_version, backend_dtb) = match &options.xen_source {
        None => {
            step("[1/5] Xen 4.17.5 with IOREQ for arm64");
            (arm64::xen::hypervisor()?, "4.17.5".to_string(), None)
        }
        Some(source) => {
            step(&format!(
                "[1/5] Xen {} with IOREQ and static memory for arm64 (route with no dom0)",
                source.version
            ));
            let xen = source.hypervisor()?;
            let topology = layout::demo_topology_for(Route::ControlDomU, options.frontends);
            let text = layout::backend_partial_dts(Some(&topology));
            let dtb = compile_dts(dir, "stubvirt", &text)?;
            (xen, source.version.clone(), Some(dtb))
        }
    };
    step(&format!(
        "[2/5] stubvirt arm64 image (the backend, {})",
        match options.route() {
            Route::Dom0 => "dom0",
            Route::ControlDomU => "control domU1",
        }
    ));
    let backend = crate::arm64::image::build()?;
    step("[3/5] frontend Linux (linux-source-6.12, XEN_VIRTIO)");
    let kernel = frontend::kernel::ensure()?;
    frontend::kernel::check_modules(&kernel.modules)?;
    step("[4/5] frontend initramfs (busybox-static, e2fsprogs, fe_io, fe_flood, init.sh, virtio modules)");
    let initramfs = dir.join("initramfs.cpio.gz");
    frontend::initramfs::build(
        &initramfs,
        frontend::initramfs::INIT,
        &initramfs_files(&kernel.modules)?,
    )?;
    let route = options.route();
    let mut dtbs = Vec::new();
    for frontend in layout::demo_topology_for(route, options.frontends).frontends {
        let name = match options.frontends {
            1 => "frontend".to_string(),
            _ => format!("frontend-{}", frontend.domid),
        };
        let text = layout::frontend_partial_dts(&frontend.devices, route.backend_domid());
        dtbs.push(compile_dts(dir, &name, &text)?);
    }
    println!(
        "    initramfs {} KiB, frontend.dtb {} bytes, frontend Image {} KiB",
        size_of(&initramfs)? / 1024,
        dtbs.first().map_or(Ok(0), |d| size_of(d))?,
        size_of(&kernel.image)? / 1024
    );
    Ok(Parts {
        xen,
        xen_version,
        backend,
        backend_dtb,
        kernel: kernel.image,
        initramfs,
        dtbs,
        kernel_version: kernel.version,
        kernel_built_seconds: kernel.built_seconds,
        xsm_policy: match (&options.xen_source, options.confine) {
            (Some(source), true) => Some(crate::xen::flask_policy::policy(source)?),
            _ => None,
        },
    })
}

/// Writes `dir/NAME.dts` and compiles it to `dir/NAME.dtb`.
fn compile_dts(dir: &Path, name: &str, text: &str) -> Result<PathBuf, String> {
    let dts = dir.join(format!("{name}.dts"));
    std::fs::write(&dts, text).map_err(|e| format!("{}: {e}", dts.display()))?;
    let dtb = dir.join(format!("{name}.dtb"));
    run(Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb", "-o"])
        .arg(&dtb)
        .arg(&dts))?;
    Ok(dtb)
}

/// Everything in the frontend's initramfs besides `/init`.
pub fn initramfs_files(module_dir: &Path) -> Result<Vec<HostFile>, String> {
    let file = |path: &str, source: PathBuf, mode| HostFile {
        path: path.to_string(),
        source,
        mode,
    };
    let mut files = vec![
        file("bin/busybox", frontend::initramfs::busybox()?, 0o755),
        file("usr/bin/fe_io", frontend::programs::fe_io()?, 0o755),
        file("usr/bin/fe_flood", frontend::programs::fe_flood()?, 0o755),
        file("usr/bin/fe_tcp", frontend::programs::fe_tcp()?, 0o755),
    ];
    files.extend(frontend::programs::e2fsprogs()?);
    for module in frontend::kernel::MODULES {
        let path = format!("lib/modules/{module}");
        files.push(file(&path, module_dir.join(module), 0o644));
    }
    Ok(files)
}

/// The system device tree and module loads: QEMU's tree (with the passthrough marks on
/// the route with no dom0) plus `/chosen`, and every module where its node says.
pub fn system(
    dir: &Path,
    parts: &Parts,
    options: &Options,
) -> Result<(PathBuf, Vec<Load>), String> {
    let route = options.route();
    // Loaded in this order; the backend's files are left out with --no-backend.
    let mut files: Vec<&Path> = Vec::new();
    if options.backend {
        files.push(&parts.backend);
        files.extend(parts.backend_dtb.as_deref());
    }
    // Each frontend its own copy of the kernel and initramfs, and its own tree.
    for dtb in &parts.dtbs {
        files.extend([
            parts.kernel.as_path(),
            parts.initramfs.as_path(),
            dtb.as_path(),
        ]);
    }
    // The FLASK policy last, after the frontends.
    files.extend(parts.xsm_policy.as_deref());
    let sizes = files
        .iter()
        .map(|f| size_of(f))
        .collect::<Result<Vec<_>, _>>()?;
    let m = layout::layout(MODULE_BASE, &sizes)?;
    let policy = parts.xsm_policy.as_ref().and_then(|_| m.last().copied());
    let first = m
        .len()
        .saturating_sub(usize::from(policy.is_some()) + 3 * parts.dtbs.len());
    let frontends: Vec<Frontend> = m
        .get(first..)
        .unwrap_or_default()
        .chunks_exact(3)
        .map(|c| Frontend {
            kernel: c[0],
            ramdisk: c[1],
            dtb: c[2],
        })
        .collect();
    let backend = Backend {
        kernel: m[0],
        dtb: parts.backend_dtb.as_ref().map(|_| m[1]),
    };
    let mut dts = arm64::sysdt::qemu_dts(dir)?;
    if route == Route::ControlDomU {
        dts.push_str(&layout::host_passthrough_marks());
    }
    let backend = options
        .backend
        .then_some((&backend, options.backend_args.as_str()));
    let count = frontends.len();
    let args: Vec<String> = (0..count)
        .map(|n| {
            let mut args = frontends::frontend_args(&options.frontend_args, n, count);
            if let (1, Some(seconds)) = (n, options.flood) {
                let _ = write!(args, " fe_flood={seconds}");
            }
            if options.crash {
                args.push_str(&frontends::crash_args(n));
            }
            args
        })
        .collect();
    let listed: Vec<(&Frontend, &str)> = frontends
        .iter()
        .zip(&args)
        .map(|(fe, args)| (fe, args.as_str()))
        .collect();
    let chosen = layout::chosen_frontends(route, backend, &listed);
    dts.push_str(&match policy {
        Some(module) => arm64::sysdt::with_xsm_policy(&chosen, module.addr, module.size),
        None => chosen,
    });
    let system_dtb = arm64::sysdt::compile(dir, &dts)?;
    let loads = files
        .iter()
        .zip(&m)
        .map(|(f, m)| Load {
            file: f.to_path_buf(),
            addr: m.addr,
        })
        .collect();
    Ok((system_dtb, loads))
}
