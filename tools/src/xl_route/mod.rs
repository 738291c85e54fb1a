//! `cargo xtask xl-smoke`: the xl route end to end. Xen 4.20 in QEMU (arm64, TCG)
//! enforcing stubvirt's FLASK policy, with Debian trixie's Linux as dom0 running trixie's
//! own `xl` toolstack (`xen-utils-4.20`). `xl` creates stubvirt as a driver domain
//! (`discover=xenstore`, labelled `stubvirt_t`), then a frontend (`stubvirt_frontend_t`,
//! stubvirt's image in frontend test mode) with a virtio disk and a virtio NIC whose
//! backend is stubvirt; stubvirt finds them in xenstore, answers libxl, serves them, and
//! releases the frontend when it is gone; then the same again with the frontend created
//! anew. The Linux dom0 is also what a comparison with Linux's PV backends needs.
//!
//! Everything comes from the caches or is built on the way: the hypervisor from a Xen 4.20
//! source (`../shared/xen/xen-4.20.4-hypervisor.tar.xz` unless `--xen-source` says
//! otherwise: trixie's toolstack only speaks to its own release), trixie's packages
//! (`packages`), dom0's initramfs (`initramfs`), stubvirt's image as the guest's kernel.

mod boot;
mod initramfs;
mod linux_checks;
mod packages;
pub mod side_by_side;

use crate::apt;
use crate::process::{step, workspace_root};
use crate::xen;
use crate::xen::source::{XenSource, XL_DOM0};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The whole QEMU run, boot to power-off: a few minutes here (dom0's init after 10-20 s,
/// two Linux frontends' checks), several times that when the host is busy.
const DEADLINE: Duration = Duration::from_secs(900);

/// What a Linux frontend's init runs instead of its checks in the side-by-side bench.
const FRONTEND_BENCH: &str = include_str!("../../frontend/bench.sh");

/// The demo's frontend Linux and its initramfs (`tools/frontend/init.sh`, and
/// `tools/frontend/bench.sh` for the side-by-side bench).
fn linux_frontend(dir: &std::path::Path) -> Result<initramfs::LinuxFrontend, String> {
    let kernel = crate::frontend::kernel::ensure()?;
    crate::frontend::kernel::check_modules(&kernel.modules)?;
    let out = dir.join("fe-initramfs.cpio.gz");
    let bench = dir.join("fe-bench.sh");
    std::fs::write(&bench, FRONTEND_BENCH).map_err(|e| format!("{}: {e}", bench.display()))?;
    let mut files = crate::demo::parts::initramfs_files(&kernel.modules)?;
    files.push(crate::frontend::initramfs::HostFile {
        path: "bench.sh".into(),
        source: bench,
        mode: 0o644,
    });
    crate::frontend::initramfs::build(&out, crate::frontend::initramfs::INIT, &files)?;
    Ok(initramfs::LinuxFrontend {
        kernel: kernel.image,
        initramfs: out,
    })
}

/// What a boot of Xen with the Linux dom0 needs, built or taken from the caches.
struct Prepared {
    source: XenSource,
    /// The hypervisor.
    xen: PathBuf,
    dom0: packages::Dom0Packages,
    /// The system device tree and the loads of its modules.
    tree: (PathBuf, Vec<crate::arm64::sysdt::Load>),
}

/// The Xen source `args` name (`--xen-source PATH`), or the shared 4.20 archive.
fn xen_source_path(args: &[String], command: &str) -> Result<PathBuf, String> {
    match args {
        [] => xen::source::shared_archive(&XL_DOM0).ok_or_else(|| {
            format!(
                "no Xen 4.20 source: pass --xen-source (e.g. ../shared/xen/{})",
                XL_DOM0.archive
            )
        }),
        [flag, path] if flag == "--xen-source" => Ok(PathBuf::from(path)),
        other => Err(format!("{command}: unexpected arguments {other:?}")),
    }
}

/// How a run boots dom0: its command line, and FLASK rules beyond the product's.
struct Dom0Run<'a> {
    args: &'a str,
    extra_policy: &'a str,
}

