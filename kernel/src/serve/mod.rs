//! Serve mode: stubvirt as the device model of its frontends. What it serves is the
//! topology of its device tree (a `stubvirt,backend` node, written by `cargo xtask config
//! FILE`), else one frontend from the command line (`frontend=<domid>`, or `serve=1` for
//! domain 1) with a RAM disk, a NIC and the host's disk. The topology is checked first;
//! then one IOREQ server per frontend (its ioreq page, one MMIO window per device, every
//! vcpu's event channel bound), then one loop answers trapped register accesses and
//! serves the queues of every frontend, forever.
//!
//! Hypercall sequence per frontend (the same as `../shared/reference/ioreq-backend-standin.c`,
//! done with our own hypercalls): `XEN_DMOP_create_ioreq_server` (no buffered ioreqs),
//! `XENMEM_acquire_resource` of ioreq page 0 into a grant-window frame,
//! `XEN_DMOP_map_io_range_to_ioreq_server` per device, `XEN_DMOP_set_ioreq_server_state`,
//! `XEN_DMOP_nr_vcpus`, `EVTCHNOP_bind_interdomain` per vcpu slot; then `SCHEDOP_poll`,
//! `EVTCHNOP_send` after each answer and `XEN_DMOP_set_irq_level` for interrupts.

mod confine;
mod lifecycle;
mod memories;
mod privilege;
mod report;
mod setup;
mod xl_devices;

use crate::arch::BootInfo;
use crate::cmdline;
use crate::hostdev;
use crate::mem;
use crate::uplink::UplinkDriver;
use crate::xen::abi::event_channel::Port;
use crate::xen::abi::DomainId;
use crate::xen::{dm_op, evtchn, sched};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use devices::backend::{Backend, Interrupt};
use devices::blk::backend::BlockBackend;
use devices::ioreq_loop::{self, IoreqStats};
use devices::topology::{self, Facts, Topology};
use memories::Memories;
use setup::FrontendServer;
use xl_devices::XlDevices;

/// Longest block without work: the counters are checked at least this often.
const POLL_NS: u64 = 1_000_000_000;
/// Poll timeout while a notification is owed (a failed `EVTCHNOP_send` is retried).
const RETRY_NS: u64 = 1_000_000;
/// Minimum time between two counter lines.
const COUNTERS_EVERY_NS: u64 = 2_000_000_000;
const DEFAULT_RAMDISK_MB: u64 = 16;
/// Switch ports: the frontends' NICs and the uplink.
const NET_PORTS: usize = topology::NIC_PORTS + 1;

/// What the command line asked for.
pub struct Config {
    /// `frontend=`/`serve=1`: the one frontend served when no topology is described.
    pub frontend: Option<DomainId>,
    /// `frontend_vcpus=`: used when `XEN_DMOP_nr_vcpus` fails.
    pub vcpus: Option<u32>,
    pub ramdisk_mb: u64,
    /// Request buffers by `GNTTABOP_copy` (the default) or mapped (`grant_route=map`).
    /// `cargo xtask grant-bench` measured copying 8-30x faster than map + copy + unmap on
    /// Xen 4.17 at every size from 64 B to 64 KiB (a map changes our physmap and makes Xen
    /// flush TLBs; a copy maps nothing).
    pub copy_buffers: bool,
    /// `indirect=on`: offer `VIRTIO_F_INDIRECT_DESC`. Off by default: measured with Linux
    /// frontends (`cargo xtask bench-e2e`), each indirect table costs Xen a map and an
    /// unmap per request, and 4 KiB QD 32 ran about 1.7x faster without.
    pub indirect: bool,
    /// Whether the uplink NIC's interrupt ends the poll (`uplink_irq=off`: poll it).
    pub uplink_irq: bool,
    /// `blk_queues=N`: request queues per disk (default 1; at most the frontend's vcpus).
    pub blk_queues: Option<u16>,
    /// `frontend_exit=destroy`: destroy a frontend that shut down or crashed once it is
    /// released (needs control-domain rights); by default it is left to its owner.
    pub destroy_exited: bool,
    /// `privilege_test=1`: try what a backend must not be able to do, before serving;
    /// `privilege_bystander=N`: also against domain N, which it does not serve.
    pub privilege_test: bool,
    pub privilege_bystander: Option<DomainId>,
    /// `confine=flask`: relabel itself and its frontends into its FLASK policy's types
    /// before registering anything (refuses to serve if that fails).
    pub confine: bool,
    /// `discover=xenstore`: the xl route; frontends and devices come from xenstore while
    /// serving, none at boot.
    pub discover: bool,
}

