//! The system a driver domain serves, described once: which frontends, which devices
//! each gets at which register window and interrupt, what backs each disk, each NIC's
//! address, and whether the uplink is on. The host tool writes it (from a user's TOML
//! file) into Xen's boot device trees; the kernel reads it back from its own device tree
//! and checks it with [`Topology::check`] before it serves anything.
//!
//! Windows and interrupts follow Xen's guest memory map for virtio-mmio
//! (`xen/include/public/arch-arm.h`), the same one libxl uses: window `n` is at
//! `0x0200_0000 + 0x200 * n` and raises SPI `33 + n`.

mod check;
pub mod device_tree;

pub use check::{Facts, TopologyError};

use alloc::vec::Vec;

/// `GUEST_VIRTIO_MMIO_BASE`: the first register window.
pub const FIRST_WINDOW: u64 = 0x0200_0000;
/// `GUEST_VIRTIO_MMIO_SIZE`: the guest-physical range for virtio-mmio windows.
pub const WINDOWS_SIZE: u64 = 0x0010_0000;
/// One virtio-mmio register window.
pub const WINDOW_SIZE: u64 = 0x200;
/// `GUEST_VIRTIO_MMIO_SPI_FIRST` and `_LAST`: the SPIs Xen sets aside for virtio-mmio.
pub const FIRST_SPI: u32 = 33;
pub const LAST_SPI: u32 = 43;
/// Frontends one stubvirt serves. Its heap is a fixed 2 MiB (`kernel/src/mem.rs`); under
/// the end-to-end load it held 1,461,016 bytes with one Linux frontend and 1,766,960 with
/// two (+306 KB each), so a third does not fit with a margin. More needs a larger heap.
pub const MAX_FRONTENDS: usize = 2;
/// Switch ports for frontends' NICs (the switch has one more, for the uplink).
pub const NIC_PORTS: usize = 3;
/// vcpus per frontend: the slots of one ioreq page.
pub const MAX_VCPUS: u32 = 64;
/// The largest RAM disk (MiB); RAM disks come from the backend's static memory.
pub const MAX_RAMDISK_MIB: u32 = 1024;
/// MTU range: IPv4's minimum up to the switch's standard frame (no jumbo frames).
pub const MIN_MTU: u16 = 68;
pub const MAX_MTU: u16 = 1500;
/// The largest frame a port switches: MTU plus the Ethernet header and a VLAN tag.
pub const MAX_FRAME: usize = MAX_MTU as usize + 18;

/// Where a device's registers and interrupt are in its frontend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub base: u64,
    /// The SPI number (INTID = 32 + spi; the device tree's `interrupts` cell is spi - 32).
    pub spi: u32,
}

impl Window {
    /// Window `n` of Xen's (and libxl's) layout. (Past the last, the values saturate:
    /// [`Topology::check`] refuses such a window.)
    pub const fn nth(n: u32) -> Window {
        Window {
            base: FIRST_WINDOW.saturating_add(WINDOW_SIZE.saturating_mul(n as u64)),
            spi: FIRST_SPI.saturating_add(n),
        }
    }

    /// The device tree's `interrupts` cell for this SPI (0 for an SPI below 32, which
    /// [`Topology::check`] refuses).
    pub const fn dt_interrupt(self) -> u32 {
        self.spi.saturating_sub(32)
    }

    fn overlaps(self, other: Window) -> bool {
        self.base < other.base.saturating_add(WINDOW_SIZE)
            && other.base < self.base.saturating_add(WINDOW_SIZE)
    }
}

/// What holds a virtual disk's blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// A RAM disk of its own, zeroed at boot.
    RamDisk { mib: u32 },
    /// A byte range of the physical disk stubvirt drives; `length: None` runs to its end.
    /// Several frontends share one disk by partitions this way, or read-only.
    HostDisk { offset: u64, length: Option<u64> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    Disk { backing: Backing, read_only: bool },
    Nic { mac: [u8; 6], mtu: u16 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Device {
    pub window: Window,
    pub kind: DeviceKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontend {
    pub domid: u16,
    /// vcpus to serve when Xen cannot say (`XEN_DMOP_nr_vcpus`).
    pub vcpus: u32,
    pub devices: Vec<Device>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub frontends: Vec<Frontend>,
    /// Whether the physical NIC (if there is one) joins the switch.
    pub uplink: bool,
}

impl Topology {
    /// The layout when nothing describes one: one frontend with a RAM disk (window 0), a
    /// NIC (window 1) and, when there is one, the whole physical disk (window 2).
    pub fn single(domid: u16, vcpus: u32, ramdisk_mib: u32, host_disk: bool) -> Topology {
        let mut devices = alloc::vec![
            Device {
                window: Window::nth(0),
                kind: DeviceKind::Disk {
                    backing: Backing::RamDisk { mib: ramdisk_mib },
                    read_only: false,
                },
            },
            Device {
                window: Window::nth(1),
                kind: DeviceKind::Nic {
                    mac: DEFAULT_MAC,
                    mtu: MAX_MTU,
                },
            },
        ];
        if host_disk {
            devices.push(Device {
                window: Window::nth(2),
                kind: DeviceKind::Disk {
                    backing: Backing::HostDisk {
                        offset: 0,
                        length: None,
                    },
                    read_only: false,
                },
            });
        }
        Topology {
            frontends: alloc::vec![Frontend {
                domid,
                vcpus,
                devices,
            }],
            uplink: true,
        }
    }

    /// Every device of every frontend, with its frontend's domid.
    pub fn devices(&self) -> impl Iterator<Item = (u16, &Device)> {
        self.frontends
            .iter()
            .flat_map(|f| f.devices.iter().map(move |d| (f.domid, d)))
    }
}

/// The NIC address of [`Topology::single`] (locally administered).
pub const DEFAULT_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x57, 0x56, 0x01];

#[cfg(test)]
mod tests;
