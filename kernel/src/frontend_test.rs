//! Frontend test mode (`frontend_test=1`, arm64 domU only): stubvirt as a minimal virtio-mmio
//! frontend of the devices a dom0 stubvirt serves, with no Linux involved. Every access
//! below traps to Xen, which forwards it as an ioreq to the dom0 backend.
//!
//! Readiness: until the backend has registered the window, Xen answers an access with a
//! data abort. The first read of the magic register is a fault-catching probe
//! ([`crate::arch::probe`]) retried every [`RETRY_NS`] for at most [`READY_TIMEOUT_NS`].
//!
//! The backend's domid (whom the rings and buffers are granted to) is `backend=N` on the
//! command line: 0 (dom0) by default, the driver domain's domid on the route with no dom0.
//!
//! Prints `STUBVIRT-FRONTEND result=pass|fail ...`.

use crate::arch::probe;
use crate::arch::BootInfo;
use crate::mem;
use crate::xen::abi::DOMID_SELF;
use crate::xen::grant::GrantTable;
use crate::xen::{evtchn, window};
use alloc::string::String;
use core::fmt::Write;

const BLK_BASE: usize = devices::topology::Window::nth(0).base as usize;
const NET_BASE: usize = devices::topology::Window::nth(1).base as usize;
const RETRY_NS: u64 = 50_000_000;
const READY_TIMEOUT_NS: u64 = 60_000_000_000;

const MAGIC: usize = 0x000;
const VERSION: usize = 0x004;
const DEVICE_ID: usize = 0x008;
const DEVICE_FEATURES: usize = 0x010;
const DEVICE_FEATURES_SEL: usize = 0x014;
const DRIVER_FEATURES: usize = 0x020;
const DRIVER_FEATURES_SEL: usize = 0x024;
const QUEUE_SEL: usize = 0x030;
const QUEUE_NUM_MAX: usize = 0x034;
const STATUS: usize = 0x070;
const CONFIG: usize = 0x100;

const ACKNOWLEDGE: u32 = 1;
const DRIVER: u32 = 2;
const FEATURES_OK: u32 = 8;
/// VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM, as bits of the high feature word.
const HIGH_FEATURES: u32 = 0b11;

struct Result_ {
    checks: u32,
    failed: u32,
    text: String,
    io_ok: bool,
}

impl Result_ {
    fn check(&mut self, name: &str, ok: bool) {
        self.checks += 1;
        if !ok {
            self.failed += 1;
            log::error!("frontend: FAIL {name}");
        }
    }
}

fn rd(base: usize, reg: usize) -> Option<u32> {
    probe::read32(base + reg)
}

fn wr(base: usize, reg: usize, value: u32) -> bool {
    probe::write32(base + reg, value)
}

/// Waits with `SCHEDOP_poll` on a port nobody signals: a sleep that does not spin.
fn sleep(port: Option<u32>, ns: u64) {
    if let Some(port) = port {
        let _ = evtchn::wait(port, ns);
    }
}

/// Runs the frontend test and prints its result line.
pub fn run(boot: &BootInfo) {
    window::init(boot.grant_window_gpa);
    let timer_port = match evtchn::init_shared_info() {
        Ok(()) => evtchn::alloc_unbound(DOMID_SELF).ok(),
        Err(e) => {
            log::error!("frontend: shared info: {e}");
            None
        }
    };
    let mut r = Result_ {
        checks: 0,
        failed: 0,
        text: String::new(),
        io_ok: false,
    };
    // Readiness: probe the magic register until the backend answers.
    let start = evtchn::system_time_ns();
    let mut faults = 0u32;
    let magic = loop {
        if let Some(v) = rd(BLK_BASE, MAGIC) {
            break Some(v);
        }
        faults += 1;
        let now = evtchn::system_time_ns();
        if timer_port.is_none() || now.saturating_sub(start) > READY_TIMEOUT_NS || faults > 2000 {
            break None;
        }
        sleep(timer_port, RETRY_NS);
    };
    let waited_ms = evtchn::system_time_ns().saturating_sub(start) / 1_000_000;
    let _ = write!(r.text, " probe_faults={faults} waited_ms={waited_ms}");
    if magic.is_none() {
        log::error!(
            "frontend: no backend registered {BLK_BASE:#x} after {faults} tries: is a stubvirt \
             dom0 running with serve=1?"
        );
    }
    r.check("backend answered the magic register", magic.is_some());
    if magic.is_some() {
        negotiate(&mut r, magic, timer_port, backend_domid(boot.cmdline));
    }
    let passed = r.failed == 0;
    // Details first (Xen wraps long domU lines), then the short result line.
    let _ = writeln!(crate::console::Writer, "frontend:{}", r.text);
    let _ = writeln!(
        crate::console::Writer,
        "STUBVIRT-FRONTEND result={} checks={} failed={} probe_faults={faults} blk_io={}",
        if passed { "pass" } else { "fail" },
        r.checks,
        r.failed,
        if r.io_ok { "pass" } else { "fail" },
    );
}

