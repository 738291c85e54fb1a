//! The demo's boot layout, for both privilege routes: Xen's `/chosen` nodes (booting.txt
//! in Xen's `docs/misc/arm/device-tree/`), the frontend's partial device tree and, on the
//! route with no dom0, stubvirt's own partial device tree (the host devices passed through
//! to it) and the marks on the host tree that keep Xen's hands off those devices. `cargo
//! xtask config` prints these same nodes, and the demo and the tests boot them.

use devices::topology::{Backing, Device, DeviceKind, Topology};
use std::fmt::Write;

/// Which domain runs the backend.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Route {
    /// Backend as dom0 (Xen 4.17+): the hardware domain, mapped 1:1, with every privilege.
    Dom0,
    /// No dom0 at all (Xen >= 4.21): the backend is dom0less domU1 with `capabilities =
    /// <1>` (control, not hardware), direct-mapped with static memory so that the host
    /// devices passed through to it DMA right; the frontend is domU2.
    ControlDomU,
}

impl Route {
    pub fn backend_domid(self) -> u32 {
        match self {
            Route::Dom0 => 0,
            Route::ControlDomU => 1,
        }
    }

    pub fn frontend_domid(self) -> u32 {
        self.backend_domid() + 1
    }
}

/// stubvirt's command line. As dom0 it is told to serve the frontend (2 vcpus) a 16 MiB
/// RAM disk; with no dom0 the same topology comes from the `stubvirt,backend` node of
/// its partial device tree ([`backend_dts`]).
pub fn backend_args(route: Route) -> String {
    match route {
        Route::Dom0 => format!(
            "loglevel=info frontend={} frontend_vcpus={FRONTEND_VCPUS} ramdisk_mb=16",
            route.frontend_domid()
        ),
        Route::ControlDomU => "loglevel=info".to_string(),
    }
}

/// The demo's topology: one frontend with a RAM disk, a NIC and the host's disk.
pub fn demo_topology(route: Route) -> Topology {
    Topology::single(route.frontend_domid() as u16, FRONTEND_VCPUS, 16, true)
}

/// The host disk's share of each frontend when there are several.
pub const SHARE_BYTES: u64 = 32 << 20;

/// `count` frontends from the route's first domid: each with a RAM disk, a NIC of its own
/// MAC (..:01, ..:02, ...) and its own [`SHARE_BYTES`] of the host disk (one frontend:
/// the whole disk, as [`demo_topology`]).
pub fn demo_topology_for(route: Route, count: u16) -> Topology {
    let mut topology = demo_topology(route);
    if count <= 1 {
        return topology;
    }
    let first = topology.frontends.remove(0);
    topology.frontends = (0..count)
        .map(|n| {
            let mut frontend = first.clone();
            frontend.domid += n;
            for device in &mut frontend.devices {
                match &mut device.kind {
                    DeviceKind::Nic { mac, .. } => mac[5] = mac[5].wrapping_add(n as u8),
                    DeviceKind::Disk {
                        backing: Backing::HostDisk { offset, length },
                        ..
                    } => {
                        *offset = u64::from(n) * SHARE_BYTES;
                        *length = Some(SHARE_BYTES);
                    }
                    DeviceKind::Disk { .. } => {}
                }
            }
            frontend
        })
        .collect();
    topology
}

/// Xen's command line. Without dom0 there is no dom0 memory or vcpu count to give, and
/// `conswitch=ax` keeps the serial input with Xen: the domain holding it gets its vpl011
/// output printed a character at a time, which Xen cuts mid-line whenever the vcpu moves
/// between physical CPUs; every other domain's lines come out whole (in 126-byte pieces,
/// which `console::pieces` joins).
pub fn xen_args(route: Route) -> &'static str {
    match route {
        Route::Dom0 => crate::arm64::sysdt::XEN_ARGS,
        Route::ControlDomU => crate::config::XEN_ARGS_NO_DOM0,
    }
}

/// Options appended to Xen's command line in the demo, for experiments (e.g.
/// `sched=credit`, `vwfi=native`): empty unless set.
pub const XEN_EXTRA_VARIABLE: &str = "STUBVIRT_XEN_EXTRA_ARGS";

/// [`xen_args`] with [`XEN_EXTRA_VARIABLE`]'s options after them.
fn xen_bootargs(route: Route) -> String {
    match std::env::var(XEN_EXTRA_VARIABLE) {
        Ok(extra) if !extra.trim().is_empty() => format!("{} {}", xen_args(route), extra.trim()),
        _ => xen_args(route).to_string(),
    }
}

