//! From the topology to a running backend: the devices it describes (RAM disks from the
//! frame allocator, slices of the host disk, NICs on the switch), then one IOREQ server
//! per frontend. Anything that fails stops the set-up: nothing is served half-configured.

use crate::arch::{BootInfo, PAGE_SIZE};
use crate::hostdev::HostDisk;
use crate::mem;
use crate::xen::abi::dm_op::{IoServId, XEN_DMOP_IO_RANGE_MEMORY};
use crate::xen::abi::DomainId;
use crate::xen::hypercall::XenError;
use crate::xen::ioreq_page::{IoreqPage, MAX_VCPUS};
use crate::xen::vcpu_channel::EventSlot;
use crate::xen::{dm_op, evtchn};
use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use devices::backend::{Backend, DeviceIndex};
use devices::blk::backend::{BlockBackend, RamDisk, SECTOR_SIZE};
use devices::blk::shared::{DiskSlice, SharedDisk};
use devices::blk::BlkOptions;
use devices::device::MAX_QUEUES;
use devices::ioreq_loop::Vcpu;
use devices::net::NetOptions;
use devices::topology::{Backing, DeviceKind, Frontend, WINDOW_SIZE};

/// A device as the counters name it: `blk` (RAM disk), `disk` (physical disk), `net`.
pub struct Served {
    pub index: DeviceIndex,
    pub name: &'static str,
    pub base: u64,
    /// A disk's size in sectors (0 for a NIC).
    pub sectors: u64,
    /// A disk's request queues (0 for a NIC).
    pub queues: u16,
}

/// One frontend's IOREQ server: a slot and event channel per vcpu, and its devices.
pub struct FrontendServer {
    pub domid: DomainId,
    /// Xen's id of the ioreq server.
    pub id: IoServId,
    pub vcpus: Vec<Vcpu<EventSlot>>,
    pub devices: Vec<Served>,
    /// Once the frontend went away (its vcpus' slots and channels released, its devices
    /// detached): the accesses each of its vcpus had, for the reports.
    pub departed: Option<Vec<u64>>,
}

fn fail(what: &str, e: XenError) -> String {
    alloc::format!("{what}: {e}")
}

/// A RAM disk in frames taken from the frame allocator (the heap is too small for it).
fn ram_disk(mib: u32) -> Option<RamDisk<&'static mut [u8]>> {
    let bytes = u64::from(mib) * 1024 * 1024;
    let data = mem::alloc_static(bytes.div_ceil(PAGE_SIZE as u64))?;
    Some(RamDisk::over(data, "stubvirt-ramdisk"))
}

/// Adds `frontend`'s devices to the backend.
pub fn add_devices(
    backend: &mut Backend,
    frontend: &Frontend,
    host_disk: Option<&SharedDisk>,
    blk_queues: Option<u16>,
) -> Result<Vec<Served>, String> {
    let domid = frontend.domid;
    // `blk_queues=N` offers N request queues per disk (VIRTIO_BLK_F_MQ), at most one per
    // frontend vcpu. One by default: with two, `fe_io`'s QD32 figures on the RAM disk
    // came out about half as high (4459 -> 2003 and 4148 -> 2746 read IOPS, two runs).
    let queues = blk_queues
        .unwrap_or(1)
        .clamp(1, MAX_QUEUES as u16)
        .min(u16::try_from(frontend.vcpus).unwrap_or(u16::MAX).max(1));
    let options = BlkOptions {
        queues,
        ..BlkOptions::default()
    };
    let mut served = Vec::new();
    for device in &frontend.devices {
        let (base, spi) = (device.window.base, device.window.spi);
        let (index, name, sectors, queues) = match device.kind {
            DeviceKind::Disk { backing, read_only } => {
                let (disk, name): (Box<dyn BlockBackend>, _) = match backing {
                    Backing::RamDisk { mib } => {
                        let disk = ram_disk(mib).ok_or_else(|| {
                            alloc::format!(
                                "frontend {domid} disk {base:#x}: no RAM left for a {mib} MiB RAM disk"
                            )
                        })?;
                        let disk = if read_only { disk.read_only() } else { disk };
                        (Box::new(disk), "blk")
                    }
                    Backing::HostDisk { offset, length } => {
                        let shared = host_disk.ok_or_else(|| {
                            alloc::format!("frontend {domid} disk {base:#x}: no physical disk")
                        })?;
                        let slice = DiskSlice::new(shared.clone(), offset, length, read_only);
                        (Box::new(slice), "disk")
                    }
                };
                let sectors = disk.capacity_bytes() / SECTOR_SIZE;
                (
                    backend.add_blk(domid, base, spi, disk, options),
                    name,
                    sectors,
                    queues,
                )
            }
            DeviceKind::Nic { mac, mtu } => {
                let index = backend
                    .add_net(domid, base, spi, NetOptions { mac, mtu })
                    .ok_or_else(|| {
                        alloc::format!("frontend {domid} nic {base:#x}: no switch port left")
                    })?;
                (index, "net", 0, 0)
            }
        };
        served.push(Served {
            index,
            name,
            base,
            sectors,
            queues,
        });
    }
    Ok(served)
}

