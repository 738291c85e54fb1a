//! [`Topology::check`]: everything that makes a description unsafe or impossible to
//! serve, each refused with one line that names the frontend and device concerned.

use super::{
    Backing, Device, DeviceKind, Topology, Window, FIRST_SPI, FIRST_WINDOW, LAST_SPI,
    MAX_FRONTENDS, MAX_MTU, MAX_RAMDISK_MIB, MAX_VCPUS, MIN_MTU, WINDOWS_SIZE, WINDOW_SIZE,
};
use core::fmt;

/// What the checker must know beyond the description.
#[derive(Clone, Copy, Debug)]
pub struct Facts {
    /// The backend's own domain: it cannot be its own frontend.
    pub backend_domid: u16,
    /// The physical disk's size; `None` when there is none (or, for the host tool, when it
    /// is not known yet: then ranges are checked against each other only).
    pub host_disk_bytes: Option<u64>,
    /// Whether a physical disk exists at all (false: no frontend may use one).
    pub host_disk: bool,
    /// Switch ports available to frontends' NICs.
    pub nic_ports: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopologyError {
    NoFrontend,
    TooManyFrontends {
        count: usize,
    },
    DuplicateFrontend {
        domid: u16,
    },
    BackendAsFrontend {
        domid: u16,
    },
    NoDevices {
        domid: u16,
    },
    Vcpus {
        domid: u16,
        vcpus: u32,
    },
    WindowOutside {
        domid: u16,
        window: Window,
    },
    WindowUnaligned {
        domid: u16,
        window: Window,
    },
    SpiOutside {
        domid: u16,
        window: Window,
    },
    WindowsOverlap {
        domid: u16,
        first: u64,
        second: u64,
    },
    SpiShared {
        domid: u16,
        spi: u32,
    },
    RamDiskSize {
        domid: u16,
        base: u64,
        mib: u32,
    },
    NoHostDisk {
        domid: u16,
        base: u64,
    },
    RangeUnaligned {
        domid: u16,
        base: u64,
    },
    RangeEmpty {
        domid: u16,
        base: u64,
    },
    RangePastEnd {
        domid: u16,
        base: u64,
        end: u64,
        disk_bytes: u64,
    },
    RangesShared {
        first: (u16, u64),
        second: (u16, u64),
    },
    Mtu {
        domid: u16,
        base: u64,
        mtu: u16,
    },
    MacNotUnicast {
        domid: u16,
        base: u64,
    },
    MacShared {
        first: (u16, u64),
        second: (u16, u64),
    },
    TooManyNics {
        count: usize,
        ports: usize,
    },
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TopologyError::*;
        match *self {
            NoFrontend => write!(f, "no frontend is described"),
            TooManyFrontends { count } => {
                write!(f, "{count} frontends: at most {MAX_FRONTENDS}")
            }
            DuplicateFrontend { domid } => write!(f, "frontend {domid} is described twice"),
            BackendAsFrontend { domid } => {
                write!(f, "frontend {domid} is the backend's own domain")
            }
            NoDevices { domid } => write!(f, "frontend {domid} has no device"),
            Vcpus { domid, vcpus } => {
                write!(f, "frontend {domid}: {vcpus} vcpus, not 1..={MAX_VCPUS}")
            }
            WindowOutside { domid, window } => write!(
                f,
                "frontend {domid}: window {:#x} outside {FIRST_WINDOW:#x}..{:#x}",
                window.base,
                FIRST_WINDOW + WINDOWS_SIZE
            ),
            WindowUnaligned { domid, window } => write!(
                f,
                "frontend {domid}: window {:#x} not aligned to {WINDOW_SIZE:#x}",
                window.base
            ),
            SpiOutside { domid, window } => write!(
                f,
                "frontend {domid}: window {:#x} has SPI {}, outside {FIRST_SPI}..={LAST_SPI}",
                window.base, window.spi
            ),
            WindowsOverlap {
                domid,
                first,
                second,
            } => write!(
                f,
                "frontend {domid}: windows {first:#x} and {second:#x} overlap"
            ),
            SpiShared { domid, spi } => {
                write!(f, "frontend {domid}: SPI {spi} given to two devices")
            }
            RamDiskSize { domid, base, mib } => write!(
                f,
                "frontend {domid} disk {base:#x}: RAM disk of {mib} MiB, not 1..={MAX_RAMDISK_MIB}"
            ),
            NoHostDisk { domid, base } => write!(
                f,
                "frontend {domid} disk {base:#x}: backed by the physical disk, and there is none"
            ),
            RangeUnaligned { domid, base } => write!(
                f,
                "frontend {domid} disk {base:#x}: range not in whole 512-byte sectors"
            ),
            RangeEmpty { domid, base } => {
                write!(f, "frontend {domid} disk {base:#x}: empty range")
            }
            RangePastEnd {
                domid,
                base,
                end,
                disk_bytes,
            } => write!(
                f,
                "frontend {domid} disk {base:#x}: range ends at byte {end}, past the end of \
                 the physical disk ({disk_bytes} bytes)"
            ),
            RangesShared { first, second } => write!(
                f,
                "frontend {} disk {:#x} and frontend {} disk {:#x} overlap on the physical \
                 disk and one of them may write: share ranges read-only or not at all",
                first.0, first.1, second.0, second.1
            ),
            Mtu { domid, base, mtu } => write!(
                f,
                "frontend {domid} nic {base:#x}: MTU {mtu}, not {MIN_MTU}..={MAX_MTU}"
            ),
            MacNotUnicast { domid, base } => write!(
                f,
                "frontend {domid} nic {base:#x}: MAC is multicast or all zero"
            ),
            MacShared { first, second } => write!(
                f,
                "frontend {} nic {:#x} and frontend {} nic {:#x} have the same MAC",
                first.0, first.1, second.0, second.1
            ),
            TooManyNics { count, ports } => {
                write!(
                    f,
                    "{count} NICs: the switch has {ports} ports for frontends"
                )
            }
        }
    }
}