fn negotiate(r: &mut Result_, magic: Option<u32>, timer: Option<u32>, backend: u16) {
    r.check("blk magic 0x74726976", magic == Some(0x7472_6976));
    let version = rd(BLK_BASE, VERSION);
    r.check("blk version 2", version == Some(2));
    let device = rd(BLK_BASE, DEVICE_ID);
    r.check("blk device id 2", device == Some(2));
    r.check("reset", wr(BLK_BASE, STATUS, 0));
    r.check(
        "ACKNOWLEDGE|DRIVER",
        wr(BLK_BASE, STATUS, ACKNOWLEDGE | DRIVER),
    );
    let mut features = [0u32; 2];
    for (sel, word) in features.iter_mut().enumerate() {
        r.check(
            "DeviceFeaturesSel",
            wr(BLK_BASE, DEVICE_FEATURES_SEL, sel as u32),
        );
        *word = rd(BLK_BASE, DEVICE_FEATURES).unwrap_or(0);
    }
    let offered = u64::from(features[1]) << 32 | u64::from(features[0]);
    r.check(
        "VERSION_1 and ACCESS_PLATFORM offered",
        features[1] & HIGH_FEATURES == HIGH_FEATURES,
    );
    for (sel, value) in [(0u32, 0u32), (1, HIGH_FEATURES)] {
        r.check("DriverFeaturesSel", wr(BLK_BASE, DRIVER_FEATURES_SEL, sel));
        r.check("DriverFeatures", wr(BLK_BASE, DRIVER_FEATURES, value));
    }
    r.check(
        "FEATURES_OK written",
        wr(BLK_BASE, STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK),
    );
    let status = rd(BLK_BASE, STATUS);
    r.check(
        "FEATURES_OK accepted",
        status.is_some_and(|s| s & FEATURES_OK != 0),
    );
    r.check("QueueSel 0", wr(BLK_BASE, QUEUE_SEL, 0));
    let qmax = rd(BLK_BASE, QUEUE_NUM_MAX).unwrap_or(0);
    r.check("QueueNumMax > 0", qmax > 0);
    let capacity = u64::from(rd(BLK_BASE, CONFIG + 4).unwrap_or(0)) << 32
        | u64::from(rd(BLK_BASE, CONFIG).unwrap_or(0));
    r.check("capacity > 0", capacity > 0);
    let io = blk_io(r, timer, backend);
    // The second vcpu's ioreq slot: vcpu 1 reads the device id once.
    let vcpu1 = probe::read32_on_vcpu(1, BLK_BASE + DEVICE_ID, 200, || sleep(timer, 10_000_000));
    r.check(
        "vcpu 1 read the device id through its own ioreq slot",
        vcpu1 == Some(2),
    );
    r.check("reset at the end", wr(BLK_BASE, STATUS, 0));
    let net_magic = rd(NET_BASE, MAGIC);
    let net_device = rd(NET_BASE, DEVICE_ID);
    r.check("net magic", net_magic == Some(0x7472_6976));
    r.check("net device id 1", net_device == Some(1));
    let _ = write!(
        r.text,
        " magic={:#x} version={} device={} features={offered:#x} status={:#x} queue_num_max={qmax} capacity_sectors={capacity} net_device={} vcpu1_device={vcpu1:?} {io}",
        magic.unwrap_or(0),
        version.unwrap_or(0),
        device.unwrap_or(0),
        status.unwrap_or(0),
        net_device.unwrap_or(0),
    );
}

const QUEUE_NUM: usize = 0x038;
const QUEUE_READY: usize = 0x044;
const QUEUE_NOTIFY: usize = 0x050;
const QUEUE_DESC_LOW: usize = 0x080;
const QUEUE_DRIVER_LOW: usize = 0x090;
const QUEUE_DEVICE_LOW: usize = 0x0a0;
const DRIVER_OK: u32 = 4;
const QSIZE: u32 = 16;
/// Ring layout in one page: descriptors, then the avail ring, then the used ring.
const AVAIL: usize = 0x400;
const USED: usize = 0x800;
/// Data buffer: two pages with consecutive grant refs (one descriptor, as Linux does).
const DATA_PAGES: u64 = 2;
const DATA_BYTES: usize = DATA_PAGES as usize * 4096;
const SECTOR: u64 = 8;
const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;

fn put(va: usize, bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        mem::write_byte(va + i, *b);
    }
}

fn get_u16(va: usize) -> u16 {
    u16::from_le_bytes([mem::read_byte(va), mem::read_byte(va + 1)])
}

fn grant_address(gref: u32, offset: u64) -> u64 {
    1 << 63 | u64::from(gref) << 12 | offset
}

fn set_addr(reg: usize, value: u64) -> bool {
    wr(BLK_BASE, reg, value as u32) && wr(BLK_BASE, reg + 4, (value >> 32) as u32)
}

fn descriptor(ring: usize, index: usize, addr: u64, len: u32, flags: u16, next: u16) {
    let va = ring + index * 16;
    put(va, &addr.to_le_bytes());
    put(va + 8, &len.to_le_bytes());
    put(va + 12, &flags.to_le_bytes());
    put(va + 14, &next.to_le_bytes());
}