/// Builds (or takes from the caches) everything a boot needs for `run`; the steps are
/// numbered out of `steps` (the caller's last is the boot).
fn prepare(path: &std::path::Path, run: &Dom0Run, steps: usize) -> Result<Prepared, String> {
    apt::ensure_installed(
        &[
            "qemu-system-arm",
            "device-tree-compiler",
            "gzip",
            "xz-utils",
        ],
        "booting Xen with a Linux dom0 in QEMU",
    )?;
    let dir = workspace_root().join("target/xl-dom0");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;

    let source = XenSource::open_for(path, &XL_DOM0)?;
    step(&format!(
        "[1/{steps}] Xen {} for arm64 ({})",
        source.version,
        path.display()
    ));
    let xen = source.hypervisor()?;
    step(&format!(
        "[2/{steps}] Debian trixie's dom0 kernel and Xen 4.20 userland (arm64)"
    ));
    let dom0 = packages::fetch()?;
    step(&format!(
        "[3/{steps}] dom0 initramfs (busybox, xl and its libraries, Xen modules, stubvirt, \
         the Linux frontend)"
    ));
    // The product serves; the stubvirt frontend (`frontend_test=1`) is the test image's.
    let guest = crate::arm64::sysdt::Images {
        backend: crate::arm64::image::build()?,
        guests: crate::arm64::image::build_test()?,
    };
    let linux = linux_frontend(&dir)?;
    let ramdisk = initramfs::build(&dir, &dom0, &guest, &linux)?;
    let policy = crate::xen::flask_policy::policy_with(&source, run.extra_policy)?;
    let tree = boot::system_tree(&dir, &dom0.kernel, &ramdisk, &policy, run.args)?;
    Ok(Prepared {
        source,
        xen,
        dom0,
        tree,
    })
}

/// `cargo xtask xl-smoke [--xen-source PATH]`.
pub fn command(args: &[String]) -> Result<(), String> {
    let started = Instant::now();
    let path = xen_source_path(args, "xl-smoke")?;
    let machine = prepare(
        &path,
        &Dom0Run {
            args: boot::DOM0_ARGS,
            extra_policy: "",
        },
        4,
    )?;
    step(&format!(
        "[4/4] booting Xen {} with {} as dom0 (bounded: {} s)",
        machine.source.version,
        machine.dom0.kernel_package,
        DEADLINE.as_secs()
    ));
    let booted = Instant::now();
    let transcript = boot::run(
        &machine.xen,
        &machine.tree,
        DEADLINE,
        "xl-dom0",
        crate::arm64::sysdt::Tcg::OneThread,
    )?;
    let qemu_seconds = booted.elapsed().as_secs_f64();
    let findings = boot::findings(&transcript);

    println!(
        "\n==== xl smoke: Xen {}, dom0 {}",
        machine.source.version, machine.dom0.kernel_package
    );
    println!(
        "---- stubvirt dom{}; frontends {}",
        findings.backend.as_deref().unwrap_or("?"),
        findings.frontends.join(", then ")
    );
    for line in &findings.stubvirt {
        println!("    {line}");
    }
    println!("---- stubvirt's backend keys while each frontend was created (paused)");
    for key in &findings.keys {
        println!("    {key}");
    }
    println!("---- and once it was gone");
    for key in &findings.keys_after {
        println!("    {key}");
    }
    println!("---- Linux frontends");
    for line in &findings.figures {
        println!("    {line}");
    }
    println!("---- FLASK denials: {}", findings.denials.len());
    for line in &findings.denials {
        println!("    {line}");
    }
    println!("---- checks");
    for (check, ok) in &findings.checks {
        println!("    {} {check}", if *ok { "ok  " } else { "FAIL" });
    }
    let at = |t: Option<f64>| t.map_or("-".to_string(), |t| format!("{t:.1} s"));
    println!(
        "    xl reports Xen {}; dom0 init after {}, report done after {}; QEMU {qemu_seconds:.1} s, \
         whole command {:.1} s; log {}",
        findings.xen_version.as_deref().unwrap_or("?"),
        at(findings.dom0_up),
        at(findings.done),
        started.elapsed().as_secs_f64(),
        transcript.log.display()
    );
    if findings.checks.iter().all(|(_, ok)| *ok) {
        Ok(())
    } else {
        Err(format!(
            "xl route failed; last lines of {}:\n{}",
            transcript.log.display(),
            transcript.tail(30)
        ))
    }
}
