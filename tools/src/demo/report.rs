//! The demo's summary: the frontend's `FRONTEND-RESULT` lines and stubvirt's `STUBVIRT-`
//! lines checked against each other and against what the host knows (the raw disk image,
//! the bytes the TCP source sent). One line per check, `ok` or `FAIL`; the run passes
//! only when every check does.

use super::host::{Received, Served};
use crate::console::{End, Transcript};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// Fields by stage.
/// What Linux prints when a vcpu stopped reporting to RCU (in these runs: it stopped
/// taking timer interrupts).
pub const STALL_REPORT: &str = "rcu_sched detected stalls";
/// The first line of Xen's timer dump, which `stall_probe` asks for after a stall report.
const XEN_TIMER_DUMP: &str = "Dumping timer queues";

pub type Results = BTreeMap<String, BTreeMap<String, String>>;

/// The frontend's `FRONTEND-RESULT` lines, by stage (`done` for the last one); the fields
/// of several lines of one stage are merged (Xen cuts guest lines at about 128 bytes).
pub fn results(lines: &[(Duration, String)]) -> Results {
    let mut out = BTreeMap::new();
    for (_, line) in lines {
        let Some(rest) = line.split("FRONTEND-RESULT ").nth(1) else {
            continue;
        };
        let fields: BTreeMap<String, String> = rest
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let stage = fields
            .get("stage")
            .cloned()
            .unwrap_or_else(|| "done".to_string());
        out.entry(stage)
            .or_insert_with(BTreeMap::new)
            .extend(fields);
    }
    out
}

pub fn get<'a>(r: &'a Results, stage: &str, key: &str) -> &'a str {
    r.get(stage)
        .and_then(|f| f.get(key))
        .map_or("?", String::as_str)
}

/// What the host knows, to check the frontend's reports against.
#[derive(Clone)]
pub struct HostSide {
    /// sha256 of the raw disk image after QEMU ended, or why it could not be read.
    pub image_sha256: Result<String, String>,
    /// sha256 and length of what the TCP source sends per connection.
    pub tcp_sha256: String,
    pub tcp_bytes: usize,
    pub tcp_port: u16,
    pub tcp_served: Vec<Served>,
    /// The host's TCP sink the frontend uploads the same bytes back to.
    pub upload_port: u16,
    pub upload_received: Vec<Received>,
    /// The domain stubvirt must turn out to be (`None`: no backend was booted).
    pub backend: Option<ExpectedBackend>,
}

/// The backend domain a route boots: its domid, and whether it is dom0 (the hardware
/// domain) or a control domU with no dom0 in the system.
#[derive(Clone)]
pub struct ExpectedBackend {
    pub domid: u32,
    pub dom0: bool,
}

/// The summary being written: check lines and whether all passed.
pub(crate) struct Summary {
    text: String,
    ok: bool,
}

impl Summary {
    pub(crate) fn check(&mut self, passed: bool, what: &str, detail: &str) {
        self.ok &= passed;
        let mark = if passed { "ok  " } else { "FAIL" };
        let _ = writeln!(self.text, "  {mark} {what:<10} {detail}");
    }

    pub(crate) fn info(&mut self, what: &str, detail: &str) {
        let _ = writeln!(self.text, "       {what:<10} {detail}");
    }
}

