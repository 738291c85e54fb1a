//! A user's system description and the dom0less boot pieces `cargo xtask config` makes of it.
//!
//! `cargo xtask config FILE`: a user's system description (see `topology`) as the
//! pieces of a dom0less boot: Xen's `/chosen` nodes, stubvirt's partial device tree
//! (the host devices passed through to it and the `stubvirt,backend` topology node),
//! each frontend's partial device tree, and an ImageBuilder configuration
//! (`scripts/uboot-script-gen`), which computes load addresses itself.

pub mod topology;

use crate::demo;
use crate::demo::layout::{Module, BACKEND_RAM, HOST_DEVICES};
use std::fmt::Write;
use topology::Description;

/// Xen's arguments with no dom0 (as the demo boots; the scheduler option as for
/// `arm64::sysdt::XEN_ARGS`).
pub const XEN_ARGS_NO_DOM0: &str = "console=dtuart conswitch=ax loglvl=all guest_loglvl=all \
                                    noreboot sched_credit2_migrate_resist=0";

pub fn command(path: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let description = topology::parse(&text).map_err(|e| format!("{path}: {e}"))?;
    print!("{}", render(&description)?);
    Ok(())
}

/// Everything `command` prints.
pub fn render(d: &Description) -> Result<String, String> {
    check_boot_order(d)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "==== stubvirt (domain {}) serving {} frontend(s)\n",
        d.backend_domid,
        d.frontends.len()
    );
    out.push_str("---- host device tree additions (the devices Xen passes through)\n");
    out.push_str(&demo::layout::host_passthrough_marks());
    out.push_str("\n---- /chosen (module addresses and sizes are examples)\n\n");
    out.push_str(&chosen(d));
    out.push_str("\n---- stubvirt's partial device tree (stubvirt.dts)\n\n");
    out.push_str(&demo::layout::backend_partial_dts(Some(&d.topology)));
    for frontend in &d.topology.frontends {
        let _ = writeln!(
            out,
            "\n---- frontend {} partial device tree (frontend-{}.dts)\n",
            frontend.domid, frontend.domid
        );
        out.push_str(&demo::layout::frontend_partial_dts(
            &frontend.devices,
            u32::from(d.backend_domid),
        ));
    }
    out.push_str("\n---- ImageBuilder configuration (scripts/uboot-script-gen -c FILE)\n\n");
    out.push_str(&imagebuilder(d));
    if d.confine {
        out.push_str(
            "\n---- FLASK policy module (stubvirt.te): add it to Xen's tools/flask/policy/modules \
             with `stubvirt = on` in modules.conf and build the policy there (make -f \
             Makefile.common FLASK_BUILD_DIR=... XEN_FULLVERSION=...), or let \
             tools/src/xen/flask_policy.rs do it; the binary is the xen,xsm-policy module\n\n",
        );
        out.push_str(crate::xen::flask_policy::MODULE);
    }
    Ok(out)
}

/// Dom0less numbers domains in the order of `/chosen`, from 1 (0 is dom0): stubvirt
/// first, then the frontends, so their domids must follow on.
fn check_boot_order(d: &Description) -> Result<(), String> {
    if d.backend_domid > 1 {
        return Err(format!(
            "backend_domid {}: stubvirt boots first, as dom0 (0) or as domain 1",
            d.backend_domid
        ));
    }
    for (n, frontend) in d.frontends.iter().enumerate() {
        let expected = d.backend_domid + 1 + n as u16;
        if frontend.domid != expected {
            return Err(format!(
                "frontend {}: dom0less gives the frontend booted in position {} domid \
                 {expected}; list frontends in domid order from {}",
                frontend.domid,
                n + 1,
                d.backend_domid + 1
            ));
        }
    }
    Ok(())
}

fn example(n: u64, size: u64) -> Module {
    Module {
        addr: crate::arm64::sysdt::MODULE_BASE + n * 0x100_0000,
        size,
    }
}

/// stubvirt's command line.
fn backend_args(d: &Description) -> &'static str {
    if d.confine {
        "loglevel=info confine=flask"
    } else {
        "loglevel=info"
    }
}

/// Where the example places the FLASK policy module.
const POLICY_EXAMPLE: Module = Module {
    addr: crate::arm64::sysdt::MODULE_BASE + 0x80_0000,
    size: 0x3200,
};

fn chosen(d: &Description) -> String {
    let text = chosen_without_policy(d);
    if d.confine {
        crate::arm64::sysdt::with_xsm_policy(&text, POLICY_EXAMPLE.addr, POLICY_EXAMPLE.size)
    } else {
        text
    }
}