/// The host disk, shared by every device the topology backs with it.
pub fn share(disk: HostDisk) -> SharedDisk {
    Rc::new(RefCell::new(disk))
}

/// Registers an IOREQ server for one frontend: `XEN_DMOP_create_ioreq_server`, its
/// ioreq page, every device window, the server on, and one bound event channel per vcpu.
/// `vcpus` is used when `XEN_DMOP_nr_vcpus` fails.
pub fn register(
    domid: DomainId,
    vcpus: u32,
    devices: Vec<Served>,
) -> Result<FrontendServer, String> {
    let id =
        dm_op::create_ioreq_server(domid).map_err(|e| fail("XEN_DMOP_create_ioreq_server", e))?;
    log::info!("serve: ioreq server {id} for domain {domid}");
    let page = IoreqPage::acquire(domid, id)
        .map_err(|e| fail("XENMEM_acquire_resource(ioreq page 0)", e))?;
    for device in &devices {
        map_window(domid, id, device)?;
    }
    dm_op::set_ioreq_server_state(domid, id, true)
        .map_err(|e| fail("XEN_DMOP_set_ioreq_server_state", e))?;
    let count = match dm_op::nr_vcpus(domid) {
        Ok(n) => n,
        Err(e) => {
            log::warn!("serve: XEN_DMOP_nr_vcpus({domid}) failed ({e}); using {vcpus}");
            vcpus
        }
    }
    .clamp(1, MAX_VCPUS as u32);
    let mut slots = Vec::new();
    for v in 0..count as usize {
        let ioreq = page.slot(v).ok_or("vcpu past the ioreq page")?;
        let remote = ioreq.vp_eport();
        let port = evtchn::bind_interdomain(domid, remote).map_err(|e| {
            fail(
                &alloc::format!("EVTCHNOP_bind_interdomain(vcpu {v} port {remote})"),
                e,
            )
        })?;
        // Polled, never delivered as an upcall.
        evtchn::mask(port);
        log::info!("serve: domain {domid} vcpu {v}: remote port {remote} -> local port {port}");
        slots.push(Vcpu::new(EventSlot { ioreq, port }));
    }
    Ok(FrontendServer {
        domid,
        id,
        vcpus: slots,
        devices,
        departed: None,
    })
}

/// Adds `devices` to a running server (the xl route describes a frontend's devices one
/// by one): their windows go to its IOREQ server.
pub fn extend(server: &mut FrontendServer, devices: Vec<Served>) -> Result<(), String> {
    for device in devices {
        map_window(server.domid, server.id, &device)?;
        server.devices.push(device);
    }
    Ok(())
}

/// Sends the accesses to `device`'s register window to IOREQ server `id`.
fn map_window(domid: DomainId, id: IoServId, device: &Served) -> Result<(), String> {
    let (base, name) = (device.base, device.name);
    dm_op::map_io_range(
        domid,
        id,
        XEN_DMOP_IO_RANGE_MEMORY,
        base,
        base + WINDOW_SIZE - 1,
    )
    .map_err(|e| {
        fail(
            &alloc::format!("XEN_DMOP_map_io_range_to_ioreq_server({name}@{base:#x})"),
            e,
        )
    })
}

/// The boot information the whole set-up needs once, before any server.
pub fn init_xen(boot: &BootInfo) -> Result<(), String> {
    crate::xen::window::init(boot.grant_window_gpa);
    evtchn::init_shared_info().map_err(|e| fail("shared info", e))
}