/// The human-readable summary after `header`; `Ok` when every check passed.
pub fn summary(t: &Transcript, header: &str, host: &HostSide) -> Result<String, String> {
    let r = results(&t.lines);
    let mut s = Summary {
        text: header.to_string(),
        ok: true,
    };
    if let Some(why) = crate::console::boot_failure::xen_panic(t) {
        s.check(false, "xen", &why);
        return Err(s.text);
    }
    if let Some(expected) = &host.backend {
        domain(&mut s, t, expected);
    }
    if let Some(why) = crate::console::boot_failure::devices_refused(t) {
        s.check(false, "host devs", &why);
    }
    let ready = t.find("STUBVIRT-READY ").map(|(time, l)| {
        let text = l.split("STUBVIRT-READY ").nth(1).unwrap_or_default();
        (text.to_string(), time.as_secs_f64())
    });
    match &ready {
        Some((text, at)) => s.info("backend", &format!("{text} (at {at:.1} s)")),
        None => s.info("backend", "stubvirt never printed STUBVIRT-READY"),
    }
    if let Some((_, l)) = t.find("STUBVIRT-SERVE-FAILED") {
        s.info("backend", l.trim());
    }
    if !handshake(&mut s, &r, t, ready.as_ref().map(|(text, _)| text.as_str())) {
        return Err(s.text);
    }
    blk::block_device(&mut s, &r, &blk::RAM_DISK);
    blk::real_disk(&mut s, &r, host);
    net(&mut s, &r);
    tcp(&mut s, &r, host);
    upload(&mut s, &r, t, host);
    let last_counters = t
        .lines
        .iter()
        .rev()
        .find_map(|(_, l)| l.split("STUBVIRT-COUNTERS ").nth(1))
        .unwrap_or_default();
    if let Some((passed, detail)) =
        crate::demo::lifecycle::rebind(&r, &host.tcp_sha256, last_counters)
    {
        s.check(passed, "rebind", &detail);
    }
    counters(&mut s, t);
    uplink_interrupts(&mut s, t, ready.as_ref().map(|(text, _)| text.as_str()));
    ends(&mut s, &r, t);
    if s.ok {
        Ok(s.text)
    } else {
        Err(s.text)
    }
}

/// stubvirt's `STUBVIRT-DOMAIN` line (what Xen reports about it) against the route: its
/// domid; dom0 or not; on the route with no dom0, the control capability without the
/// hardware one; direct-mapped wherever host devices are driven.
fn domain(s: &mut Summary, t: &Transcript, expected: &ExpectedBackend) {
    let Some((_, line)) = t.find("STUBVIRT-DOMAIN ") else {
        s.check(false, "domain", "stubvirt printed no STUBVIRT-DOMAIN line");
        return;
    };
    let text = line.split("STUBVIRT-DOMAIN ").nth(1).unwrap_or_default();
    let domid = token(text, "domid");
    let caps = token(text, "caps");
    let has = |cap: &str| caps.split(',').any(|c| c == cap);
    let caps_ok = if expected.dom0 {
        // Xen 4.17 has no XEN_DOMCTL_get_domain_state: caps=unknown(...) there.
        !has("none")
    } else {
        has("control") && !has("hardware")
    };
    let passed = domid == expected.domid.to_string()
        && token(text, "dom0") == if expected.dom0 { "1" } else { "0" }
        && token(text, "direct_mapped") == "1"
        && caps_ok;
    s.check(
        passed,
        "domain",
        &format!(
            "{text} (expected domid={} {})",
            expected.domid,
            if expected.dom0 {
                "dom0=1"
            } else {
                "dom0=0, caps control without hardware"
            }
        ),
    );
}

