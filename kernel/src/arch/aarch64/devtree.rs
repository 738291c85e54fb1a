//! Reads the device tree (pointer from `x0` at entry) into a [`BootInfo`] and picks the
//! console: RAM from the `memory` nodes, command line from `/chosen/bootargs`, Xen from
//! `/hypervisor` (`compatible = "xen,xen"`; its `reg` is the grant-table region followed by
//! the extended regions: free guest-physical space, where the grant window goes).
//!
//! Parsing uses the `fdt` crate (0.1.5, no_std, no dependencies).

use super::{console, power};
use crate::arch::{BootInfo, HostMmio, RamRegion, GRANT_WINDOW_SLOTS, PAGE_SIZE};
use crate::xen::domain;
use fdt::node::FdtNode;
use fdt::Fdt;

/// QEMU `-M virt`'s PL011, used when the device tree cannot be read (never under Xen).
const QEMU_VIRT_PL011: usize = 0x0900_0000;
/// Bytes the grant window needs, and its alignment (one level-3 table).
const WINDOW_BYTES: u64 = (GRANT_WINDOW_SLOTS * PAGE_SIZE) as u64;

extern "C" {
    /// Linker-script symbols (linker/aarch64.ld).
    static __image_start: u8;
    static __image_end: u8;
}

/// Builds the boot information and selects the console.
pub fn boot_info(dtb: usize, load_base: usize) -> BootInfo {
    let image_len = (&raw const __image_end as usize) - (&raw const __image_start as usize);
    let mut info = BootInfo {
        cmdline: "",
        ram: heapless::Vec::new(),
        reserved: heapless::Vec::new(),
        xen: false,
        xen_console: false,
        grant_window_gpa: 0,
        host_virtio: heapless::Vec::new(),
        gic_distributor: 0,
        dtb: &[],
    };
    reserve(&mut info, load_base as u64, image_len as u64);

    // SAFETY: the boot protocol passes a device tree blob in x0; it lies in identity-mapped
    // RAM (normal memory) and nothing writes to it. `from_ptr` checks the magic and size.
    let fdt: Fdt<'static> = match unsafe { Fdt::from_ptr(dtb as *const u8) } {
        Ok(fdt) => fdt,
        Err(_) => {
            console::select(Some(QEMU_VIRT_PL011), false);
            console::write(b"stubvirt: no valid device tree in x0; assuming QEMU virt\n");
            return info;
        }
    };
    reserve(&mut info, dtb as u64, fdt.total_size() as u64);
    // SAFETY: `from_ptr` checked the header; the blob's total_size bytes from `dtb` are
    // reserved RAM (just above) that nothing writes, identity-mapped for the whole run.
    info.dtb = unsafe { core::slice::from_raw_parts(dtb as *const u8, fdt.total_size()) };
    for rsv in fdt.memory_reservations() {
        reserve(&mut info, rsv.address() as u64, rsv.size() as u64);
    }

    read_ram(&fdt, &mut info);
    read_virtio_mmio(&fdt, &mut info);
    info.cmdline = fdt.chosen().bootargs().unwrap_or("");

    let hypervisor = crate::devtree_nodes::hypervisor(&fdt);
    let psci_smc = crate::devtree_nodes::psci_uses_smc(&fdt);
    power::use_smc(psci_smc);

    let Some(hypervisor) = hypervisor else {
        let uart = fdt
            .find_compatible(&["arm,pl011"])
            .and_then(|node| node.reg()?.next())
            .map_or(QEMU_VIRT_PL011, |r| r.starting_address as usize);
        console::select(Some(uart), false);
        return info;
    };

    read_xen(&fdt, hypervisor, &mut info);
    info
}

/// RAM from every `memory` node. Ranges beyond `BootInfo::ram`'s capacity are left out:
/// less RAM, never a conflict.
fn read_ram(fdt: &Fdt<'static>, info: &mut BootInfo) {
    for node in fdt.all_nodes() {
        let is_memory = node.name == "memory" || node.name.starts_with("memory@");
        if let (true, Some(reg)) = (is_memory, node.reg()) {
            for r in reg {
                let _ = info.ram.push(region(
                    r.starting_address as u64,
                    r.size.unwrap_or(0) as u64,
                ));
            }
        }
    }
}