fn chosen_without_policy(d: &Description) -> String {
    let no_dom0 = d.backend_domid != 0;
    let mut out = String::from("/ {\n chosen {\n  #address-cells = <2>;\n  #size-cells = <2>;\n");
    let xen_args = if no_dom0 {
        XEN_ARGS_NO_DOM0
    } else {
        crate::arm64::sysdt::XEN_ARGS
    };
    let _ = writeln!(out, "  xen,xen-bootargs = \"{xen_args}\";");
    let kernel = example(0, 0x4_0000);
    if no_dom0 {
        let ram = BACKEND_RAM;
        let _ = write!(
            out,
            "  domU1 {{\n   compatible = \"xen,domain\";\n   #address-cells = <2>;\n   \
             #size-cells = <2>;\n   memory = <0 {}>;\n   \
             xen,static-mem = <0x{:x} 0x{:x} 0x{:x} 0x{:x}>;\n   direct-map;\n   cpus = <1>;\n   \
             capabilities = <1>;\n   vpl011;\n   xen,enhanced = \"no-xenstore\";\n",
            ram.size / 1024,
            ram.addr >> 32,
            ram.addr & 0xffff_ffff,
            ram.size >> 32,
            ram.size & 0xffff_ffff
        );
        out.push_str(&demo::layout::module_node(
            "   ",
            "kernel",
            kernel,
            Some(backend_args(d)),
        ));
        out.push_str(&demo::layout::module_node(
            "   ",
            "device-tree",
            example(1, 0x1000),
            None,
        ));
        out.push_str("  };\n");
    } else {
        out.push_str(&demo::layout::module_node(
            "  ",
            "kernel",
            kernel,
            Some("loglevel=info"),
        ));
    }
    for (n, frontend) in d.frontends.iter().enumerate() {
        let first = 2 + 3 * n as u64;
        let args = frontend
            .cmdline
            .as_deref()
            .unwrap_or(demo::layout::FRONTEND_ARGS);
        let _ = write!(
            out,
            "  domU{} {{\n   compatible = \"xen,domain\";\n   #address-cells = <2>;\n   \
             #size-cells = <2>;\n   memory = <0 {}>;\n   cpus = <{}>;\n   vpl011;\n   \
             xen,enhanced = \"no-xenstore\";\n",
            frontend.domid,
            frontend.memory_mib * 1024,
            frontend.vcpus
        );
        out.push_str(&demo::layout::module_node(
            "   ",
            "kernel",
            example(first, 0x80_0000),
            Some(args),
        ));
        out.push_str(&demo::layout::module_node(
            "   ",
            "ramdisk",
            example(first + 1, 0x40_0000),
            None,
        ));
        out.push_str(&demo::layout::module_node(
            "   ",
            "device-tree",
            example(first + 2, 0x1000),
            None,
        ));
        out.push_str("  };\n");
    }
    out.push_str(" };\n};\n");
    out
}

