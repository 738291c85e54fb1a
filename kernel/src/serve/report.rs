//! Serve mode's console lines: `STUBVIRT-READY` per frontend once it is registered, and
//! the `STUBVIRT-COUNTERS` line (the ioreq loop's counts, then each device's). With one
//! frontend, devices are named `blk`, `net`, `disk`; with several, `fe<domid>.blk` etc.

use super::setup::FrontendServer;
use alloc::string::String;
use core::fmt::Write;
use devices::backend::Backend;
use devices::ioreq_loop::IoreqStats;

/// `STUBVIRT-READY frontend=N vcpus=V devices=blk@0x...,... ramdisk_sectors=S
/// blk_queues=Q buffers=...`
pub fn ready(server: &FrontendServer, copy_buffers: bool) -> String {
    let mut devices = String::new();
    let mut sectors = 0;
    let mut queues = 0;
    for (i, device) in server.devices.iter().enumerate() {
        let _ = write!(
            devices,
            "{}{}@{:#x}",
            if i == 0 { "" } else { "," },
            device.name,
            device.base
        );
        if device.name == "blk" && sectors == 0 {
            sectors = device.sectors;
            queues = device.queues;
        }
    }
    alloc::format!(
        "STUBVIRT-READY frontend={} vcpus={} devices={devices} ramdisk_sectors={sectors} blk_queues={queues} buffers={}",
        server.domid,
        server.vcpus.len(),
        if copy_buffers { "copied" } else { "mapped" }
    )
}

/// The counters line. A frontend that went away keeps its place with its final counts.
pub fn counters(
    servers: &[FrontendServer],
    stats: &[IoreqStats],
    irq_errors: u64,
    backend: &Backend,
) -> String {
    let mut out = String::new();
    let total = |f: fn(&IoreqStats) -> u64| stats.iter().map(f).sum::<u64>();
    let _ = write!(
        out,
        "STUBVIRT-COUNTERS ioreqs={} per_vcpu=",
        total(|s| s.ioreqs)
    );
    let several = servers.len() > 1;
    for (n, server) in servers.iter().enumerate() {
        if several {
            let _ = write!(out, "{}{}:", if n == 0 { "" } else { "," }, server.domid);
        }
        let served = server
            .departed
            .clone()
            .unwrap_or_else(|| server.vcpus.iter().map(|v| v.served).collect());
        for (i, count) in served.iter().enumerate() {
            let _ = write!(out, "{}{count}", if i == 0 { "" } else { "/" });
        }
    }
    let _ = write!(
        out,
        " ioreq_errors={} send_errors={} irq_errors={irq_errors}",
        total(|s| s.ioreq_errors),
        total(|s| s.notify_failures)
    );
    for server in servers {
        for device in &server.devices {
            let Some(c) = backend.counters(device.index) else {
                continue;
            };
            let errors = c.request_errors
                + c.queue_errors
                + c.mmio_errors
                + c.map_failures
                + c.unmap_failures
                + c.storage_errors;
            let _ = write!(out, " ");
            if several {
                let _ = write!(out, "fe{}.", server.domid);
            }
            let _ = write!(
                out,
                "{}=req:{},in:{},out:{},maps:{},pages:{},unmaps:{},held:{},irqs:{},tx:{},rx:{},err:{},status:{:#x}",
                device.name,
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
                backend.status(device.index).unwrap_or(0)
            );
            // A NIC's port: frames the switch dropped on their way in or out, and the
            // segments it cut from GSO frames for this driver.
            if let Some(port) = backend.port_stats(device.index) {
                let dropped = port
                    .dropped_backlog_full
                    .saturating_add(port.dropped_no_pool)
                    .saturating_add(port.dropped_spoofed)
                    .saturating_add(c.rx_dropped_too_big);
                let _ = write!(out, ",drops:{dropped},segs:{}", c.gso_segments);
            }
        }
    }
    out
}

/// `STUBVIRT-XL-RELEASED frontend=N devices=D pages_held=P ioreq_server=released
/// channels=C/C`: xl removed the frontend's devices (or marked them closing).
pub fn xl_released(
    domid: crate::xen::abi::DomainId,
    detached: devices::backend::Detached,
    released: &super::lifecycle::Released,
) {
    let _ = writeln!(
        crate::console::Writer,
        "STUBVIRT-XL-RELEASED frontend={domid} devices={} pages_held={} ioreq_server={} channels={}/{}",
        detached.devices,
        detached.pages_held,
        if released.ioreq_server { "released" } else { "kept" },
        released.channels_closed,
        released.channels
    );
}