/// The serve-mode configuration, if the command line or the device tree asks for it.
pub fn requested(boot: &BootInfo) -> Option<Config> {
    let cmdline = boot.cmdline;
    let frontend = cmdline::serve_frontend(cmdline);
    let discover = cmdline::value_of(cmdline, "discover") == Some("xenstore");
    if frontend.is_none() && !discover && !described(boot) {
        return None;
    }
    Some(Config {
        frontend,
        vcpus: cmdline::number(cmdline, "frontend_vcpus").and_then(|n| u32::try_from(n).ok()),
        ramdisk_mb: cmdline::number(cmdline, "ramdisk_mb").unwrap_or(DEFAULT_RAMDISK_MB),
        copy_buffers: cmdline::value_of(cmdline, "grant_route") != Some("map"),
        indirect: cmdline::value_of(cmdline, "indirect") == Some("on"),
        uplink_irq: cmdline::value_of(cmdline, "uplink_irq") != Some("off"),
        blk_queues: cmdline::number(cmdline, "blk_queues").and_then(|n| u16::try_from(n).ok()),
        destroy_exited: cmdline::value_of(cmdline, "frontend_exit") == Some("destroy"),
        privilege_test: cmdline::value_of(cmdline, "privilege_test") == Some("1"),
        privilege_bystander: cmdline::number(cmdline, "privilege_bystander")
            .and_then(|n| DomainId::try_from(n).ok()),
        confine: cmdline::value_of(cmdline, "confine") == Some("flask"),
        discover,
    })
}

/// Whether the device tree has a `stubvirt,backend` node.
fn described(boot: &BootInfo) -> bool {
    fdt::Fdt::new(boot.dtb).is_ok_and(|fdt| {
        fdt.find_compatible(&[topology::device_tree::COMPATIBLE])
            .is_some()
    })
}

/// The topology to serve: the device tree's, else the command line's one frontend.
fn topology(boot: &BootInfo, cfg: &Config, host_disk: bool) -> Result<Topology, String> {
    if let Ok(fdt) = fdt::Fdt::new(boot.dtb) {
        if let Some(t) = topology::device_tree::read(&fdt).map_err(|e| alloc::format!("{e}"))? {
            return Ok(t);
        }
    }
    let frontend = cfg
        .frontend
        .ok_or("no frontend= and no stubvirt,backend node")?;
    let mib = u32::try_from(cfg.ramdisk_mb).unwrap_or(u32::MAX);
    Ok(Topology::single(
        frontend,
        cfg.vcpus.unwrap_or(1),
        mib,
        host_disk,
    ))
}

/// The ports the idle loop waits on: every vcpu's ioreq channel, the exception virq and
/// xenstore's channel (xl route).
fn poll_set(
    servers: &[FrontendServer],
    watch: &lifecycle::Watch,
    xl: Option<&XlDevices>,
) -> Vec<Port> {
    servers
        .iter()
        .flat_map(|s| s.vcpus.iter().map(|v| v.channel.port))
        .chain(watch.port())
        .chain(xl.map(XlDevices::port))
        .collect()
}

/// Stops serve mode before anything is served, with one line saying why.
fn refuse(tag: &str, why: &str) -> ! {
    let _ = writeln!(crate::console::Writer, "{tag} {why}");
    panic!("serve mode: {why}");
}