/// How QEMU runs the demo's vcpus (`sysdt::Tcg`): a host thread each, as CI always ran
/// it. One thread for all hung less often on the dom0 route under load, but not never: in
/// CI it went silent once on each route, with a runnable vcpu neither queued nor running
/// or a vcpu waiting on a blocked one (docs/testing.md).
pub const DEMO_TCG: crate::arm64::sysdt::Tcg = crate::arm64::sysdt::Tcg::ThreadPerVcpu;

/// Options appended to the demo's QEMU command line, for experiments: none unless set.
pub const QEMU_EXTRA_VARIABLE: &str = "STUBVIRT_QEMU_EXTRA_ARGS";

/// The frontend's command line; `fe_wait` bounds the readiness handshake (seconds). The
/// run adds `fe_tcp_port=N`, the port of the host's TCP source, and `fe_tcp_sink=N`, the
/// port of the host's TCP sink the frontend uploads to.
pub const FRONTEND_ARGS: &str = "console=ttyAMA0 rdinit=/init fe_wait=90";
pub const FRONTEND_VCPUS: u32 = 2;
/// Frontend memory in KiB.
pub const FRONTEND_MEMORY_KB: u64 = 256 * 1024;
/// The demo's devices: a RAM disk, a NIC and the host's disk, in windows 0..=2 of Xen's
/// layout (stubvirt's default topology). The frontend's init polls the same windows
/// (`tools/frontend/init.sh`).
pub fn demo_devices(route: Route) -> Vec<Device> {
    demo_topology(route)
        .frontends
        .into_iter()
        .flat_map(|f| f.devices)
        .collect()
}

/// stubvirt's RAM on the route with no dom0: one static bank, mapped 1:1 (`direct-map`),
/// above the boot modules and below where Xen relocates itself (the top of QEMU's RAM).
pub const BACKEND_RAM: Module = Module {
    addr: 0x6000_0000,
    size: 128 << 20,
};

/// A host virtio-mmio device passed through to stubvirt: its node in QEMU's tree, its
/// register window and its SPI (the `interrupts` cell, INTID 32 + spi).
pub struct HostDevice {
    pub node: &'static str,
    pub base: u64,
    pub spi: u32,
}

/// QEMU's `virt` machine puts the `-device virtio-*-device`s in its last virtio-mmio
/// slots (0x0a000000 + 0x200 * slot, SPI 16 + slot): the demo's disk and NIC are slots
/// 31 and 30. Both are passed through; stubvirt tells them apart by device id.
pub const HOST_DEVICES: [HostDevice; 2] = [
    HostDevice {
        node: "/virtio_mmio@a003e00",
        base: 0x0a00_3e00,
        spi: 47,
    },
    HostDevice {
        node: "/virtio_mmio@a003c00",
        base: 0x0a00_3c00,
        spi: 46,
    },
];

/// A boot module: where it is loaded and how big it is.
#[derive(Clone, Copy)]
pub struct Module {
    pub addr: u64,
    pub size: u64,
}

/// The frontend's three modules.
pub struct Frontend {
    pub kernel: Module,
    pub ramdisk: Module,
    pub dtb: Module,
}

/// The backend's modules: its image and, on the route with no dom0, its partial device
/// tree.
pub struct Backend {
    pub kernel: Module,
    pub dtb: Option<Module>,
}

/// The partial device tree's opening: the `/passthrough` bus Xen copies into the guest.
const PASSTHROUGH_BUS: &str = "    passthrough {\n        compatible = \"simple-bus\";\n        \
     ranges;\n        #address-cells = <2>;\n        #size-cells = <2>;\n";

/// The demo frontend's partial device tree.
pub fn frontend_dts(route: Route) -> String {
    frontend_partial_dts(&demo_devices(route), route.backend_domid())
}

/// What a device is, for the comment beside its node.
fn describe(device: &Device) -> &'static str {
    match device.kind {
        DeviceKind::Disk {
            backing: Backing::RamDisk { .. },
            ..
        } => "virtio-blk: RAM disk",
        DeviceKind::Disk {
            read_only: true, ..
        } => "virtio-blk: host disk, read-only",
        DeviceKind::Disk { .. } => "virtio-blk: host disk",
        DeviceKind::Nic { .. } => "virtio-net",
    }
}

