//! The system device tree for booting Xen in `qemu-system-aarch64`: QEMU's own tree for
//! the machine (`dumpdtb`), plus the `/chosen` nodes Xen reads its boot modules from
//! (Xen's `docs/misc/arm/device-tree/booting.txt`). No boot loader is involved: QEMU loads
//! Xen with `-kernel` and each module with `-device loader` at the address its node names.

use crate::process::run;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// QEMU machine options; the tree is dumped with exactly these, then booted with them.
pub const MACHINE: &[&str] = &[
    "-machine",
    "virt,virtualization=on,gic-version=3",
    "-cpu",
    "max,pauth-impdef=on",
    "-m",
    "2048",
    "-smp",
    "2",
    // No default NIC: it would be a PCI card whose option ROM (ipxe-qemu) a fresh machine
    // lacks, and the boots that want a network add their own virtio-net-device.
    "-nic",
    "none",
];

/// Xen's command line for the tests and the examples. `sched_credit2_migrate_resist=0`:
/// credit2 otherwise can leave a runnable vcpu on its run queue beside an idle CPU for
/// ever, the CPU it tickled refusing it for its migration resistance and its own CPU
/// leaving it to the tickled one (docs/testing.md, "The silent hang").
pub const XEN_ARGS: &str = "console=dtuart dom0_mem=128M dom0_max_vcpus=1 loglvl=all \
                            guest_loglvl=all noreboot sched_credit2_migrate_resist=0";
/// stubvirt's command line for the tests and the examples.
pub const BOOTARGS: &str = "loglevel=info";

/// Where modules are loaded: above QEMU's device tree copy (RAM base + 128 MiB).
pub const MODULE_BASE: u64 = 0x5000_0000;

/// How stubvirt is started.
#[derive(Clone, Copy, Debug)]
pub enum Role {
    /// The hardware domain: loaded 1:1, gets the host device tree, prints with console_io.
    Dom0,
    /// A dom0less domU without any dom0: vpl011 console, Xen's generated device tree.
    DomU,
    /// A dom0less domU with `capabilities = <1>` (control domain, Xen >= 4.21), no dom0.
    ControlDomU,
}

/// A boot-module load: file and guest-physical address (for QEMU's `-device loader`).
pub struct Load {
    pub file: PathBuf,
    pub addr: u64,
}

/// The QEMU command that boots `xen` with the system device tree `dtb` and the boot
/// modules placed where the tree says.
pub fn qemu_command(xen: &Path, dtb: &Path, loads: &[Load], tcg: Tcg) -> Command {
    let mut command = Command::new("qemu-system-aarch64");
    command
        .args(MACHINE)
        .args(["-accel", tcg.accel()])
        .args(["-nographic", "-no-reboot", "-kernel"])
        .arg(xen)
        .arg("-dtb")
        .arg(dtb);
    for load in loads {
        command.arg("-device").arg(format!(
            "loader,file={},addr={:#x},force-raw=on",
            load.file.display(),
            load.addr
        ));
    }
    command
}

/// `/chosen` text for `role` with the image at `addr` (`size` bytes): Xen's command line,
/// and the dom0 module or the domU node. Used by the tests and as the user examples.
pub fn chosen(role: Role, xen_args: &str, addr: u64, size: u64, bootargs: &str) -> String {
    let module = format!(
        "module@{addr:x} {{\n\
         \x20   compatible = \"multiboot,kernel\", \"multiboot,module\";\n\
         \x20   reg = <0x{:x} 0x{:x} 0x{:x} 0x{:x}>;\n\
         \x20   bootargs = \"{bootargs}\";\n\
         }};\n",
        addr >> 32,
        addr & 0xffff_ffff,
        size >> 32,
        size & 0xffff_ffff
    );
    let mut out = String::from("/ {\n chosen {\n");
    out.push_str("  #address-cells = <2>;\n  #size-cells = <2>;\n");
    let _ = writeln!(out, "  xen,xen-bootargs = \"{xen_args}\";");
    match role {
        Role::Dom0 => push_indented(&mut out, &module, "  "),
        Role::DomU | Role::ControlDomU => {
            out.push_str("  domU1 {\n");
            out.push_str("   compatible = \"xen,domain\";\n");
            out.push_str("   #address-cells = <2>;\n   #size-cells = <2>;\n");
            out.push_str("   memory = <0 65536>;\n   cpus = <1>;\n   vpl011;\n");
            // Grant table and event channels (and the /hypervisor node), no xenstore.
            out.push_str("   xen,enhanced = \"no-xenstore\";\n");
            if matches!(role, Role::ControlDomU) {
                out.push_str("   capabilities = <1>;\n");
            }
            push_indented(&mut out, &module, "   ");
            out.push_str("  };\n");
        }
    }
    out.push_str(" };\n};\n");
    out
}