/// The readiness handshake and the probe; false when the run cannot be judged further.
fn handshake(s: &mut Summary, r: &Results, t: &Transcript, ready: Option<&str>) -> bool {
    let field = |key: &str| get(r, "handshake", key);
    match field("backend") {
        "ready" => {}
        "absent" => {
            s.check(
                false,
                "backend",
                &format!(
                    "BACKEND NEVER CAME UP: the frontend polled the virtio-mmio magic of its \
                     devices for {} s ({} polls) and got no answer; it did not probe them and \
                     powered off.",
                    field("polled_s"),
                    field("tries")
                ),
            );
            return false;
        }
        _ => {
            let why = match t.end {
                End::TimedOut => "deadline passed".to_string(),
                End::Exited(status) => format!("QEMU exited: {status}"),
                End::Stopped(_) => "stopped at a fatal line".to_string(),
            };
            s.check(
                false,
                "handshake",
                &format!(
                    "the frontend never reported it ({why}); last lines:\n{}",
                    t.tail(25)
                ),
            );
            return false;
        }
    }
    let served = |name: &str| field(name) == "ready";
    let all = served("blk") && served("net") && served("disk");
    let mut detail = format!(
        "blk={} net={} disk={}: first answer after {} s ({} polls)",
        field("blk"),
        field("net"),
        field("disk"),
        field("waited_s"),
        field("tries")
    );
    let listed = ready.map_or(String::new(), |text| token(text, "devices"));
    if !listed.contains("disk@") {
        detail.push_str("; stubvirt serves no disk (its host virtio-blk)");
    }
    if ready.is_some_and(|text| token(text, "uplink").is_empty()) {
        detail.push_str("; stubvirt reports no uplink (its host virtio-net)");
    }
    s.check(all, "devices", &detail);
    s.info(
        "probe",
        &format!(
            "RAM disk {} (serial stubvirt-ramdisk), disk {} (serial stubvirt-disk), eth0 {}; \
             block devices seen: {}",
            get(r, "probe", "ramdisk"),
            get(r, "probe", "disk"),
            get(r, "probe", "eth0"),
            get(r, "probe", "serials")
        ),
    );
    true
}

/// The value of `key=` in a space-separated line, or "".
fn token(text: &str, key: &str) -> String {
    text.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_default()
        .to_string()
}

fn net(s: &mut Summary, r: &Results) {
    let field = |key: &str| get(r, "net", key);
    let eth0 = format!(
        "MAC {} MTU {} carrier {} operstate {}; tx {} rx {} packets",
        field("mac"),
        field("mtu"),
        field("carrier"),
        field("operstate"),
        field("tx_packets"),
        field("rx_packets"),
    );
    s.check(field("mac") != "?", "eth0", &eth0);
    let replied = field("ping_gw") == "1";
    let ping = format!(
        "{} -> gateway {} (QEMU's user network, through stubvirt's uplink): {}",
        field("ip"),
        field("gw"),
        if replied {
            format!("replied, average round trip {} ms", field("ping_avg_ms"))
        } else {
            "no reply".to_string()
        }
    );
    s.check(replied, "ping", &ping);
}

fn tcp(s: &mut Summary, r: &Results, host: &HostSide) {
    let bytes = get(r, "tcp", "bytes");
    let sha = get(r, "tcp", "sha256");
    let seconds: f64 = get(r, "tcp", "s").parse().unwrap_or(0.0);
    let passed =
        get(r, "tcp", "rc") == "0" && bytes == host.tcp_bytes.to_string() && sha == host.tcp_sha256;
    let detail = if passed {
        format!(
            "{bytes} bytes from the host's 127.0.0.1:{} in {seconds:.2} s = {:.2} MB/s, \
             sha256 equal to what the host sent",
            host.tcp_port,
            host.tcp_bytes as f64 / 1_048_576.0 / seconds.max(0.01)
        )
    } else {
        format!(
            "nc exit {}: got {bytes} of {} bytes in {seconds:.2} s, sha256 {} (sent {}); the \
             host served {}",
            get(r, "tcp", "rc"),
            host.tcp_bytes,
            short(sha),
            short(&host.tcp_sha256),
            served(&host.tcp_served)
        )
    };
    s.check(passed, "tcp", &detail);
}