/// Runs serve mode; never returns.
pub fn run(boot: &BootInfo, cfg: &Config) -> ! {
    let host = hostdev::probe(boot);
    let host_disk_bytes = host.disk.as_ref().map(|d| d.capacity_bytes());
    let topology = if cfg.discover {
        Topology {
            frontends: Vec::new(),
            uplink: true,
        }
    } else {
        topology(boot, cfg, host.disk.is_some())
            .unwrap_or_else(|why| refuse("STUBVIRT-CONFIG-REFUSED", &why))
    };
    let facts = Facts {
        backend_domid: evtchn::own_domid().unwrap_or(0),
        host_disk_bytes,
        host_disk: host_disk_bytes.is_some(),
        nic_ports: topology::NIC_PORTS,
    };
    if let (false, Err(why)) = (cfg.discover, topology.check(&facts)) {
        refuse("STUBVIRT-CONFIG-REFUSED", &alloc::format!("{why}"));
    }
    // Dom0less builds every domain before it starts any, so a frontend missing now is a
    // domid the description got wrong.
    if let Some(missing) = topology
        .frontends
        .iter()
        .find(|f| crate::xen::domain::exists(f.domid) == Some(false))
    {
        let why = alloc::format!("frontend {}: no such domain", missing.domid);
        refuse("STUBVIRT-CONFIG-REFUSED", &why);
    }
    if cfg.confine {
        let domids: Vec<DomainId> = topology.frontends.iter().map(|f| f.domid).collect();
        if let Err(why) = confine::confine(&domids) {
            refuse("STUBVIRT-CONFINE-FAILED", &why);
        }
    }
    let mut backend = Backend::new(NET_PORTS, topology::MAX_FRAME);
    backend.offer_indirect_descriptors(cfg.indirect);
    let host_disk = host.disk.map(setup::share);
    let mut servers: Vec<FrontendServer> = Vec::new();
    let result = setup::init_xen(boot).and_then(|()| {
        for frontend in &topology.frontends {
            let devices =
                setup::add_devices(&mut backend, frontend, host_disk.as_ref(), cfg.blk_queues)?;
            let server = setup::register(frontend.domid, frontend.vcpus, devices)
                .map_err(|why| alloc::format!("frontend={} {why}", frontend.domid))?;
            servers.push(server);
        }
        Ok(())
    });
    if let Err(why) = result {
        refuse("STUBVIRT-SERVE-FAILED", &why);
    }
    let mut uplink = if topology.uplink {
        host.nic
            .and_then(|nic| UplinkDriver::new(&mut backend, nic, boot, cfg.uplink_irq))
    } else {
        None
    };
    for server in &servers {
        let mut ready = report::ready(server, cfg.copy_buffers);
        if let Some(uplink) = &uplink {
            uplink.describe(&mut ready);
        }
        let _ = writeln!(crate::console::Writer, "{ready}");
    }
    if let (true, Some(first)) = (cfg.privilege_test, servers.first()) {
        privilege::run(facts.backend_domid, first.domid, cfg.privilege_bystander);
    }
    let mut watch = lifecycle::Watch::start(facts.backend_domid, !cfg.discover);
    let _ = writeln!(crate::console::Writer, "{}", watch.describe());
    let mut xl = cfg.discover.then(|| {
        let mib = u32::try_from(cfg.ramdisk_mb).unwrap_or(u32::MAX);
        XlDevices::start(mib).unwrap_or_else(|why| refuse("STUBVIRT-XL-FAILED", &why))
    });
    if xl.is_some() {
        let _ = writeln!(
            crate::console::Writer,
            "STUBVIRT-XL-WATCHING backend=dom{} dir=backend/virtio",
            facts.backend_domid
        );
    }
    let mut memories = Memories::new(servers.iter().map(|s| s.domid), cfg.copy_buffers);
    let mut ports = poll_set(&servers, &watch, xl.as_ref());
    let mut stats: Vec<IoreqStats> = servers.iter().map(|_| IoreqStats::default()).collect();
    let mut irq_errors = 0u64;
    let mut errors_logged = 0u32;
    let mut last_line = String::new();
    let mut last_print = 0u64;
    loop {
        // Bounded per frontend: each vcpu's slot is answered at most once per pass, and
        // each device serves at most its quota of chains and bytes.
        let mut served = 0;
        for (server, stats) in servers.iter_mut().zip(stats.iter_mut()) {
            served += ioreq_loop::serve_pass(
                &mut backend,
                &mut memories,
                server.domid,
                &mut server.vcpus,
                stats,
                &mut |req, e| {
                    if errors_logged < 8 {
                        errors_logged += 1;
                        log::warn!("serve: ioreq {req:?}: {e:?}");
                    }
                },
            );
        }
        let now = evtchn::system_time_ns();
        let mut more = backend.run(&mut memories, now, &mut |irq: Interrupt| {
            let raised = dm_op::set_irq_level(irq.frontend, irq.irq, true).is_ok();
            // Edge SPI: lower it again at once.
            let lowered = dm_op::set_irq_level(irq.frontend, irq.irq, false).is_ok();
            irq_errors += u64::from(!raised) + u64::from(!lowered);
            raised
        });
        let live = servers
            .iter()
            .filter(|s| s.departed.is_none())
            .map(|s| s.domid);
        let gone = watch.check(now, live);
        for gone in &gone {
            if let Some((detached, released)) =
                lifecycle::release_frontend(&mut servers, &mut backend, &mut memories, gone.domid)
            {
                lifecycle::report_gone(gone, detached, &released);
            }
            if let Some(xl) = xl.as_mut() {
                xl.released(gone.domid);
            }
            if cfg.destroy_exited {
                lifecycle::destroy(gone.domid);
            }
        }
        let mut changed = !gone.is_empty();
        let xl_changes = xl.as_mut().and_then(|xl| {
            crate::xen::evtchn::clear_pending(xl.port());
            xl.changes(now)
        });
        if let (Some(xl), Some(changes)) = (xl.as_mut(), xl_changes) {
            for domid in changes.release {
                if let Some((detached, released)) =
                    lifecycle::release_frontend(&mut servers, &mut backend, &mut memories, domid)
                {
                    report::xl_released(domid, detached, &released);
                }
                xl.released(domid);
            }
            for new in &changes.serve {
                let domid = new.frontend.domid;
                let serving = xl_devices::serve_new(
                    &mut backend,
                    &mut memories,
                    &mut servers,
                    new,
                    &facts,
                    cfg,
                    host_disk.as_ref(),
                );
                match serving {
                    Ok(at) => {
                        if let Some(server) = servers.get(at) {
                            let _ = writeln!(
                                crate::console::Writer,
                                "{}",
                                report::ready(server, cfg.copy_buffers)
                            );
                        }
                        stats.resize_with(servers.len(), IoreqStats::default);
                        xl.served(new);
                    }
                    Err(why) => {
                        let _ = writeln!(
                            crate::console::Writer,
                            "STUBVIRT-XL-SERVE-FAILED frontend={domid} {why}"
                        );
                        // Nothing half-served: what it had already goes too.
                        if let Some((detached, released)) = lifecycle::release_frontend(
                            &mut servers,
                            &mut backend,
                            &mut memories,
                            domid,
                        ) {
                            report::xl_released(domid, detached, &released);
                        }
                        xl.released(domid);
                    }
                }
            }
            changed = true;
        }
        if changed {
            ports = poll_set(&servers, &watch, xl.as_ref());
        }
        if let Some(uplink) = uplink.as_mut() {
            more |= uplink.service(&mut backend, now);
        }
        if now.saturating_sub(last_print) >= COUNTERS_EVERY_NS {
            let mut line = report::counters(&servers, &stats, irq_errors, &backend);
            if let Some(uplink) = &uplink {
                uplink.counters(&backend, &mut line);
            }
            if let Some(c) = memories.copy_stats() {
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
            let owed = servers.iter().any(|s| ioreq_loop::notify_owed(&s.vcpus));
            let timeout = if owed {
                RETRY_NS
            } else {
                uplink.as_ref().map_or(POLL_NS, |u| u.poll_timeout(now))
            };
            // A tx queue waiting for a receiver gives up at its deadline even if no
            // event comes (devices::net::TX_BLOCK_LIMIT_NS).
            let timeout = backend
                .next_deadline()
                .map_or(timeout, |at| timeout.min(at.saturating_sub(now)));
            if let Err(e) = sched::poll(&mut ports, now.saturating_add(timeout)) {
                log::error!("serve: SCHEDOP_poll: {e}");
            }
        }
    }
}
