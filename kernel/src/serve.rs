//! Serve mode: stubvirt as the device model of one frontend domain (`serve=1` or
//! `frontend=<domid>` on the command line). Registers an IOREQ server for the frontend,
//! maps its ioreq page, claims one MMIO window per device, binds every vcpu's ioreq event
//! channel, then answers trapped register accesses and serves the queues forever.
//!
//! Hypercall sequence (the same as `../shared/reference/ioreq-backend-standin.c`, done with
//! our own hypercalls): `XEN_DMOP_create_ioreq_server` (no buffered ioreqs),
//! `XENMEM_acquire_resource` of ioreq page 0 into a grant-window frame,
//! `XEN_DMOP_map_io_range_to_ioreq_server` per device, `XEN_DMOP_set_ioreq_server_state`,
//! `XEN_DMOP_nr_vcpus`, `EVTCHNOP_bind_interdomain` per vcpu slot; then `SCHEDOP_poll`,
//! `EVTCHNOP_send` after each answer and `XEN_DMOP_set_irq_level` for interrupts.

use crate::arch::{BootInfo, PAGE_SIZE};
use crate::cmdline;
use crate::hostdev;
use crate::mem;
use crate::uplink::Uplink;
use crate::xen::abi::dm_op::{IoServId, XEN_DMOP_IO_RANGE_MEMORY};
use crate::xen::abi::event_channel::Port;
use crate::xen::abi::DomId;
use crate::xen::grant_copier::XenCopier;
use crate::xen::guest_memory::GrantMemory;
use crate::xen::hypercall::XenError;
use crate::xen::ioreq_page::{IoreqPage, MAX_VCPUS};
use crate::xen::vcpu_channel::EventSlot;
use crate::xen::{dm_op, evtchn, sched, window};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use devices::backend::{Backend, DomainId, Frontends, Interrupt};
use devices::blk::backend::{BlockBackend, RamDisk, SECTOR_SIZE};
use devices::blk::BlkOptions;
use devices::buffer_route::BufferRoute;
use devices::copy_route::{CopyRoute, CopyStats};
use devices::ioreq_loop::{self, IoreqStats, Vcpu};
use devices::net::NetOptions;
use devices::topology::{Window, WINDOW_SIZE};

/// The RAM disk, the NIC and the host's own disk (when there is one) sit in windows 0, 1
/// and 2 of Xen's virtio-mmio layout (the frontend's partial device tree).
const BLK: Window = Window::nth(0);
const NET: Window = Window::nth(1);
const DISK: Window = Window::nth(2);
/// Longest block without work: the counters are checked at least this often.
const POLL_NS: u64 = 1_000_000_000;
/// Poll timeout while a notification is owed (a failed `EVTCHNOP_send` is retried).
const RETRY_NS: u64 = 1_000_000;
/// Minimum time between two counter lines.
const COUNTERS_EVERY_NS: u64 = 2_000_000_000;
const DEFAULT_RAMDISK_MB: u64 = 16;
const MAX_RAMDISK_MB: u64 = 1024;
const DEFAULT_MAC: [u8; 6] = devices::topology::DEFAULT_MAC;
const DEFAULT_MTU: u16 = devices::topology::MAX_MTU;
const NET_PORTS: usize = 4;

/// What the command line asked for.
pub struct Config {
    pub frontend: DomId,
    /// `frontend_vcpus=`: used when `XEN_DMOP_nr_vcpus` fails.
    pub vcpus: Option<u32>,
    pub ramdisk_mb: u64,
    /// Request buffers by `GNTTABOP_copy` (the default) or mapped (`grant_route=map`).
    /// `cargo xtask grant-bench` measured copying 8-30x faster than map + copy + unmap on
    /// Xen 4.17 at every size from 64 B to 64 KiB (a map changes our physmap and makes Xen
    /// flush TLBs; a copy maps nothing).
    pub copy_buffers: bool,
    /// Whether the uplink NIC's interrupt ends the poll (`uplink_irq=off`: poll it).
    pub uplink_irq: bool,
}