/// A frontend's partial device tree (Xen copies the `/passthrough` nodes verbatim; the
/// `gic` node's phandle stands for the guest's vGIC): the grant-DMA IOMMU naming the
/// backend's domid, and one `virtio,mmio` node per device.
pub fn frontend_partial_dts(devices: &[Device], backend_domid: u32) -> String {
    let mut out = String::from(
        "/dts-v1/;\n\n/ {\n    #address-cells = <2>;\n    #size-cells = <2>;\n\n    \
         gic: gic {                  /* placeholder: Xen substitutes the guest's vGIC */\n        \
         #interrupt-cells = <3>;\n        interrupt-controller;\n    };\n\n",
    );
    out.push_str(PASSTHROUGH_BUS);
    out.push_str(
        "\n        xen_iommu: xen_iommu {\n            compatible = \"xen,grant-dma\";\n            \
         #iommu-cells = <1>;\n        };\n",
    );
    for device in devices {
        let base = device.window.base;
        let cell = device.window.dt_interrupt();
        let _ = write!(
            out,
            "\n        virtio@{base:x} {{           /* {what} */\n            \
             compatible = \"virtio,mmio\";\n            \
             reg = <0x0 0x{base:x} 0x0 0x200>;\n            \
             interrupt-parent = <&gic>;\n            \
             interrupts = <0 {cell} 1>;        /* SPI {cell} = INTID {spi}, edge rising */\n            \
             dma-coherent;\n            \
             iommus = <&xen_iommu {backend_domid}>;  /* the backend's domid */\n        }};\n",
            what = describe(device),
            spi = device.window.spi,
        );
    }
    out.push_str("    };\n};\n");
    out
}

/// stubvirt's partial device tree on the route with no dom0: QEMU's disk and NIC passed
/// through. `xen,reg` maps the whole page holding their register windows (Xen maps whole
/// pages only), `xen,path` names the host node whose interrupt Xen routes to us, and
/// `xen,force-assign-without-iommu` is needed because QEMU's virtio-mmio sits behind no
/// IOMMU: that is safe only because stubvirt's domain is direct-mapped, which stubvirt
/// checks (XENFEAT_direct_mapped) before it drives them. 65000 is Xen's phandle for the
/// guest's vGIC. The `stubvirt,backend` node says what to serve.
pub fn backend_dts() -> String {
    backend_partial_dts(Some(&demo_topology(Route::ControlDomU)))
}

/// [`backend_dts`], with the topology node stubvirt reads at boot when there is one.
pub fn backend_partial_dts(topology: Option<&Topology>) -> String {
    let mut out =
        String::from("/dts-v1/;\n\n/ {\n    #address-cells = <2>;\n    #size-cells = <2>;\n\n");
    out.push_str(PASSTHROUGH_BUS);
    for device in &HOST_DEVICES {
        let page = device.base & !0xfff;
        let _ = write!(
            out,
            "\n        virtio_mmio@{base:x} {{\n            \
             compatible = \"virtio,mmio\";\n            \
             reg = <0x0 0x{base:x} 0x0 0x200>;\n            \
             interrupt-parent = <65000>;\n            \
             interrupts = <0 {spi} 1>;\n            \
             dma-coherent;\n            \
             xen,reg = <0x0 0x{page:x} 0x0 0x1000 0x0 0x{page:x}>;\n            \
             xen,path = \"{node}\";\n            \
             xen,force-assign-without-iommu;\n        }};\n",
            base = device.base,
            spi = device.spi,
            node = device.node,
        );
    }
    if let Some(topology) = topology {
        out.push('\n');
        out.push_str(&devices::topology::device_tree::write(topology, "        "));
    }
    out.push_str("    };\n};\n");
    out
}

/// What the host tree needs on the route with no dom0: Xen leaves the devices to the
/// domain they are passed through to.
pub fn host_passthrough_marks() -> String {
    HOST_DEVICES
        .iter()
        .map(|d| format!("\n&{{{}}} {{\n xen,passthrough;\n}};\n", d.node))
        .collect()
}

pub fn module_node(indent: &str, kind: &str, m: Module, bootargs: Option<&str>) -> String {
    let mut out = format!(
        "{indent}module@{:x} {{\n{indent}    compatible = \"multiboot,{kind}\", \"multiboot,module\";\n\
         {indent}    reg = <0x{:x} 0x{:x} 0x{:x} 0x{:x}>;\n",
        m.addr,
        m.addr >> 32,
        m.addr & 0xffff_ffff,
        m.size >> 32,
        m.size & 0xffff_ffff
    );
    if let Some(args) = bootargs {
        let _ = writeln!(out, "{indent}    bootargs = \"{args}\";");
    }
    let _ = writeln!(out, "{indent}}};");
    out
}

fn frontend_node(name: &str, fe: &Frontend, args: &str) -> String {
    let mut out = format!(
        "  {name} {{\n   compatible = \"xen,domain\";\n   #address-cells = <2>;\n   \
         #size-cells = <2>;\n   memory = <0 {FRONTEND_MEMORY_KB}>;\n   cpus = <{FRONTEND_VCPUS}>;\n   \
         vpl011;\n   xen,enhanced = \"no-xenstore\";\n"
    );
    out.push_str(&module_node("   ", "kernel", fe.kernel, Some(args)));
    out.push_str(&module_node("   ", "ramdisk", fe.ramdisk, None));
    out.push_str(&module_node("   ", "device-tree", fe.dtb, None));
    out.push_str("  };\n");
    out
}