/// The frontend sent the bytes it received back to the host's sink: Linux's TCP
/// segmentation offload (HOST_TSO4) against stubvirt's segmentation for the wire. The
/// uplink must have cut GSO frames (`seg:` of the last `uplink=` counters), or the
/// offload was not exercised.
fn upload(s: &mut Summary, r: &Results, t: &Transcript, host: &HostSide) {
    let seconds: f64 = get(r, "tcp_up", "s").parse().unwrap_or(0.0);
    let first = host.upload_received.first();
    let complete = first.is_some_and(|c| {
        c.bytes == host.tcp_bytes && c.sha256.as_deref() == Ok(host.tcp_sha256.as_str())
    });
    let segments = last_uplink_counter(t, "seg");
    let passed = get(r, "tcp_up", "rc") == "0" && complete && segments > 0;
    let detail = if passed {
        format!(
            "{} bytes to the host's 127.0.0.1:{} in {seconds:.2} s = {:.2} MB/s, sha256 equal \
             to what the host sent; {segments} segments cut from the frontend's GSO frames \
             ({} frames of {} B on average, {} segments resent; {} dropped for the wire)",
            host.tcp_bytes,
            host.upload_port,
            host.tcp_bytes as f64 / 1_048_576.0 / seconds.max(0.01),
            get(r, "tcp_up", "tx_frames"),
            get(r, "tcp_up", "mean_bytes"),
            get(r, "tcp_up", "retransmitted"),
            last_uplink_counter(t, "full")
        )
    } else {
        let got = match first {
            None => "no connection".to_string(),
            Some(c) => format!(
                "{} bytes in {:.2} s, sha256 {}{}",
                c.bytes,
                c.seconds,
                c.sha256.as_deref().map_or("?", short),
                c.error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" (error: {e})"))
            ),
        };
        format!(
            "nc exit {}: the host received {got} of {} bytes (sha256 {}); {segments} segments \
             cut for the wire",
            get(r, "tcp_up", "rc"),
            host.tcp_bytes,
            short(&host.tcp_sha256)
        )
    };
    s.check(passed, "tcp up", &detail);
}

/// Field `key` of the last `uplink=` counters stubvirt printed (0 when absent).
fn last_uplink_counter(t: &Transcript, key: &str) -> u64 {
    t.lines
        .iter()
        .rev()
        .find_map(|(_, l)| l.split(" uplink=").nth(1))
        .and_then(|u| {
            u.split(',')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix(':'))
        })
        .and_then(|n| n.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
}

fn short(sha: &str) -> &str {
    sha.get(..16).unwrap_or(sha)
}

fn served(connections: &[Served]) -> String {
    if connections.is_empty() {
        return "no connection".to_string();
    }
    let each: Vec<String> = connections
        .iter()
        .map(|c| {
            format!(
                "{} bytes in {:.2} s{}",
                c.bytes,
                c.seconds,
                c.error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" ({e})"))
            )
        })
        .collect();
    format!("{} connection(s): {}", connections.len(), each.join(", "))
}

/// stubvirt's last counters: the totals on one line, each device's on its own.
fn counters(s: &mut Summary, t: &Transcript) {
    let all: Vec<&str> = t
        .lines
        .iter()
        .filter_map(|(_, l)| l.split("STUBVIRT-COUNTERS ").nth(1))
        .collect();
    let Some(last) = all.last() else {
        s.info("counters", "stubvirt printed none");
        return;
    };
    let (devices, totals): (Vec<&str>, Vec<&str>) = last
        .split_whitespace()
        .partition(|kv| kv.split_once('=').is_some_and(|(_, v)| v.contains(':')));
    s.info(
        "counters",
        &format!("(last of {}) {}", all.len(), totals.join(" ")),
    );
    for device in devices {
        s.info("", device);
    }
}

/// When stubvirt said its uplink NIC's interrupt wakes it (`uplink_irq=<INTID>` in
/// `STUBVIRT-READY`), that interrupt must have come (`irqs:` of the last `uplink=`
/// counters): otherwise the link worked only through the fallback poll.
fn uplink_interrupts(s: &mut Summary, t: &Transcript, ready: Option<&str>) {
    let Some(intid) = ready
        .and_then(|text| {
            text.split_whitespace()
                .find_map(|kv| kv.strip_prefix("uplink_irq="))
        })
        .filter(|v| v.parse::<u32>().is_ok())
    else {
        return;
    };
    let irqs = last_uplink_counter(t, "irqs");
    s.check(
        irqs > 0,
        "uplink irq",
        &format!("the host NIC's interrupt (INTID {intid}) woke stubvirt {irqs} times"),
    );
}

mod blk;
mod ends;
use ends::ends;
#[cfg(test)]
mod tests;
