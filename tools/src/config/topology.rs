//! The system description a user writes (TOML), turned into a
//! [`devices::topology::Topology`] plus what only the boot needs (memory sizes, command
//! lines). `cargo xtask config FILE` reads it; `tools/configs/*.toml` are examples.
//!
//! ```toml
//! backend_domid = 1          # stubvirt's domain: 1 with no dom0 (the default), 0 as dom0
//! uplink = true              # the physical NIC joins the switch
//!
//! [[frontend]]
//! domid = 2
//! vcpus = 2
//! memory_mib = 256
//! cmdline = "console=ttyAMA0"
//!
//! [[frontend.disk]]
//! window = 0                 # 0x2000000 + 0x200 * window, SPI 33 + window
//! ramdisk_mib = 16           # or host_disk_offset_mib (and host_disk_length_mib)
//! read_only = false
//!
//! [[frontend.nic]]
//! window = 1
//! mac = "02:00:00:00:02:01"
//! mtu = 1500
//! ```

use devices::topology::{Backing, Device, DeviceKind, Frontend, Topology, Window};
use serde::Deserialize;

const MIB: u64 = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default = "default_backend_domid")]
    backend_domid: u16,
    #[serde(default = "yes")]
    uplink: bool,
    /// Xen enforces stubvirt's FLASK policy and stubvirt confines itself (no dom0 only).
    #[serde(default)]
    confine: bool,
    #[serde(default)]
    frontend: Vec<FrontendEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontendEntry {
    domid: u16,
    #[serde(default = "one")]
    vcpus: u32,
    #[serde(default = "default_memory_mib")]
    memory_mib: u64,
    #[serde(default)]
    cmdline: Option<String>,
    #[serde(default)]
    disk: Vec<DiskEntry>,
    #[serde(default)]
    nic: Vec<NicEntry>,
}

/// Where a device sits: `window = n` (Xen's layout), or `base` and `spi` given apart.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Place {
    window: Option<u32>,
    base: Option<u64>,
    spi: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiskEntry {
    #[serde(flatten)]
    place: Place,
    ramdisk_mib: Option<u32>,
    host_disk_offset_mib: Option<u64>,
    host_disk_length_mib: Option<u64>,
    #[serde(default)]
    read_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NicEntry {
    #[serde(flatten)]
    place: Place,
    mac: String,
    #[serde(default = "default_mtu")]
    mtu: u16,
}

fn default_backend_domid() -> u16 {
    1
}
fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn default_memory_mib() -> u64 {
    256
}
fn default_mtu() -> u16 {
    1500
}

/// What the boot needs of a frontend beyond the topology.
#[derive(Clone, Debug, PartialEq)]
pub struct FrontendBoot {
    pub domid: u16,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub cmdline: Option<String>,
}

/// A parsed description: the topology stubvirt serves and the boot facts around it.
#[derive(Clone, Debug, PartialEq)]
pub struct Description {
    pub backend_domid: u16,
    pub topology: Topology,
    pub frontends: Vec<FrontendBoot>,
    /// `confine = true`: FLASK enforcing with stubvirt's policy, `confine=flask`.
    pub confine: bool,
}

/// Parses and checks a description; the error is one line naming the problem. The size
/// of the physical disk is not known here: ranges are checked against each other, and
/// against the disk when stubvirt boots.
pub fn parse(text: &str) -> Result<Description, String> {
    let file: File = toml::from_str(text).map_err(|e| {
        let message = e.message().to_string();
        match e.span() {
            Some(span) => format!("line {}: {message}", line_of(text, span.start)),
            None => message,
        }
    })?;
    let mut frontends = Vec::new();
    let mut boots = Vec::new();
    for entry in &file.frontend {
        let mut devices = Vec::new();
        for disk in &entry.disk {
            devices.push(disk_device(entry.domid, disk)?);
        }
        for nic in &entry.nic {
            devices.push(Device {
                window: place(entry.domid, &nic.place)?,
                kind: DeviceKind::Nic {
                    mac: parse_mac(&nic.mac).ok_or_else(|| {
                        format!(
                            "frontend {}: mac `{}` is not aa:bb:cc:dd:ee:ff",
                            entry.domid, nic.mac
                        )
                    })?,
                    mtu: nic.mtu,
                },
            });
        }
        devices.sort_by_key(|d| d.window.base);
        frontends.push(Frontend {
            domid: entry.domid,
            vcpus: entry.vcpus,
            devices,
        });
        boots.push(FrontendBoot {
            domid: entry.domid,
            vcpus: entry.vcpus,
            memory_mib: entry.memory_mib,
            cmdline: entry.cmdline.clone(),
        });
    }
    let topology = Topology {
        frontends,
        uplink: file.uplink,
    };
    let facts = devices::topology::Facts {
        backend_domid: file.backend_domid,
        host_disk_bytes: None,
        host_disk: true,
        nic_ports: devices::topology::NIC_PORTS,
    };
    topology.check(&facts).map_err(|e| e.to_string())?;
    if file.confine && file.backend_domid == 0 {
        return Err(
            "confine = true needs the route with no dom0 (backend_domid = 1): as \
                    dom0, stubvirt is the hardware domain"
                .into(),
        );
    }
    Ok(Description {
        backend_domid: file.backend_domid,
        topology,
        frontends: boots,
        confine: file.confine,
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(0, |t| t.matches('\n').count()) + 1
}

fn place(domid: u16, place: &Place) -> Result<Window, String> {
    match (place.window, place.base, place.spi) {
        (Some(n), None, None) if n <= 10 => Ok(Window::nth(n)),
        (Some(n), None, None) => Err(format!(
            "frontend {domid}: window {n}: Xen has windows 0..=10 (SPIs 33..=43)"
        )),
        (None, Some(base), Some(spi)) => Ok(Window { base, spi }),
        _ => Err(format!(
            "frontend {domid}: give a device `window = n`, or both `base` and `spi`"
        )),
    }
}

fn disk_device(domid: u16, disk: &DiskEntry) -> Result<Device, String> {
    let window = place(domid, &disk.place)?;
    let backing = match (disk.ramdisk_mib, disk.host_disk_offset_mib) {
        (Some(mib), None) if disk.host_disk_length_mib.is_none() => Backing::RamDisk { mib },
        (None, Some(offset)) => Backing::HostDisk {
            offset: offset.saturating_mul(MIB),
            length: disk.host_disk_length_mib.map(|l| l.saturating_mul(MIB)),
        },
        _ => {
            return Err(format!(
                "frontend {domid} disk {:#x}: give `ramdisk_mib`, or `host_disk_offset_mib` \
                 (and `host_disk_length_mib`), not both",
                window.base
            ))
        }
    };
    Ok(Device {
        window,
        kind: DeviceKind::Disk {
            backing,
            read_only: disk.read_only,
        },
    })
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests;