/// The serve-mode configuration, if the command line asks for it (`serve=1` serves domain
/// 1, the first dom0less domU; `frontend=N` serves domain N).
pub fn requested(cmdline: &str) -> Option<Config> {
    Some(Config {
        frontend: cmdline::serve_frontend(cmdline)?,
        vcpus: cmdline::number(cmdline, "frontend_vcpus").and_then(|n| u32::try_from(n).ok()),
        ramdisk_mb: cmdline::number(cmdline, "ramdisk_mb")
            .unwrap_or(DEFAULT_RAMDISK_MB)
            .clamp(1, MAX_RAMDISK_MB),
        copy_buffers: cmdline::value_of(cmdline, "grant_route") != Some("map"),
        uplink_irq: cmdline::value_of(cmdline, "uplink_irq") != Some("off"),
    })
}

/// The embedded RAM disk, in frames taken from the frame allocator (the heap is too
/// small for it).
fn frame_disk(mb: u64) -> Option<RamDisk<&'static mut [u8]>> {
    let data = mem::alloc_static((mb * 1024 * 1024).div_ceil(PAGE_SIZE as u64))?;
    Some(RamDisk::over(data, "stubvirt-ramdisk"))
}

/// The one frontend's memory, reached through its grants: everything mapped, or request
/// buffers copied (the default; `grant_route=map` maps them).
struct OneFrontend {
    domid: DomId,
    memory: BufferRoute<GrantMemory, XenCopier>,
}

impl OneFrontend {
    fn new(domid: DomId, copy_buffers: bool) -> Self {
        let mapped = GrantMemory::new(domid);
        let memory = if copy_buffers {
            BufferRoute::Copied(CopyRoute::new(mapped, XenCopier { frontend: domid }))
        } else {
            BufferRoute::Mapped(mapped)
        };
        Self { domid, memory }
    }

    /// Grant copies made and refused (copy route only).
    fn copy_stats(&self) -> Option<CopyStats> {
        self.memory.copy_route().map(|route| route.stats())
    }
}

impl Frontends for OneFrontend {
    type Memory = BufferRoute<GrantMemory, XenCopier>;

    fn memory(&mut self, domain: DomainId) -> Option<&mut Self::Memory> {
        (domain == self.domid).then_some(&mut self.memory)
    }
}

/// The IOREQ server set up for the frontend: one entry per frontend vcpu.
struct Server {
    vcpus: Vec<Vcpu<EventSlot>>,
}

fn fail(what: &str, e: XenError) -> String {
    alloc::format!("{what}: {e}")
}

/// The registration sequence; returns the bound slots.
fn register(
    boot: &BootInfo,
    fe: DomId,
    cfg: &Config,
    windows: &[(u64, &str)],
) -> Result<(IoServId, Server), String> {
    window::init(boot.grant_window_gpa);
    evtchn::init_shared_info().map_err(|e| fail("shared info", e))?;
    let id = dm_op::create_ioreq_server(fe).map_err(|e| fail("XEN_DMOP_create_ioreq_server", e))?;
    log::info!("serve: ioreq server {id} for domain {fe}");
    let page =
        IoreqPage::acquire(fe, id).map_err(|e| fail("XENMEM_acquire_resource(ioreq page 0)", e))?;
    for &(base, what) in windows {
        dm_op::map_io_range(
            fe,
            id,
            XEN_DMOP_IO_RANGE_MEMORY,
            base,
            base + WINDOW_SIZE - 1,
        )
        .map_err(|e| {
            fail(
                &alloc::format!("XEN_DMOP_map_io_range_to_ioreq_server({what})"),
                e,
            )
        })?;
    }
    dm_op::set_ioreq_server_state(fe, id, true)
        .map_err(|e| fail("XEN_DMOP_set_ioreq_server_state", e))?;
    let vcpus = match dm_op::nr_vcpus(fe) {
        Ok(n) => n,
        Err(e) => {
            let n = cfg.vcpus.unwrap_or(1);
            log::warn!("serve: XEN_DMOP_nr_vcpus failed ({e}); using frontend_vcpus={n}");
            n
        }
    }
    .clamp(1, MAX_VCPUS as u32);
    let count = vcpus;
    let mut vcpus = Vec::new();
    for v in 0..count as usize {
        let ioreq = page.slot(v).ok_or("vcpu past the ioreq page")?;
        let remote = ioreq.vp_eport();
        let port = evtchn::bind_interdomain(fe, remote).map_err(|e| {
            fail(
                &alloc::format!("EVTCHNOP_bind_interdomain(vcpu {v} port {remote})"),
                e,
            )
        })?;
        // Polled, never delivered as an upcall.
        evtchn::mask(port);
        log::info!("serve: vcpu {v}: remote port {remote} bound to local port {port}");
        vcpus.push(Vcpu::new(EventSlot { ioreq, port }));
    }
    Ok((id, Server { vcpus }))
}