/// A disk's byte range on the physical disk: start, end (exclusive, `u64::MAX` when
/// it runs to an end not known).
fn host_range(device: &Device, disk_bytes: Option<u64>) -> Option<(u64, u64)> {
    match device.kind {
        DeviceKind::Disk {
            backing: Backing::HostDisk { offset, length },
            ..
        } => {
            let end = match length {
                Some(length) => offset.saturating_add(length),
                None => disk_bytes.unwrap_or(u64::MAX),
            };
            Some((offset, end))
        }
        _ => None,
    }
}

fn writable(device: &Device) -> bool {
    matches!(
        device.kind,
        DeviceKind::Disk {
            read_only: false,
            ..
        }
    )
}

impl Topology {
    /// Refuses the first problem found: nothing may be served half-configured.
    pub fn check(&self, facts: &Facts) -> Result<(), TopologyError> {
        use TopologyError::*;
        if self.frontends.is_empty() {
            return Err(NoFrontend);
        }
        if self.frontends.len() > MAX_FRONTENDS {
            return Err(TooManyFrontends {
                count: self.frontends.len(),
            });
        }
        for (i, frontend) in self.frontends.iter().enumerate() {
            let domid = frontend.domid;
            if self.frontends.iter().take(i).any(|f| f.domid == domid) {
                return Err(DuplicateFrontend { domid });
            }
            if domid == facts.backend_domid {
                return Err(BackendAsFrontend { domid });
            }
            if frontend.devices.is_empty() {
                return Err(NoDevices { domid });
            }
            if !(1..=MAX_VCPUS).contains(&frontend.vcpus) {
                return Err(Vcpus {
                    domid,
                    vcpus: frontend.vcpus,
                });
            }
            for (j, device) in frontend.devices.iter().enumerate() {
                check_window(domid, device.window)?;
                for earlier in frontend.devices.iter().take(j) {
                    if earlier.window.overlaps(device.window) {
                        return Err(WindowsOverlap {
                            domid,
                            first: earlier.window.base,
                            second: device.window.base,
                        });
                    }
                    if earlier.window.spi == device.window.spi {
                        return Err(SpiShared {
                            domid,
                            spi: device.window.spi,
                        });
                    }
                }
                check_device(domid, device, facts)?;
            }
        }
        self.check_sharing(facts)
    }