fn push_indented(out: &mut String, text: &str, indent: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "{indent}{line}");
    }
}

/// Overrides a boot's TCG threading: `multi` (a host thread per vcpu) or `single`.
pub const TCG_THREAD_VARIABLE: &str = "STUBVIRT_TCG_THREAD";

/// How QEMU's TCG runs a Xen boot's vcpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tcg {
    /// One host thread for all vcpus: the boots that check behaviour. With a thread per
    /// vcpu, Xen in QEMU on a loaded 2-core host left runnable vcpus queued beside idle
    /// CPUs and blocked vcpus unwoken (issue 19, docs/testing.md).
    OneThread,
    /// A host thread per vcpu (QEMU's default): the benchmarks, where stubvirt's vcpu
    /// must run beside its frontends' as on a real machine (one thread serialises every
    /// trapped access behind the vcpu that made it: 4 KiB QD 32 fell 3-4x).
    ThreadPerVcpu,
}

impl Tcg {
    /// `-accel` for this choice, unless [`TCG_THREAD_VARIABLE`] overrides it.
    pub fn accel(self) -> &'static str {
        match (std::env::var(TCG_THREAD_VARIABLE).as_deref(), self) {
            (Ok("multi"), _) => "tcg,thread=multi",
            (Ok("single"), _) => "tcg,thread=single",
            (_, Tcg::OneThread) => "tcg,thread=single",
            (_, Tcg::ThreadPerVcpu) => "tcg,thread=multi",
        }
    }
}

/// QEMU's own device tree for [`MACHINE`], as source text (dumped into `dir`).
pub fn qemu_dts(dir: &Path) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let qemu_dtb = dir.join("qemu-virt.dtb");
    // Captured: QEMU reports the dump on stderr even when it succeeds.
    let dump = Command::new("qemu-system-aarch64")
        .args(MACHINE)
        .args(["-nographic", "-machine"])
        .arg(format!("dumpdtb={}", qemu_dtb.display()))
        .output()
        .map_err(|e| format!("cannot start qemu-system-aarch64: {e}"))?;
    if !dump.status.success() {
        return Err(format!(
            "qemu-system-aarch64 dumpdtb failed: {}",
            String::from_utf8_lossy(&dump.stderr)
        ));
    }
    let qemu_dts = dir.join("qemu-virt.dts");
    run(Command::new("dtc")
        .args(["-q", "-I", "dtb", "-O", "dts", "-o"])
        .arg(&qemu_dts)
        .arg(&qemu_dtb))?;
    let mut dts = std::fs::read_to_string(&qemu_dts).map_err(|e| e.to_string())?;
    // Xen's console is the PL011; the GPIO controller is not needed and Xen warns about it.
    dts.push_str("\n&{/pl061@9030000} {\n status = \"disabled\";\n};\n");
    Ok(dts)
}

/// Compiles `dts` (QEMU's tree plus our nodes) into `dir/system.dtb`.
pub fn compile(dir: &Path, dts: &str) -> Result<PathBuf, String> {
    let system_dts = dir.join("system.dts");
    std::fs::write(&system_dts, dts).map_err(|e| e.to_string())?;
    let system_dtb = dir.join("system.dtb");
    run(Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb", "-o"])
        .arg(&system_dtb)
        .arg(&system_dts))?;
    Ok(system_dtb)
}

/// The images of a boot with several stubvirt domains: the backend runs the product, the
/// others (a stubvirt frontend, the bystander) test modes, from the test image.
pub struct Images {
    pub backend: PathBuf,
    pub guests: PathBuf,
}

impl Images {
    /// The same image in every role (one that has the test modes).
    pub fn one(image: &Path) -> Self {
        Self {
            backend: image.to_path_buf(),
            guests: image.to_path_buf(),
        }
    }

    /// The `reg` size of every stubvirt module: the larger file.
    fn module_size(&self) -> Result<u64, String> {
        Ok(file_size(&self.backend)?.max(file_size(&self.guests)?))
    }
}

fn file_size(image: &Path) -> Result<u64, String> {
    Ok(std::fs::metadata(image)
        .map_err(|e| format!("{}: {e}", image.display()))?
        .len())
}

/// Writes `dir/system.dtb` for booting `image` in `role`; returns the dtb and the loads.
pub fn build(
    dir: &Path,
    role: Role,
    image: &Path,
    xen_args: &str,
    bootargs: &str,
) -> Result<(PathBuf, Vec<Load>), String> {
    let mut dts = qemu_dts(dir)?;
    let size = file_size(image)?;
    let addr = MODULE_BASE;
    dts.push_str(&chosen(role, xen_args, addr, size, bootargs));
    let system_dtb = compile(dir, &dts)?;
    let loads = vec![Load {
        file: image.to_path_buf(),
        addr,
    }];
    Ok((system_dtb, loads))
}

