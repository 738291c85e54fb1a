use super::*;
use crate::arm64::sysdt::MODULE_BASE;

fn fe() -> Frontend {
    Frontend {
        kernel: Module {
            addr: 0x5020_0000,
            size: 0x70_0000,
        },
        ramdisk: Module {
            addr: 0x50a0_0000,
            size: 0x1234,
        },
        dtb: Module {
            addr: 0x50c0_0000,
            size: 0x300,
        },
    }
}

fn backend(dtb: bool) -> Backend {
    Backend {
        kernel: Module {
            addr: MODULE_BASE,
            size: 0x14000,
        },
        dtb: dtb.then_some(Module {
            addr: 0x50e0_0000,
            size: 0x400,
        }),
    }
}

#[test]
fn partial_dt_names_the_backend_domid() {
    let dom0 = frontend_dts(Route::Dom0);
    assert!(dom0.contains("iommus = <&xen_iommu 0>;"));
    assert!(dom0.contains("interrupts = <0 1 1>;"));
    assert!(dom0.contains("interrupts = <0 2 1>;"));
    assert!(dom0.contains("interrupts = <0 3 1>;        /* SPI 3 = INTID 35"));
    assert!(dom0.contains("reg = <0x0 0x2000200 0x0 0x200>;"));
    assert!(dom0.contains("virtio@2000400 {           /* virtio-blk: host disk */"));
    assert!(dom0.contains("reg = <0x0 0x2000400 0x0 0x200>;"));
    assert!(dom0.contains("compatible = \"xen,grant-dma\";"));
    assert!(dom0.contains("#iommu-cells = <1>;"));
    assert_eq!(dom0.matches("dma-coherent;").count(), 3);
    assert_eq!(dom0.matches("compatible = \"virtio,mmio\";").count(), 3);
    assert!(!dom0.contains("phandle"), "dtc assigns small phandles");
    let domu = frontend_dts(Route::ControlDomU);
    assert!(domu.contains("iommus = <&xen_iommu 1>;"));
    assert!(!domu.contains("iommus = <&xen_iommu 0>;"));
}

#[test]
fn checked_in_partial_dts_match() {
    assert_eq!(
        include_str!("../../../frontend/frontend.dts"),
        frontend_dts(Route::Dom0)
    );
    assert_eq!(
        include_str!("../../../configs/nodom0-frontend.dts"),
        frontend_dts(Route::ControlDomU)
    );
    assert_eq!(
        include_str!("../../../configs/nodom0-stubvirt.dts"),
        backend_dts()
    );
}

#[test]
fn backend_partial_dt_passes_both_host_devices_through() {
    let dts = backend_dts();
    for device in &HOST_DEVICES {
        assert!(dts.contains(&format!("xen,path = \"{}\";", device.node)));
        assert!(dts.contains(&format!("interrupts = <0 {} 1>;", device.spi)));
        assert!(dts.contains(&format!("reg = <0x0 0x{:x} 0x0 0x200>;", device.base)));
    }
    // Xen maps whole pages: every xen,reg is page aligned.
    assert_eq!(
        dts.matches("xen,reg = <0x0 0xa003000 0x0 0x1000 0x0 0xa003000>;")
            .count(),
        2
    );
    assert_eq!(dts.matches("xen,force-assign-without-iommu;").count(), 2);
    let marks = host_passthrough_marks();
    assert_eq!(marks.matches("xen,passthrough;").count(), 2);
    assert!(marks.contains("&{/virtio_mmio@a003e00} {"));
}

#[test]
fn chosen_dom0_route() {
    let text = chosen(
        Route::Dom0,
        Some((&backend(false), &backend_args(Route::Dom0))),
        &fe(),
        FRONTEND_ARGS,
    );
    assert_eq!(text.matches("domU").count(), 1);
    assert!(text.contains("bootargs = \"loglevel=info frontend=1 frontend_vcpus=2"));
    assert!(text.contains("reg = <0x0 0x50000000 0x0 0x14000>;"));
    assert!(text.contains("cpus = <2>;"));
    assert!(text.contains("memory = <0 262144>;"));
    assert!(text.contains("xen,enhanced = \"no-xenstore\";"));
    assert!(text.contains("\"multiboot,ramdisk\", \"multiboot,module\""));
    assert!(text.contains("\"multiboot,device-tree\", \"multiboot,module\""));
    assert!(text.contains("reg = <0x0 0x50a00000 0x0 0x1234>;"));
    assert!(text.contains("dom0_mem=128M"));
    assert!(!text.contains("capabilities"));
}

#[test]
fn chosen_without_dom0() {
    let text = chosen(
        Route::ControlDomU,
        Some((&backend(true), &backend_args(Route::ControlDomU))),
        &fe(),
        FRONTEND_ARGS,
    );
    assert!(text.contains("domU1 {"));
    assert!(text.contains("domU2 {"));
    assert!(text.contains("capabilities = <1>;"));
    // What to serve is in stubvirt's partial device tree, not on its command line.
    assert!(text.contains("bootargs = \"loglevel=info\";"));
    assert!(backend_dts().contains("frontend-2 {"));
    // No dom0 module: every kernel module sits inside a domU node.
    assert_eq!(text.matches("multiboot,kernel").count(), 2);
    assert!(!text.contains("dom0_mem"));
    // The static bank and `memory` agree (Xen refuses a mismatch).
    assert!(text.contains("memory = <0 131072>;"));
    assert!(text.contains("xen,static-mem = <0x0 0x60000000 0x0 0x8000000>;"));
    assert!(text.contains("direct-map;"));
    assert!(text.contains("module@50e00000 {"));
    assert!(text.contains("\"multiboot,device-tree\", \"multiboot,module\""));
}

#[test]
fn checked_in_example_matches_what_config_prints() {
    let example = include_str!("../../../configs/nodom0-chosen.dts");
    let (backend, fe) = example_modules(Route::ControlDomU);
    let nodes = chosen(
        Route::ControlDomU,
        Some((&backend, &backend_args(Route::ControlDomU))),
        &fe,
        FRONTEND_ARGS,
    );
    assert!(example.ends_with(&nodes), "differs from:\n{nodes}");
}

#[test]
fn layout_is_aligned_disjoint_and_below_static_ram() {
    let m = layout(MODULE_BASE, &[0x14000, 0x7f_0001, 0x10, 0x300]).unwrap();
    assert_eq!(m[0].addr, MODULE_BASE);
    assert_eq!(m[1].addr, MODULE_BASE + 0x20_0000);
    assert_eq!(m[2].addr, MODULE_BASE + 0xa0_0000);
    assert_eq!(m[3].addr, MODULE_BASE + 0xc0_0000);
    let err = layout(MODULE_BASE, &[0x1000_0001]).err().unwrap();
    assert!(err.contains("static RAM"), "{err}");
}