/// ImageBuilder's variables (Xilinx/imagebuilder, `scripts/uboot-script-gen`): MiB for
/// `DOMU_MEM`, "base size" pairs for `DOMU_STATIC_MEM`, `DOMU_ENHANCED=0` for no
/// xenstore. It has no variable for `capabilities` (Xen 4.21+), hence the `fdt set` line.
fn imagebuilder(d: &Description) -> String {
    let no_dom0 = d.backend_domid != 0;
    let mut out = String::from(
        "MEMORY_START=\"0x40000000\"\nMEMORY_END=\"0x100000000\"\nDEVICE_TREE=\"host.dtb\"\n\
         XEN=\"xen\"\n",
    );
    let paths: Vec<&str> = HOST_DEVICES.iter().map(|h| h.node).collect();
    if no_dom0 {
        let ram = BACKEND_RAM;
        if d.confine {
            let _ = writeln!(
                out,
                "XEN_CMD=\"{XEN_ARGS_NO_DOM0} {}\"\n# ImageBuilder 2025+: the xen,xsm-policy \
                 module\nXEN_POLICY=\"stubvirt-xenpolicy\"",
                crate::xen::flask_policy::XEN_ARGS
            );
        } else {
            let _ = writeln!(out, "XEN_CMD=\"{XEN_ARGS_NO_DOM0}\"");
        }
        let _ = writeln!(out, "NUM_DOMUS={}", d.frontends.len() + 1);
        let _ = writeln!(
            out,
            "DOMU_KERNEL[0]=\"stubvirt.bin\"\nDOMU_CMD[0]=\"{}\"\n\
             DOMU_PASSTHROUGH_DTB[0]=\"stubvirt.dtb\"\nDOMU_PASSTHROUGH_PATHS[0]=\"{}\"\n\
             DOMU_STATIC_MEM[0]=\"{:#x} {:#x}\"\nDOMU_DIRECT_MAP[0]=1\nDOMU_VCPUS[0]=1\n\
             DOMU_ENHANCED[0]=0",
            backend_args(d),
            paths.join(" "),
            ram.addr,
            ram.size
        );
    } else {
        let _ = writeln!(out, "XEN_CMD=\"{}\"", crate::arm64::sysdt::XEN_ARGS);
        out.push_str("DOM0_KERNEL=\"stubvirt.bin\"\nDOM0_CMD=\"loglevel=info\"\n");
        let _ = writeln!(out, "NUM_DOMUS={}", d.frontends.len());
    }
    for (n, frontend) in d.frontends.iter().enumerate() {
        let i = n + usize::from(no_dom0);
        let args = frontend
            .cmdline
            .as_deref()
            .unwrap_or(demo::layout::FRONTEND_ARGS);
        let _ = writeln!(
            out,
            "DOMU_KERNEL[{i}]=\"Image\"\nDOMU_RAMDISK[{i}]=\"initramfs.cpio\"\n\
             DOMU_PASSTHROUGH_DTB[{i}]=\"frontend-{}.dtb\"\nDOMU_MEM[{i}]={}\n\
             DOMU_VCPUS[{i}]={}\nDOMU_CMD[{i}]=\"{args}\"\nDOMU_ENHANCED[{i}]=0",
            frontend.domid, frontend.memory_mib, frontend.vcpus
        );
    }
    out.push_str("UBOOT_SOURCE=\"boot.source\"\nUBOOT_SCRIPT=\"boot.scr\"\n");
    if no_dom0 {
        out.push_str(
            "# ImageBuilder has no variable for `capabilities`: before `booti` in boot.source,\n\
             #   fdt set /chosen/domU0 capabilities <0x1>\n\
             # then rebuild boot.scr with mkimage (uboot-script-gen prints the command).\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_description() -> Description {
        topology::parse(include_str!("../../configs/two-frontends.toml")).unwrap()
    }

    #[test]
    fn the_example_renders_every_piece() {
        let text = render(&example_description()).unwrap();
        assert_eq!(text.matches("---- frontend ").count(), 2);
        assert!(text.contains("iommus = <&xen_iommu 1>;"));
        assert!(text.contains("  domU2 {") && text.contains("  domU3 {"));
        assert!(text.contains("capabilities = <1>;"));
        assert!(text.contains("compatible = \"stubvirt,backend\";"));
        assert!(text.contains("host-disk-offset = <0x0 0x2000000>;"));
        assert!(text.contains("NUM_DOMUS=3"));
        assert!(text.contains("DOMU_PASSTHROUGH_DTB[2]=\"frontend-3.dtb\""));
        assert!(text.contains("DOMU_STATIC_MEM[0]=\"0x60000000 0x8000000\""));
        assert!(text.contains("fdt set /chosen/domU0 capabilities <0x1>"));
        // Confined: Xen enforces the policy module, stubvirt relabels.
        assert!(text.contains("xsm=flask flask=enforcing\";"));
        assert!(text.contains("compatible = \"xen,xsm-policy\""));
        assert!(text.contains("bootargs = \"loglevel=info confine=flask\";"));
        assert!(text.contains("XEN_POLICY=\"stubvirt-xenpolicy\""));
        assert!(text.contains("DOMU_CMD[0]=\"loglevel=info confine=flask\""));
        assert!(text.contains("declare_domain(stubvirt_frontend_t)"));
        let unconfined = text_without_confine();
        assert!(!unconfined.contains("xsm") && !unconfined.contains("confine=flask"));
    }

    fn text_without_confine() -> String {
        let toml = include_str!("../../configs/two-frontends.toml").replace("confine = true", "");
        render(&topology::parse(&toml).unwrap()).unwrap()
    }

    #[test]
    fn the_example_prints_the_trees_the_two_frontend_demo_boots() {
        use crate::demo::layout::{demo_topology_for, frontend_partial_dts, Route};
        let text = render(&example_description()).unwrap();
        let booted = demo_topology_for(Route::ControlDomU, 2);
        assert!(text.contains(&demo::layout::backend_partial_dts(Some(&booted))));
        for frontend in &booted.frontends {
            assert!(text.contains(&frontend_partial_dts(&frontend.devices, 1)));
        }
    }

    #[test]
    fn frontends_must_follow_dom0less_numbering() {
        let mut d = example_description();
        d.frontends.swap(0, 1);
        let err = render(&d).unwrap_err();
        assert!(err.starts_with("frontend 3: dom0less gives"), "{err}");
        let mut d = example_description();
        d.backend_domid = 0;
        assert!(render(&d).unwrap_err().contains("domid 1"));
    }
}