/// Where the domU's copy of the image goes in the dom0 + domU boot.
pub const DOMU_MODULE_BASE: u64 = MODULE_BASE + 0x100_0000;

/// `/chosen` for stubvirt as dom0 (`dom0_args`) plus a dom0less domU1 (`domu_args`,
/// `domu_vcpus` vcpus) running the same image: the serve-mode end-to-end boot.
pub fn chosen_dom0_and_domu(
    xen_args: &str,
    size: u64,
    dom0_args: &str,
    domu_args: &str,
    domu_vcpus: u32,
) -> String {
    let dom0 = chosen(Role::Dom0, xen_args, MODULE_BASE, size, dom0_args);
    with_frontend_domu(&dom0, xen_args, size, "domU1", domu_args, domu_vcpus)
}

/// `/chosen` with no dom0: stubvirt as control domU1 (`backend_args`) and a second
/// stubvirt as domU2 (`frontend_args`, `frontend_vcpus` vcpus): the serve-mode boot of the
/// route with no dom0.
pub fn chosen_control_and_frontend(
    xen_args: &str,
    size: u64,
    backend_args: &str,
    frontend_args: &str,
    frontend_vcpus: u32,
) -> String {
    let backend = chosen(Role::ControlDomU, xen_args, MODULE_BASE, size, backend_args);
    with_frontend_domu(
        &backend,
        xen_args,
        size,
        "domU2",
        frontend_args,
        frontend_vcpus,
    )
}

/// `backend` (a whole `/chosen` text) with a plain domU node `name` added inside it: the
/// same image at [`DOMU_MODULE_BASE`] with command line `args` and `vcpus` vcpus.
fn with_frontend_domu(
    backend: &str,
    xen_args: &str,
    size: u64,
    name: &str,
    args: &str,
    vcpus: u32,
) -> String {
    with_domu_at(backend, xen_args, DOMU_MODULE_BASE, size, name, args, vcpus)
}

/// [`with_frontend_domu`] with the domU's image at `addr`.
fn with_domu_at(
    backend: &str,
    xen_args: &str,
    addr: u64,
    size: u64,
    name: &str,
    args: &str,
    vcpus: u32,
) -> String {
    let domu = chosen(Role::DomU, xen_args, addr, size, args);
    // The domU node alone, without its /chosen header and closing lines.
    let start = domu.find("  domU1 {").unwrap_or(domu.len());
    let end = domu.rfind(" };\n};").unwrap_or(domu.len()).max(start);
    let node = domu
        .get(start..end)
        .unwrap_or_default()
        .replace("domU1 {", &format!("{name} {{"))
        .replace("cpus = <1>;", &format!("cpus = <{vcpus}>;"));
    let close = backend.rfind(" };\n};").unwrap_or(backend.len());
    let mut out = backend.get(..close).unwrap_or_default().to_string();
    out.push_str(&node);
    out.push_str(" };\n};\n");
    out
}

/// Writes `dir/system.dtb` for `chosen` (one of the two above, with the bystander) and
/// loads the backend's image and the guests' at the three module addresses.
fn build_two_domains(
    dir: &Path,
    images: &Images,
    chosen: &str,
) -> Result<(PathBuf, Vec<Load>), String> {
    let mut dts = qemu_dts(dir)?;
    dts.push_str(chosen);
    let system_dtb = compile(dir, &dts)?;
    let loads = [
        (&images.backend, MODULE_BASE),
        (&images.guests, DOMU_MODULE_BASE),
        (&images.guests, BYSTANDER_BASE),
    ]
    .map(|(file, addr)| Load {
        file: file.clone(),
        addr,
    })
    .into();
    Ok((system_dtb, loads))
}

/// Where the backend's partial device tree goes in the several-frontend boot.
const BACKEND_DTB_BASE: u64 = MODULE_BASE + 0x80_0000;