/// Runs serve mode; never returns.
pub fn run(boot: &BootInfo, cfg: &Config) -> ! {
    let fe = cfg.frontend;
    let mut backend = Backend::new(NET_PORTS, usize::from(DEFAULT_MTU) + 18);
    let Some(ramdisk) = frame_disk(cfg.ramdisk_mb) else {
        panic!("no RAM for a {} MiB RAM disk", cfg.ramdisk_mb);
    };
    let sectors = ramdisk.capacity_bytes() / SECTOR_SIZE;
    let blk = backend.add_blk(
        fe,
        BLK.base,
        BLK.spi,
        Box::new(ramdisk),
        BlkOptions::default(),
    );
    let net = backend.add_net(
        fe,
        NET.base,
        NET.spi,
        NetOptions {
            mac: DEFAULT_MAC,
            mtu: DEFAULT_MTU,
        },
    );
    let mut windows = alloc::vec![(BLK.base, "blk"), (NET.base, "net")];
    let host = hostdev::probe(boot);
    let disk = host.disk.map(|disk| {
        windows.push((DISK.base, "disk"));
        backend.add_blk(
            fe,
            DISK.base,
            DISK.spi,
            Box::new(disk),
            BlkOptions::default(),
        )
    });
    let mut uplink = host
        .nic
        .and_then(|nic| Uplink::new(&mut backend, nic, boot, cfg.uplink_irq));
    let (_id, mut server) = match register(boot, fe, cfg, &windows) {
        Ok(s) => s,
        Err(why) => {
            let _ = writeln!(
                crate::console::Writer,
                "STUBVIRT-SERVE-FAILED frontend={fe} {why}"
            );
            panic!("serve mode: {why}");
        }
    };
    let mut devices = String::new();
    for (i, (base, name)) in windows.iter().enumerate() {
        let _ = write!(devices, "{}{name}@{base:#x}", if i == 0 { "" } else { "," });
    }
    let mut ready = alloc::format!(
        "STUBVIRT-READY frontend={fe} vcpus={} devices={devices} ramdisk_sectors={sectors} buffers={}",
        server.vcpus.len(),
        if cfg.copy_buffers { "copied" } else { "mapped" }
    );
    if let Some(uplink) = &uplink {
        uplink.describe(&mut ready);
    }
    let _ = writeln!(crate::console::Writer, "{ready}");
    let mut frontends = OneFrontend::new(fe, cfg.copy_buffers);
    let mut ports: Vec<Port> = server.vcpus.iter().map(|v| v.channel.port).collect();
    let mut stats = IoreqStats::default();
    let mut irq_errors = 0u64;
    let mut errors_logged = 0u32;
    let mut last_line = String::new();
    let mut last_print = 0u64;
    let devices = Devices { blk, net, disk };
    loop {
        // Bounded: each vcpu's slot is answered at most once per pass.
        let served = ioreq_loop::serve_pass(
            &mut backend,
            &mut frontends,
            fe,
            &mut server.vcpus,
            &mut stats,
            &mut |req, e| {
                if errors_logged < 8 {
                    errors_logged += 1;
                    log::warn!("serve: ioreq {req:?}: {e:?}");
                }
            },
        );
        let mut more = backend.run(&mut frontends, &mut |irq: Interrupt| {
            let raised = dm_op::set_irq_level(irq.frontend, irq.irq, true).is_ok();
            // Edge SPI: lower it again at once.
            let lowered = dm_op::set_irq_level(irq.frontend, irq.irq, false).is_ok();
            irq_errors += u64::from(!raised) + u64::from(!lowered);
            raised
        });
        let now = evtchn::system_time_ns();
        if let Some(uplink) = uplink.as_mut() {
            more |= uplink.service(&mut backend, now);
        }
        if now.saturating_sub(last_print) >= COUNTERS_EVERY_NS {
            let mut line = counters_line(&stats, irq_errors, &backend, &devices, &server.vcpus);
            if let Some(uplink) = &uplink {
                uplink.counters(&backend, &mut line);
            }
            if let Some(c) = frontends.copy_stats() {
                let _ = write!(line, " copies={} copy_refused={}", c.copies, c.refused);
            }
            let _ = write!(line, " heap_used={}/{}", mem::heap_used(), mem::HEAP_BYTES);
            if line != last_line {
                let _ = writeln!(crate::console::Writer, "{line}");
                last_line = line;
            }
            last_print = now;
        }
        if served == 0 && !more {
            let timeout = if ioreq_loop::notify_owed(&server.vcpus) {
                RETRY_NS
            } else {
                uplink.as_ref().map_or(POLL_NS, |u| u.poll_timeout(now))
            };
            if let Err(e) = sched::poll(&mut ports, now.saturating_add(timeout)) {
                log::error!("serve: SCHEDOP_poll: {e}");
            }
        }
    }
}