/// One request (header, data, status) through queue 0: returns the status byte or None on
/// a timeout. `n` is the request's number (avail index before it).
fn request(
    ring: usize,
    header: usize,
    header_gref: u32,
    data_gref: u32,
    kind: u32,
    n: u16,
    timer: Option<u32>,
) -> Option<u8> {
    put(header, &kind.to_le_bytes());
    put(header + 4, &0u32.to_le_bytes());
    put(header + 8, &SECTOR.to_le_bytes());
    mem::write_byte(header + 0x100, 0xff);
    let data_flags = DESC_F_NEXT | if kind == 0 { DESC_F_WRITE } else { 0 };
    descriptor(ring, 0, grant_address(header_gref, 0), 16, DESC_F_NEXT, 1);
    descriptor(
        ring,
        1,
        grant_address(data_gref, 0),
        DATA_BYTES as u32,
        data_flags,
        2,
    );
    descriptor(
        ring,
        2,
        grant_address(header_gref, 0x100),
        1,
        DESC_F_WRITE,
        0,
    );
    let slot = usize::from(n % QSIZE as u16);
    put(ring + AVAIL + 4 + slot * 2, &0u16.to_le_bytes());
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    put(ring + AVAIL + 2, &n.wrapping_add(1).to_le_bytes());
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    if !wr(BLK_BASE, QUEUE_NOTIFY, 0) {
        return None;
    }
    for _ in 0..200 {
        if get_u16(ring + USED + 2) == n.wrapping_add(1) {
            core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
            return Some(mem::read_byte(header + 0x100));
        }
        sleep(timer, 10_000_000);
    }
    None
}

/// Writes a pattern to 2 pages at sector 8 and reads it back, over grants to dom0.
/// `backend=<domid>` from the command line; 0 (dom0) when absent or unreadable.
fn backend_domid(cmdline: &str) -> u16 {
    crate::cmdline::number(cmdline, "backend")
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or(0)
}

fn blk_io(r: &mut Result_, timer: Option<u32>, backend: u16) -> String {
    let Ok(mut table) = GrantTable::init() else {
        r.check("grant table", false);
        return String::from("blk_io=fail");
    };
    let (Some(ring), Some(header), Some(data)) = (
        mem::alloc_frames(1),
        mem::alloc_frames(1),
        mem::alloc_frames(DATA_PAGES),
    ) else {
        r.check("frames for the rings and buffers", false);
        return String::from("blk_io=fail");
    };
    let (ring, header, data) = (ring as usize, header as usize, data as usize);
    let ring_gref = table.grant_access(backend, ring as u64 >> 12, false);
    let header_gref = table.grant_access(backend, header as u64 >> 12, false);
    let data0 = table.grant_access(backend, data as u64 >> 12, false);
    let data1 = table.grant_access(backend, (data as u64 >> 12) + 1, false);
    let (Some(ring_gref), Some(header_gref), Some(data_gref), Some(d1)) =
        (ring_gref, header_gref, data0, data1)
    else {
        r.check("grants", false);
        return String::from("blk_io=fail");
    };
    r.check(
        "consecutive grant refs for the data pages",
        d1 == data_gref + 1,
    );
    r.check("QueueNum", wr(BLK_BASE, QUEUE_NUM, QSIZE));
    r.check(
        "ring addresses",
        set_addr(QUEUE_DESC_LOW, grant_address(ring_gref, 0))
            && set_addr(QUEUE_DRIVER_LOW, grant_address(ring_gref, AVAIL as u64))
            && set_addr(QUEUE_DEVICE_LOW, grant_address(ring_gref, USED as u64)),
    );
    r.check("QueueReady", wr(BLK_BASE, QUEUE_READY, 1));
    r.check(
        "DRIVER_OK",
        wr(
            BLK_BASE,
            STATUS,
            ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK,
        ),
    );
    for i in 0..DATA_BYTES {
        mem::write_byte(data + i, (i as u8) ^ (i >> 8) as u8 ^ 0x5a);
    }
    let written = request(ring, header, header_gref, data_gref, 1, 0, timer);
    r.check("write request completed with status OK", written == Some(0));
    for i in 0..DATA_BYTES {
        mem::write_byte(data + i, 0);
    }
    let read = request(ring, header, header_gref, data_gref, 0, 1, timer);
    r.check("read request completed with status OK", read == Some(0));
    let same =
        (0..DATA_BYTES).all(|i| mem::read_byte(data + i) == (i as u8) ^ (i >> 8) as u8 ^ 0x5a);
    r.check("read back what was written", same);
    let used_len = u32::from_le_bytes([
        mem::read_byte(ring + USED + 4 + 8 + 4),
        mem::read_byte(ring + USED + 4 + 8 + 5),
        mem::read_byte(ring + USED + 4 + 8 + 6),
        mem::read_byte(ring + USED + 4 + 8 + 7),
    ]);
    r.io_ok = written == Some(0) && read == Some(0) && same;
    alloc::format!(
        "blk_io={} write_status={:?} read_status={:?} read_used_len={used_len}",
        if written == Some(0) && read == Some(0) && same {
            "pass"
        } else {
            "fail"
        },
        written,
        read
    )
}