/// Register windows of every enabled `virtio,mmio` node (QEMU's virt machine has 32).
/// Windows beyond `BootInfo::host_virtio`'s capacity are left out. Kept only where
/// guest-physical addresses are machine addresses (no Xen, or a domain Xen reports as
/// direct-mapped), since the devices DMA to the addresses we give them.
fn read_virtio_mmio(fdt: &Fdt<'static>, info: &mut BootInfo) {
    let enabled = |node: &FdtNode<'_, 'static>| {
        node.property("status")
            .and_then(|p| p.as_str())
            .is_none_or(|s| s == "okay" || s == "ok")
    };
    let virtio = |node: &FdtNode<'_, 'static>| {
        node.compatible()
            .is_some_and(|c| c.all().any(|s| s == "virtio,mmio"))
    };
    for node in fdt.all_nodes() {
        if !virtio(&node) || !enabled(&node) {
            continue;
        }
        if let Some(r) = node.reg().and_then(|mut reg| reg.next()) {
            let _ = info.host_virtio.push(HostMmio {
                start: r.starting_address as u64,
                len: r.size.unwrap_or(0) as u64,
                intid: spi_intid(&node),
            });
        }
    }
    info.gic_distributor = fdt
        .find_compatible(&["arm,gic-v3"])
        .and_then(|node| node.reg()?.next())
        .map_or(0, |r| r.starting_address as u64);
}

/// The GIC INTID of a node's first interrupt when it is an SPI (`interrupts = <0 N
/// flags>`, three cells as the GIC binding has them): 32 + N.
fn spi_intid(node: &FdtNode<'_, 'static>) -> Option<u32> {
    let cells = node.property("interrupts")?.value;
    let cell = |i: usize| -> Option<u32> {
        let bytes = cells.get(4 * i..4 * i + 4)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?))
    };
    match (cell(0)?, cell(1)?) {
        (0, spi) if spi < 988 => Some(32 + spi),
        _ => None,
    }
}

/// Under Xen: the console (vpl011 in a domU, console_io as dom0) and the grant window.
fn read_xen(fdt: &Fdt<'static>, hypervisor: FdtNode<'_, 'static>, info: &mut BootInfo) {
    info.xen = true;
    // A domU has Xen's vpl011 ("arm,sbsa-uart"); dom0 prints through console_io.
    let vpl011 = fdt
        .find_compatible(&["arm,sbsa-uart"])
        .and_then(|node| node.reg()?.next())
        .map(|r| r.starting_address as usize);
    let dom0 = domain::is_dom0();
    info.xen_console = dom0 || vpl011.is_none();
    console::select(vpl011, true);
    if !domain::is_direct_mapped() {
        // Guest-physical addresses are not machine addresses here: a device passed
        // through without an IOMMU would DMA to the wrong frames. Arm's dom0 and a
        // dom0less domU with `direct-map` are mapped 1:1, and Xen says so.
        if !info.host_virtio.is_empty() {
            console::write(
                b"stubvirt: virtio-mmio devices in the device tree left alone: this domain is \
                  not direct-mapped, so their DMA would miss (give it `direct-map` and \
                  `xen,static-mem`)\n",
            );
        }
        info.host_virtio.clear();
    }

    if let Some(reg) = hypervisor.reg() {
        // The first few regions are plenty to find 2 MiB (collecting more would panic).
        let regions: heapless::Vec<RamRegion, 8> = reg
            .take(8)
            .map(|r| region(r.starting_address as u64, r.size.unwrap_or(0) as u64))
            .collect();
        info.grant_window_gpa = pick_window(&regions).unwrap_or(0);
    }
    if info.grant_window_gpa == 0 {
        panic!("no free guest-physical range for the grant window in /hypervisor `reg`");
    }
}

/// Records a range the frame allocator must never hand out. Dropping one would let the
/// allocator overwrite it, so running out of slots is fatal.
fn reserve(info: &mut BootInfo, start: u64, len: u64) {
    if info.reserved.push(region(start, len)).is_err() {
        panic!("more than {} reserved ranges", info.reserved.capacity());
    }
}

fn region(start: u64, len: u64) -> RamRegion {
    RamRegion { start, len }
}

/// The grant window: inside the first extended region (entries after the first) that holds
/// it once aligned, else inside the grant-table region (the first entry).
fn pick_window(regions: &[RamRegion]) -> Option<u64> {
    let fits = |r: &RamRegion| {
        let start = r.start.checked_add(WINDOW_BYTES - 1)? & !(WINDOW_BYTES - 1);
        let end = r.start.checked_add(r.len)?;
        (end >= start.checked_add(WINDOW_BYTES)?).then_some(start)
    };
    regions
        .iter()
        .skip(1)
        .find_map(fits)
        .or_else(|| regions.first().and_then(fits))
}