/// The devices the counters line reports.
struct Devices {
    blk: usize,
    net: Option<usize>,
    disk: Option<usize>,
}

/// The counters line: the ioreq loop's counts, then each device's.
fn counters_line(
    stats: &IoreqStats,
    irq_errors: u64,
    backend: &Backend,
    devices: &Devices,
    vcpus: &[Vcpu<EventSlot>],
) -> String {
    let mut out = String::new();
    let _ = write!(out, "STUBVIRT-COUNTERS ioreqs={} per_vcpu=", stats.ioreqs);
    for (i, vcpu) in vcpus.iter().enumerate() {
        let _ = write!(out, "{}{}", if i == 0 { "" } else { "/" }, vcpu.served);
    }
    let _ = write!(
        out,
        " ioreq_errors={} send_errors={} irq_errors={irq_errors}",
        stats.ioreq_errors, stats.notify_failures
    );
    for (name, index) in [
        ("blk", Some(devices.blk)),
        ("net", devices.net),
        ("disk", devices.disk),
    ] {
        let Some(c) = index.and_then(|i| backend.counters(i)) else {
            continue;
        };
        let errors = c.request_errors
            + c.queue_errors
            + c.mmio_errors
            + c.map_failures
            + c.unmap_failures
            + c.storage_errors;
        let _ = write!(
                out,
                " {name}=req:{},in:{},out:{},maps:{},pages:{},unmaps:{},held:{},irqs:{},tx:{},rx:{},err:{},status:{:#x}",
                c.requests,
                c.bytes_from_guest,
                c.bytes_to_guest,
                c.map_batches,
                c.pages_mapped,
                c.unmap_batches,
                c.pages_held(),
                c.interrupts,
                c.frames_tx,
                c.frames_rx,
                errors,
                index.and_then(|i| backend.status(i)).unwrap_or(0)
            );
    }
    out
}
