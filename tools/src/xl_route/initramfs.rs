//! The Linux dom0's initramfs: busybox, the Xen tools the run uses with exactly the
//! libraries they load, the five Xen modules of dom0's kernel, the guests that `xl`
//! creates (stubvirt's image as the driver domain, `tools/dom0/stubvirt.cfg`, and as a
//! test frontend, `tools/dom0/frontend.cfg`) and `tools/dom0/init.sh` as `/init`; and what
//! the side-by-side bench adds (`tools/dom0/bench.sh`, its frontend's configuration and
//! hotplug scripts, Linux's PV backends with a RAM disk and a bridge).

use super::packages::{Dom0Packages, USERLAND};
use crate::frontend;
use crate::frontend::initramfs::HostFile;
use crate::process::run;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const INIT: &str = include_str!("../../dom0/init.sh");
pub const BACKEND_CONFIG: &str = include_str!("../../dom0/stubvirt.cfg");
pub const FRONTEND_CONFIG: &str = include_str!("../../dom0/frontend.cfg");
pub const LINUX_FRONTEND_CONFIG: &str = include_str!("../../dom0/linux-frontend.cfg");
pub const BENCH: &str = include_str!("../../dom0/bench.sh");
pub const BENCH_FRONTEND_CONFIG: &str = include_str!("../../dom0/bench-frontend.cfg");
/// libxl's hotplug scripts for the bench's PV devices (xl's own need bash and more).
pub const VIF_SCRIPT: &str = include_str!("../../dom0/vif-bench");
pub const BLOCK_SCRIPT: &str = include_str!("../../dom0/block-bench");

/// The Linux frontend's kernel and initramfs (the demo's).
pub struct LinuxFrontend {
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
}
/// The programs init runs (paths in the userland tree and in the initramfs).
const PROGRAMS: &[&str] = &[
    "usr/lib/xen-4.20/bin/xl",
    "usr/lib/xen-4.20/bin/xenstored",
    "usr/lib/xen-4.20/bin/xenconsoled",
    "usr/lib/xen-4.20/bin/xen-init-dom0",
    // One program under several names: it acts on the name it was started by.
    "usr/bin/xenstore-ls",
    "usr/bin/xenstore-list",
    "usr/bin/xenstore-read",
    "usr/bin/xenstore-write",
];
/// Libraries loaded with `dlopen`, which no `NEEDED` entry names: glibc's
/// `pthread_cancel` needs libgcc_s (xl aborts on its error path without it).
const DLOPENED: &[&str] = &["usr/lib/aarch64-linux-gnu/libgcc_s.so.1"];
/// What the toolstack needs of the kernel, in the order init loads them (no `modprobe`,
/// no `modules.dep`): event channels, grant mapping and allocation, hypercalls, xenfs.
pub const MODULES: &[&str] = &[
    "drivers/xen/xen-evtchn",
    "drivers/xen/xen-gntdev",
    "drivers/xen/xen-gntalloc",
    "drivers/xen/xen-privcmd",
    "drivers/xen/xenfs/xenfs",
];
/// What the bench loads besides (`tools/dom0/bench.sh`, in this order): the RAM disks,
/// the bridge with what it depends on, and Linux's PV backends.
pub const BENCH_MODULES: &[&str] = &[
    "drivers/block/brd",
    "net/llc/llc",
    "net/802/stp",
    "net/bridge/bridge",
    "drivers/block/xen-blkback/xen-blkback",
    "drivers/net/xen-netback/xen-netback",
];

/// Writes `dir/dom0-initramfs.cpio.gz` for `dom0`, with `guest` (stubvirt's image, and its
/// test image for the stubvirt frontend) and `linux` (the Linux frontend) for `xl` to boot.
pub fn build(
    dir: &Path,
    dom0: &Dom0Packages,
    guest: &crate::arm64::sysdt::Images,
    linux: &LinuxFrontend,
) -> Result<PathBuf, String> {
    let file = |path: &str, source: PathBuf, mode| HostFile {
        path: path.to_string(),
        source,
        mode,
    };
    let backend = write(dir, "stubvirt.cfg", BACKEND_CONFIG.as_bytes())?;
    let frontend = write(dir, "frontend.cfg", FRONTEND_CONFIG.as_bytes())?;
    let linux_frontend = write(dir, "linux-frontend.cfg", LINUX_FRONTEND_CONFIG.as_bytes())?;
    let bench = write(dir, "bench.sh", BENCH.as_bytes())?;
    let bench_frontend = write(dir, "bench-frontend.cfg", BENCH_FRONTEND_CONFIG.as_bytes())?;
    let vif_script = write(dir, "vif-bench", VIF_SCRIPT.as_bytes())?;
    let block_script = write(dir, "block-bench", BLOCK_SCRIPT.as_bytes())?;
    // xl reads its global configuration first; defaults are what the run wants.
    let xl_conf = write(dir, "xl.conf", b"")?;
    let mut files = vec![
        file("bin/busybox", frontend::initramfs::busybox()?, 0o755),
        file("guest/stubvirt.img", guest.backend.clone(), 0o644),
        file("guest/stubvirt-test.img", guest.guests.clone(), 0o644),
        file("guest/stubvirt.cfg", backend, 0o644),
        file("guest/frontend.cfg", frontend, 0o644),
        file("guest/linux-frontend.cfg", linux_frontend, 0o644),
        file("guest/fe-Image", linux.kernel.clone(), 0o644),
        file("guest/fe-initramfs.cpio.gz", linux.initramfs.clone(), 0o644),
        file("etc/xen/xl.conf", xl_conf, 0o644),
        file("bench.sh", bench, 0o644),
        file("guest/bench-frontend.cfg", bench_frontend, 0o644),
        file("etc/xen/scripts/vif-bench", vif_script, 0o755),
        file("etc/xen/scripts/block-bench", block_script, 0o755),
    ];
    files.extend(frontend::programs::with_libraries(
        &dom0.userland,
        &[PROGRAMS, DLOPENED].concat(),
        USERLAND,
    )?);
    for module in MODULES.iter().chain(BENCH_MODULES) {
        let name = module.rsplit('/').next().unwrap_or(module);
        let packed = dom0.modules.join(format!("{module}.ko.xz"));
        let ko = unpacked_module(dir, &packed, name)?;
        files.push(file(&format!("lib/modules/{name}.ko"), ko, 0o644));
    }
    let out = dir.join("dom0-initramfs.cpio.gz");
    frontend::initramfs::build(&out, INIT, &files)?;
    Ok(out)
}

