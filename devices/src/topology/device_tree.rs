//! The topology as a device tree node, written by the host tool into stubvirt's
//! partial device tree (Xen copies it into stubvirt's own tree, the dom0less way) and
//! read back by the kernel at boot. Both directions live here so that they cannot drift.
//!
//! ```text
//! stubvirt-backend {
//!     compatible = "stubvirt,backend";
//!     uplink;                              /* absent: the physical NIC stays off */
//!     frontend-2 {
//!         domid = <2>;
//!         vcpus = <2>;
//!         disk-0 {
//!             compatible = "stubvirt,virtio-blk";
//!             window = <0x0 0x2000000>;
//!             spi = <33>;
//!             ramdisk-mib = <16>;          /* or host-disk-offset (and -length), u64 */
//!             read-only;                   /* optional */
//!         };
//!         nic-1 {
//!             compatible = "stubvirt,virtio-net";
//!             window = <0x0 0x2000200>;
//!             spi = <34>;
//!             local-mac-address = [02 00 00 00 02 01];
//!             mtu = <1500>;
//!         };
//!     };
//! };
//! ```

use super::{Backing, Device, DeviceKind, Frontend, Topology, Window};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};
use fdt::node::FdtNode;
use fdt::Fdt;

pub const COMPATIBLE: &str = "stubvirt,backend";
const BLK: &str = "stubvirt,virtio-blk";
const NET: &str = "stubvirt,virtio-net";

/// A node that does not describe what it should: which node, which property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DtError {
    pub node: String,
    pub what: &'static str,
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "device tree node {}: {}", self.node, self.what)
    }
}

fn error(node: &FdtNode, what: &'static str) -> DtError {
    DtError {
        node: String::from(node.name),
        what,
    }
}

fn cells(node: &FdtNode, name: &str) -> Option<u64> {
    let value = node.property(name)?.value;
    match *value {
        [a, b, c, d] => Some(u64::from(u32::from_be_bytes([a, b, c, d]))),
        [a, b, c, d, e, f, g, h] => Some(u64::from_be_bytes([a, b, c, d, e, f, g, h])),
        _ => None,
    }
}

fn number<T: TryFrom<u64>>(node: &FdtNode, name: &str, what: &'static str) -> Result<T, DtError> {
    cells(node, name)
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| error(node, what))
}

/// The topology in `fdt`, if it has a `stubvirt,backend` node.
pub fn read(fdt: &Fdt) -> Result<Option<Topology>, DtError> {
    let Some(root) = fdt.find_compatible(&[COMPATIBLE]) else {
        return Ok(None);
    };
    let mut frontends = Vec::new();
    for node in root.children() {
        let mut devices = Vec::new();
        for child in node.children() {
            devices.push(read_device(&child)?);
        }
        frontends.push(Frontend {
            domid: number(&node, "domid", "no domid, or not a 16-bit number")?,
            vcpus: number(&node, "vcpus", "no vcpus, or not a 32-bit number")?,
            devices,
        });
    }
    Ok(Some(Topology {
        frontends,
        uplink: root.property("uplink").is_some(),
    }))
}

fn read_device(node: &FdtNode) -> Result<Device, DtError> {
    let window = Window {
        base: number(node, "window", "no window")?,
        spi: number(node, "spi", "no spi")?,
    };
    let compatible = node.compatible().map(|c| c.first());
    let kind = match compatible {
        Some(BLK) => {
            let backing = if let Some(mib) = cells(node, "ramdisk-mib") {
                Backing::RamDisk {
                    mib: u32::try_from(mib).map_err(|_| error(node, "ramdisk-mib too large"))?,
                }
            } else {
                Backing::HostDisk {
                    offset: number(
                        node,
                        "host-disk-offset",
                        "neither ramdisk-mib nor host-disk-offset",
                    )?,
                    length: cells(node, "host-disk-length"),
                }
            };
            DeviceKind::Disk {
                backing,
                read_only: node.property("read-only").is_some(),
            }
        }
        Some(NET) => {
            let mac = node
                .property("local-mac-address")
                .and_then(|p| <[u8; 6]>::try_from(p.value).ok())
                .ok_or_else(|| error(node, "no 6-byte local-mac-address"))?;
            DeviceKind::Nic {
                mac,
                mtu: number(node, "mtu", "no mtu, or not a 16-bit number")?,
            }
        }
        _ => {
            return Err(error(
                node,
                "compatible is neither virtio-blk nor virtio-net",
            ))
        }
    };
    Ok(Device { window, kind })
}

/// The node in device tree source, each line indented by `indent`.
pub fn write(topology: &Topology, indent: &str) -> String {
    let mut out = String::new();
    let i1 = alloc::format!("{indent}    ");
    let i2 = alloc::format!("{indent}        ");
    let i3 = alloc::format!("{indent}            ");
    let _ = writeln!(out, "{indent}stubvirt-backend {{");
    let _ = writeln!(out, "{i1}compatible = \"{COMPATIBLE}\";");
    if topology.uplink {
        let _ = writeln!(out, "{i1}uplink;");
    }
    for frontend in &topology.frontends {
        let _ = writeln!(out, "\n{i1}frontend-{} {{", frontend.domid);
        let _ = writeln!(out, "{i2}domid = <{}>;", frontend.domid);
        let _ = writeln!(out, "{i2}vcpus = <{}>;", frontend.vcpus);
        for (n, device) in frontend.devices.iter().enumerate() {
            let (name, compatible) = match device.kind {
                DeviceKind::Disk { .. } => ("disk", BLK),
                DeviceKind::Nic { .. } => ("nic", NET),
            };
            let base = device.window.base;
            let _ = writeln!(out, "\n{i2}{name}-{n} {{");
            let _ = writeln!(out, "{i3}compatible = \"{compatible}\";");
            let _ = writeln!(
                out,
                "{i3}window = <{:#x} {:#x}>;",
                base >> 32,
                base & 0xffff_ffff
            );
            let _ = writeln!(out, "{i3}spi = <{}>;", device.window.spi);
            match device.kind {
                DeviceKind::Disk { backing, read_only } => {
                    match backing {
                        Backing::RamDisk { mib } => {
                            let _ = writeln!(out, "{i3}ramdisk-mib = <{mib}>;");
                        }
                        Backing::HostDisk { offset, length } => {
                            write_u64(&mut out, &i3, "host-disk-offset", offset);
                            if let Some(length) = length {
                                write_u64(&mut out, &i3, "host-disk-length", length);
                            }
                        }
                    }
                    if read_only {
                        let _ = writeln!(out, "{i3}read-only;");
                    }
                }
                DeviceKind::Nic { mac, mtu } => {
                    let _ = writeln!(
                        out,
                        "{i3}local-mac-address = [{:02x} {:02x} {:02x} {:02x} {:02x} {:02x}];",
                        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
                    );
                    let _ = writeln!(out, "{i3}mtu = <{mtu}>;");
                }
            }
            let _ = writeln!(out, "{i2}}};");
        }
        let _ = writeln!(out, "{i1}}};");
    }
    let _ = writeln!(out, "{indent}}};");
    out
}

fn write_u64(out: &mut String, indent: &str, name: &str, value: u64) {
    let _ = writeln!(
        out,
        "{indent}{name} = <{:#x} {:#x}>;",
        value >> 32,
        value & 0xffff_ffff
    );
}