    /// Across frontends: disk ranges, MACs, switch ports.
    fn check_sharing(&self, facts: &Facts) -> Result<(), TopologyError> {
        let devices: alloc::vec::Vec<(u16, &Device)> = self.devices().collect();
        for (i, &(domid, device)) in devices.iter().enumerate() {
            for &(other_domid, other) in devices.iter().take(i) {
                let here = (domid, device.window.base);
                let there = (other_domid, other.window.base);
                if let (Some(a), Some(b)) = (
                    host_range(device, facts.host_disk_bytes),
                    host_range(other, facts.host_disk_bytes),
                ) {
                    if a.0 < b.1 && b.0 < a.1 && (writable(device) || writable(other)) {
                        return Err(TopologyError::RangesShared {
                            first: there,
                            second: here,
                        });
                    }
                }
                if let (DeviceKind::Nic { mac: a, .. }, DeviceKind::Nic { mac: b, .. }) =
                    (device.kind, other.kind)
                {
                    if a == b {
                        return Err(TopologyError::MacShared {
                            first: there,
                            second: here,
                        });
                    }
                }
            }
        }
        let nics = devices
            .iter()
            .filter(|(_, d)| matches!(d.kind, DeviceKind::Nic { .. }))
            .count();
        if nics > facts.nic_ports {
            return Err(TopologyError::TooManyNics {
                count: nics,
                ports: facts.nic_ports,
            });
        }
        Ok(())
    }
}

fn check_window(domid: u16, window: Window) -> Result<(), TopologyError> {
    let end = FIRST_WINDOW + WINDOWS_SIZE;
    if window.base < FIRST_WINDOW || window.base.saturating_add(WINDOW_SIZE) > end {
        return Err(TopologyError::WindowOutside { domid, window });
    }
    if !window.base.is_multiple_of(WINDOW_SIZE) {
        return Err(TopologyError::WindowUnaligned { domid, window });
    }
    if !(FIRST_SPI..=LAST_SPI).contains(&window.spi) {
        return Err(TopologyError::SpiOutside { domid, window });
    }
    Ok(())
}

fn check_device(domid: u16, device: &Device, facts: &Facts) -> Result<(), TopologyError> {
    use TopologyError::*;
    let base = device.window.base;
    match device.kind {
        DeviceKind::Disk {
            backing: Backing::RamDisk { mib },
            ..
        } => {
            if !(1..=MAX_RAMDISK_MIB).contains(&mib) {
                return Err(RamDiskSize { domid, base, mib });
            }
        }
        DeviceKind::Disk {
            backing: Backing::HostDisk { offset, length },
            ..
        } => {
            if !facts.host_disk {
                return Err(NoHostDisk { domid, base });
            }
            if !offset.is_multiple_of(512) || length.is_some_and(|l| !l.is_multiple_of(512)) {
                return Err(RangeUnaligned { domid, base });
            }
            if length == Some(0) {
                return Err(RangeEmpty { domid, base });
            }
            if let Some(disk_bytes) = facts.host_disk_bytes {
                let end = match length {
                    Some(length) => offset.saturating_add(length),
                    None => offset,
                };
                if end > disk_bytes || (length.is_none() && offset >= disk_bytes) {
                    return Err(RangePastEnd {
                        domid,
                        base,
                        end,
                        disk_bytes,
                    });
                }
            }
        }
        DeviceKind::Nic { mac, mtu } => {
            if !(MIN_MTU..=MAX_MTU).contains(&mtu) {
                return Err(Mtu { domid, base, mtu });
            }
            if mac[0] & 1 != 0 || mac == [0; 6] {
                return Err(MacNotUnicast { domid, base });
            }
        }
    }
    Ok(())
}