/// No dom0: stubvirt as control domU1 (`backend_args`) with its partial device tree
/// `backend_dtb`, and one stubvirt frontend domU per `(args, vcpus)`, domU2 onwards, each
/// with its own copy of the image. Writes `dir/system.dtb`; returns it and the loads.
pub fn build_control_and_frontends(
    dir: &Path,
    images: &Images,
    backend_args: &str,
    backend_dtb: &Path,
    frontends: &[(String, u32)],
) -> Result<(PathBuf, Vec<Load>), String> {
    let size = images.module_size()?;
    let xen_args = crate::demo::layout::xen_args(crate::demo::layout::Route::ControlDomU);
    let mut text = chosen(Role::ControlDomU, xen_args, MODULE_BASE, size, backend_args);
    let dtb_node = format!(
        "   module@{BACKEND_DTB_BASE:x} {{\n    compatible = \"multiboot,device-tree\", \
         \"multiboot,module\";\n    reg = <0x0 0x{BACKEND_DTB_BASE:x} 0x0 0x{:x}>;\n   }};\n",
        file_size(backend_dtb)?
    );
    let end_of_domu1 = text.rfind("  };\n };\n};").unwrap_or(text.len());
    text.insert_str(end_of_domu1, &dtb_node);
    let mut loads = vec![
        Load {
            file: images.backend.clone(),
            addr: MODULE_BASE,
        },
        Load {
            file: backend_dtb.to_path_buf(),
            addr: BACKEND_DTB_BASE,
        },
    ];
    for (n, (args, vcpus)) in frontends.iter().enumerate() {
        let addr = DOMU_MODULE_BASE + 0x100_0000 * n as u64;
        let name = format!("domU{}", n + 2);
        text = with_domu_at(&text, xen_args, addr, size, &name, args, *vcpus);
        loads.push(Load {
            file: images.guests.clone(),
            addr,
        });
    }
    let mut dts = qemu_dts(dir)?;
    dts.push_str(&text);
    Ok((compile(dir, &dts)?, loads))
}

/// The serve boots' third domain, which stubvirt does not serve: "another domain" for the
/// privilege self-test. It only waits (`bystander=1`).
pub const BYSTANDER_ARGS: &str = "loglevel=info bystander=1";
const BYSTANDER_BASE: u64 = DOMU_MODULE_BASE + 0x100_0000;

/// `text` (a whole `/chosen` text) with the bystander domU `name`.
fn with_bystander(text: &str, xen_args: &str, size: u64, name: &str) -> String {
    with_domu_at(
        text,
        xen_args,
        BYSTANDER_BASE,
        size,
        name,
        BYSTANDER_ARGS,
        1,
    )
}

/// Writes `dir/system.dtb` for stubvirt as dom0 and as domU1 (see [`chosen_dom0_and_domu`]),
/// plus the bystander as domU2.
pub fn build_dom0_and_domu(
    dir: &Path,
    images: &Images,
    dom0_args: &str,
    domu_args: &str,
    domu_vcpus: u32,
) -> Result<(PathBuf, Vec<Load>), String> {
    let size = images.module_size()?;
    let text = chosen_dom0_and_domu(XEN_ARGS, size, dom0_args, domu_args, domu_vcpus);
    let text = with_bystander(&text, XEN_ARGS, size, "domU2");
    build_two_domains(dir, images, &text)
}

/// Writes `dir/system.dtb` for the serve-mode boot of the route with no dom0 (see
/// [`chosen_control_and_frontend`]) plus the bystander as domU3; with `xsm_policy`, Xen
/// enforces that FLASK policy.
pub fn build_control_and_frontend(
    dir: &Path,
    images: &Images,
    xen_args: &str,
    backend_args: &str,
    (frontend_args, frontend_vcpus): (&str, u32),
    xsm_policy: Option<&Path>,
) -> Result<(PathBuf, Vec<Load>), String> {
    let size = images.module_size()?;
    let mut text =
        chosen_control_and_frontend(xen_args, size, backend_args, frontend_args, frontend_vcpus);
    text = with_bystander(&text, xen_args, size, "domU3");
    let Some(policy) = xsm_policy else {
        return build_two_domains(dir, images, &text);
    };
    text = with_xsm_policy(&text, XSM_POLICY_BASE, file_size(policy)?);
    let (dtb, mut loads) = build_two_domains(dir, images, &text)?;
    loads.push(Load {
        file: policy.to_path_buf(),
        addr: XSM_POLICY_BASE,
    });
    Ok((dtb, loads))
}

/// Where Xen's XSM policy module goes in the serve tests.
const XSM_POLICY_BASE: u64 = MODULE_BASE + 0x90_0000;

/// `chosen` (a whole `/chosen` text) with FLASK enforcing: Xen's command line asks for it
/// and an `xen,xsm-policy` module of `size` bytes at `addr` follows that line.
pub fn with_xsm_policy(chosen: &str, addr: u64, size: u64) -> String {
    let node = format!(
        "  module@{addr:x} {{\n   compatible = \"xen,xsm-policy\", \"multiboot,module\";\n   \
         reg = <0x0 0x{addr:x} 0x0 0x{size:x}>;\n  }};\n"
    );
    let mut text = String::with_capacity(chosen.len() + node.len() + 32);
    let mut placed = false;
    for line in chosen.split_inclusive('\n') {
        match line.strip_suffix("\";\n") {
            Some(args) if !placed && line.contains("xen,xen-bootargs = \"") => {
                let _ = writeln!(text, "{args} {}\";", crate::xen::flask_policy::XEN_ARGS);
                text.push_str(&node);
                placed = true;
            }
            _ => text.push_str(line),
        }
    }
    text
}

#[cfg(test)]
mod tests;