/// stubvirt as dom0less domU1 with no dom0: a control domain (not the hardware domain),
/// direct-mapped on static memory.
fn control_domu_node(backend: &Backend, args: &str) -> String {
    let ram = BACKEND_RAM;
    let mut out = format!(
        "  domU1 {{\n   compatible = \"xen,domain\";\n   #address-cells = <2>;\n   \
         #size-cells = <2>;\n   memory = <0 {}>;\n   \
         xen,static-mem = <0x{:x} 0x{:x} 0x{:x} 0x{:x}>;\n   \
         direct-map;           /* guest-physical = machine: passed-through DMA is right */\n   \
         cpus = <1>;\n   \
         capabilities = <1>;   /* control: dm_op, ioreq pages of its frontends (Xen >= 4.21) */\n   \
         vpl011;\n   xen,enhanced = \"no-xenstore\";\n",
        ram.size / 1024,
        ram.addr >> 32,
        ram.addr & 0xffff_ffff,
        ram.size >> 32,
        ram.size & 0xffff_ffff
    );
    out.push_str(&module_node("   ", "kernel", backend.kernel, Some(args)));
    if let Some(dtb) = backend.dtb {
        out.push_str(&module_node("   ", "device-tree", dtb, None));
    }
    out.push_str("  };\n");
    out
}

/// `/chosen` for `route`: Xen's command line, the backend (dom0 module or control domU1;
/// `None`: no backend at all) and the frontend domU.
pub fn chosen(
    route: Route,
    backend: Option<(&Backend, &str)>,
    fe: &Frontend,
    frontend_args: &str,
) -> String {
    chosen_frontends(route, backend, &[(fe, frontend_args)])
}

/// [`chosen`] with several frontends, domU<domid> from the route's first frontend domid on
/// (dom0less numbers domains in this order).
pub fn chosen_frontends(
    route: Route,
    backend: Option<(&Backend, &str)>,
    frontends: &[(&Frontend, &str)],
) -> String {
    let mut out = String::from("/ {\n chosen {\n  #address-cells = <2>;\n  #size-cells = <2>;\n");
    let _ = writeln!(out, "  xen,xen-bootargs = \"{}\";", xen_bootargs(route));
    match route {
        Route::Dom0 => {
            if let Some((backend, args)) = backend {
                out.push_str(&module_node("  ", "kernel", backend.kernel, Some(args)));
            }
        }
        Route::ControlDomU => {
            if let Some((backend, args)) = backend {
                out.push_str(&control_domu_node(backend, args));
            }
        }
    }
    for (n, (fe, args)) in frontends.iter().enumerate() {
        let name = format!("domU{}", route.frontend_domid() as usize + n);
        out.push_str(&frontend_node(&name, fe, args));
    }
    out.push_str(" };\n};\n");
    out
}

fn align_up(value: u64, align: u64) -> u64 {
    value.div_ceil(align) * align
}

/// Lays files out from `base`, each on a 2 MiB boundary. On the route with no dom0 they
/// must stay below stubvirt's static RAM, which Xen hands to stubvirt whole.
pub fn layout(base: u64, sizes: &[u64]) -> Result<Vec<Module>, String> {
    let mut addr = base;
    let modules: Vec<Module> = sizes
        .iter()
        .map(|&size| {
            let m = Module { addr, size };
            addr = align_up(addr + size, 0x20_0000);
            m
        })
        .collect();
    if addr > BACKEND_RAM.addr {
        return Err(format!(
            "the boot modules end at {addr:#x}, past the start of stubvirt's static RAM \
             {:#x}: a smaller frontend kernel or initramfs is needed",
            BACKEND_RAM.addr
        ));
    }
    Ok(modules)
}

/// Example module addresses and sizes for `cargo xtask config` (replace them with where
/// your boot loader puts the files): the same order and alignment as the demo's layout.
pub fn example_modules(route: Route) -> (Backend, Frontend) {
    let mut sizes = vec![0x4_0000]; // the 256 KiB image budget
    if route == Route::ControlDomU {
        sizes.push(0x1000); // stubvirt's partial device tree
    }
    sizes.extend([0x80_0000, 0x40_0000, 0x1000]); // frontend Image, initramfs, tree
    let m = layout(crate::arm64::sysdt::MODULE_BASE, &sizes).unwrap_or_default();
    let at = |i: usize| m.get(i).copied().unwrap_or(Module { addr: 0, size: 0 });
    let skip = usize::from(route == Route::ControlDomU);
    (
        Backend {
            kernel: at(0),
            dtb: (route == Route::ControlDomU).then(|| at(1)),
        },
        Frontend {
            kernel: at(1 + skip),
            ramdisk: at(2 + skip),
            dtb: at(3 + skip),
        },
    )
}

#[cfg(test)]
mod tests;