fn write(dir: &Path, name: &str, data: &[u8]) -> Result<PathBuf, String> {
    let path = dir.join(name);
    std::fs::write(&path, data).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The module `packed` (`.ko.xz`) decompressed into `dir/modules/<name>.ko`: the kernel
/// takes a compressed module only through `finit_module` with
/// `MODULE_INIT_COMPRESSED_FILE`, and whether busybox's `insmod` decompresses depends on
/// how busybox was built.
fn unpacked_module(dir: &Path, packed: &Path, name: &str) -> Result<PathBuf, String> {
    let out_dir = dir.join("modules");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let out = out_dir.join(format!("{name}.ko"));
    let file = std::fs::File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    run(Command::new("xz").arg("-dc").arg(packed).stdout(file))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_loads_every_module_and_reports() {
        for module in MODULES {
            let name = module.rsplit('/').next().unwrap();
            assert!(INIT.contains(name), "{name}");
        }
        assert!(INIT.starts_with("#!/bin/busybox sh\n"));
        // The lines the host reads (boot::findings), and what the run needs.
        for needed in [
            "say \"dom0 up",
            "say \"xenstored answering\"",
            "prefixed info ",
            "prefixed create-backend ",
            "prefixed create-$round ",
            "prefixed unpause-$round ",
            "prefixed list ",
            "XL-DOM0 xs-$round ",
            "XL-DOM0 xs-after-$round ",
            "say \"round $round frontend gone",
            "say \"done\"",
            "/guest/stubvirt.cfg",
            "/guest/frontend.cfg",
            "/guest/linux-frontend.cfg",
            "linux_frontend fe1 ",
            "linux_frontend fe2 ",
            "prefixed destroy xl destroy fe1",
            "console_of fe1 FE1",
            "console_of fe2 FE2",
            "--log=guest",
            "poweroff -f",
            "xenconsoled",
        ] {
            assert!(INIT.contains(needed), "{needed}");
        }
    }

    #[test]
    fn the_bench_loads_its_modules_and_names_its_scripts() {
        for module in BENCH_MODULES {
            let name = module.rsplit('/').next().unwrap();
            assert!(BENCH.contains(name), "{name}");
        }
        assert!(INIT.contains("dom0_bench") && INIT.contains(". /bench.sh"));
        assert!(BENCH_FRONTEND_CONFIG.contains("script=/etc/xen/scripts/vif-bench"));
        assert!(BENCH_FRONTEND_CONFIG.contains("script=/etc/xen/scripts/block-bench"));
        assert!(BENCH_FRONTEND_CONFIG.contains("bridge=xenbr0") && BENCH.contains("addbr xenbr0"));
        assert!(BENCH.contains("/guest/bench-frontend.cfg"));
        for script in [VIF_SCRIPT, BLOCK_SCRIPT] {
            assert!(script.starts_with("#!/bin/busybox sh\n"));
            assert!(script.contains("hotplug-status\" connected"));
        }
    }

    #[test]
    fn stubvirt_discovers_and_the_frontend_asks_it_for_a_disk_and_a_nic() {
        assert!(BACKEND_CONFIG.contains("discover=xenstore"));
        assert!(BACKEND_CONFIG.contains("seclabel = \"system_u:system_r:stubvirt_t\""));
        assert!(FRONTEND_CONFIG.contains("backend=@BACKEND@"));
        assert!(FRONTEND_CONFIG.contains("seclabel = \"system_u:system_r:stubvirt_frontend_t\""));
        assert!(FRONTEND_CONFIG.contains("backend=stubvirt,type=virtio,device1,transport=mmio"));
        assert!(FRONTEND_CONFIG
            .contains("backend=stubvirt,backendtype=standalone,specification=virtio"));
        assert!(INIT.contains("sed \"s/@BACKEND@/$backend/\""));
    }
}
