//! The demo's summary: the frontend's `FRONTEND-RESULT` lines and stubvirt's `STUBVIRT-`
//! lines checked against each other and against what the host knows (the raw disk image,
//! the bytes the TCP source sent). One line per check, `ok` or `FAIL`; the run passes
//! only when every check does.

use crate::demo_host::{Received, Served};
use crate::guest_console::{End, Transcript};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// Fields by stage.
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
struct Summary {
    text: String,
    ok: bool,
}

impl Summary {
    fn check(&mut self, passed: bool, what: &str, detail: &str) {
        self.ok &= passed;
        let mark = if passed { "ok  " } else { "FAIL" };
        let _ = writeln!(self.text, "  {mark} {what:<10} {detail}");
    }

    fn info(&mut self, what: &str, detail: &str) {
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
    if let Some(why) = crate::boot_failure::xen_panic(t) {
        s.check(false, "xen", &why);
        return Err(s.text);
    }
    if let Some(expected) = &host.backend {
        domain(&mut s, t, expected);
    }
    if let Some(why) = crate::boot_failure::devices_refused(t) {
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
    block_device(&mut s, &r, &RAM_DISK);
    real_disk(&mut s, &r, host);
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
        crate::demo_lifecycle::rebind(&r, &host.tcp_sha256, last_counters)
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

/// Where the frontend reports on one block device.
struct BlockStages {
    /// Name in the summary; the check lines are "<name>", "<short> ext2", "<short> fe_io".
    name: &'static str,
    short: &'static str,
    /// Key in the `probe` stage, and the virtio-blk serial it stands for.
    probe: &'static str,
    serial: &'static str,
    /// Stages: the patterned write (`<verify>` and `<verify>_verify`), ext2, fe_io.
    verify: &'static str,
    fs: &'static str,
    perf: &'static str,
}

const RAM_DISK: BlockStages = BlockStages {
    name: "RAM disk",
    short: "RAM",
    probe: "ramdisk",
    serial: "stubvirt-ramdisk",
    verify: "blk",
    fs: "fs",
    perf: "blk_perf",
};

const HOST_DISK: BlockStages = BlockStages {
    name: "disk",
    short: "disk",
    probe: "disk",
    serial: "stubvirt-disk",
    verify: "disk",
    fs: "disk_fs",
    perf: "disk_perf",
};

/// The checks of one block device; false when the frontend found no such device.
fn block_device(s: &mut Summary, r: &Results, d: &BlockStages) -> bool {
    if get(r, "probe", d.probe) == "none" {
        let detail = format!("no block device with serial {}", d.serial);
        s.check(false, d.name, &detail);
        return false;
    }
    verify(s, r, d.name, d.verify);
    ext2(s, r, &format!("{} ext2", d.short), d.fs);
    fe_io(s, r, &format!("{} fe_io", d.short), d.perf);
    true
}

/// The host disk's checks, and the host's own: its raw image holds what the frontend read.
fn real_disk(s: &mut Summary, r: &Results, host: &HostSide) {
    if !block_device(s, r, &HOST_DISK) {
        return;
    }
    let reported = get(r, "disk_image", "sha256");
    let (passed, detail) = match &host.image_sha256 {
        Ok(image) if image == reported => (
            true,
            format!("the host's raw image file holds what the frontend wrote (sha256 {image})"),
        ),
        Ok(image) => (
            false,
            format!("raw image sha256 {image}, the frontend read {reported} from the disk"),
        ),
        Err(e) => (false, format!("cannot hash the raw image: {e}")),
    };
    s.check(passed, "host image", &detail);
}

/// The patterned whole-device write of stage `stage` (`<stage>_verify` holds the result).
fn verify(s: &mut Summary, r: &Results, what: &str, stage: &str) {
    let v = format!("{stage}_verify");
    let passed = get(r, &v, "ok") == "1";
    s.check(
        passed,
        what,
        &format!(
            "{} {} bytes written in 1 MiB regions with requests of {} B ({} O_DIRECT, {} \
             buffered+fsync regions), flushed, read back O_DIRECT and buffered: {} (sha256 {})",
            get(r, stage, "dev"),
            get(r, stage, "size_bytes"),
            get(r, &v, "sizes"),
            get(r, &v, "direct_regions"),
            get(r, &v, "buffered_regions"),
            if passed {
                "identical"
            } else {
                "MISMATCH/FAILED"
            },
            get(r, &v, "sha256"),
        ),
    );
}

fn ext2(s: &mut Summary, r: &Results, what: &str, stage: &str) {
    let fs_ok = get(r, stage, "ok") == "1";
    let fsck = get(r, stage, "fsck");
    s.check(
        fs_ok && fsck == "clean",
        what,
        &format!(
            "mke2fs + mount + create/copy/delete + umount + remount and compare: {}; \
             e2fsck -fn: {fsck}",
            if fs_ok { "ok" } else { "FAILED" }
        ),
    );
}

const FE_IO_KEYS: [&str; 6] = [
    "rand4k_read_qd1_iops",
    "rand4k_read_qd32_iops",
    "rand4k_write_qd1_iops",
    "rand4k_write_qd32_iops",
    "seq1m_read_mbs",
    "seq1m_write_mbs",
];

fn fe_io(s: &mut Summary, r: &Results, what: &str, stage: &str) {
    let value = |key: &str| get(r, stage, key);
    let complete = FE_IO_KEYS.iter().all(|k| value(k) != "?");
    s.check(
        complete,
        what,
        &format!(
            "O_DIRECT 4 KiB random read QD1 {} / QD32 {} IOPS, write QD1 {} / QD32 {} IOPS; \
             1 MiB sequential read {} / write {} MB/s",
            value(FE_IO_KEYS[0]),
            value(FE_IO_KEYS[1]),
            value(FE_IO_KEYS[2]),
            value(FE_IO_KEYS[3]),
            value(FE_IO_KEYS[4]),
            value(FE_IO_KEYS[5]),
        ),
    );
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
             to what the host sent; {segments} segments cut from the frontend's GSO frames",
            host.tcp_bytes,
            host.upload_port,
            host.tcp_bytes as f64 / 1_048_576.0 / seconds.max(0.01)
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

/// Failed or stuck stages, a stalled vcpu, an unfinished frontend.
fn ends(s: &mut Summary, r: &Results, t: &Transcript) {
    for (stage, fields) in r {
        if let (Some(reason), Some("0")) =
            (fields.get("reason"), fields.get("ok").map(String::as_str))
        {
            s.check(false, "stage", &format!("{stage}: {reason}"));
        }
    }
    if let Some((time, _)) = t.find(crate::demo::STALL_REPORT) {
        let which = t
            .find("Possible timer handling issue")
            .and_then(|(_, l)| l.split("rcu: ").nth(1))
            .unwrap_or("see the log");
        s.check(
            false,
            "stall",
            &format!(
                "Linux reported an RCU stall at {:.1} s ({}): a frontend vcpu stopped being woken",
                time.as_secs_f64(),
                which.trim()
            ),
        );
    }
    if !r.contains_key("done") {
        s.check(
            false,
            "finished",
            "the frontend did not finish (no `FRONTEND-RESULT done=1`)",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn transcript(lines: &[&str]) -> Transcript {
        Transcript {
            lines: lines
                .iter()
                .map(|l| (Duration::from_secs(1), format!("(XEN) DOM1: {l}")))
                .collect(),
            end: End::TimedOut,
            log: PathBuf::from("demo.log"),
        }
    }

    const SHA_DISK: &str = "d15cd15cd15cd15cd15cd15cd15cd15cd15cd15cd15cd15cd15cd15cd15cd15c";
    const SHA_TCP: &str = "7c907c907c907c907c907c907c907c907c907c907c907c907c907c907c907c90";

    fn host() -> HostSide {
        HostSide {
            image_sha256: Ok(SHA_DISK.to_string()),
            tcp_sha256: SHA_TCP.to_string(),
            tcp_bytes: 4194304,
            tcp_port: 40000,
            tcp_served: vec![],
            upload_port: 40001,
            upload_received: vec![Received {
                bytes: 4194304,
                seconds: 3.0,
                sha256: Ok(SHA_TCP.to_string()),
                error: None,
            }],
            backend: Some(ExpectedBackend {
                domid: 0,
                dom0: true,
            }),
        }
    }

    /// A run in which everything passed.
    fn passing() -> Vec<String> {
        let mut lines = vec![
            "STUBVIRT-DOMAIN domid=0 xen=4.17.5 caps=unknown(errno13) dom0=1 direct_mapped=1".to_string(),
            "STUBVIRT-READY frontend=1 devices=blk@0x2000000,net@0x2000200,disk@0x2000400 uplink=52:54:00:12:34:56 uplink_irq=78".into(),
            "FRONTEND-RESULT stage=handshake backend=ready blk=ready net=ready disk=ready waited_s=0.03 tries=1".into(),
            "FRONTEND-RESULT stage=probe ramdisk=/dev/vda disk=/dev/vdb eth0=yes".into(),
            "FRONTEND-RESULT stage=probe serials=vda:stubvirt-ramdisk,vdb:stubvirt-disk".into(),
            format!("FRONTEND-RESULT stage=disk_image sha256={SHA_DISK}"),
            "FRONTEND-RESULT stage=net mac=52:54:00:57:56:01 mtu=1500 carrier=1 operstate=up".into(),
            "FRONTEND-RESULT stage=net ip=10.0.2.15 gw=10.0.2.2 ping_gw=1 tx_packets=9 rx_packets=9".into(),
            "FRONTEND-RESULT stage=tcp rc=0 bytes=4194304 s=2.00".into(),
            format!("FRONTEND-RESULT stage=tcp sha256={SHA_TCP}"),
            "FRONTEND-RESULT stage=tcp_up rc=0 s=4.00".into(),
            "STUBVIRT-COUNTERS ioreqs=9 ioreq_errors=0 blk=req:5,err:0 disk=req:4,err:0 uplink=in:3,out:3,seg:12,drop:0,csum:0,tx_err:0,irqs:2".into(),
            "FRONTEND-RESULT done=1 uptime=99".into(),
        ];
        for (stage, perf, fs) in [("blk", "blk_perf", "fs"), ("disk", "disk_perf", "disk_fs")] {
            lines.push(format!(
                "FRONTEND-RESULT stage={stage} dev=/dev/vdX size_bytes=1"
            ));
            lines.push(format!(
                "FRONTEND-RESULT stage={stage}_verify ok=1 sha256=ab"
            ));
            lines.push(format!(
                "FRONTEND-RESULT stage={fs} mkfs=ext2 ok=1 files=48 fsck=clean"
            ));
            for key in FE_IO_KEYS {
                lines.push(format!("FRONTEND-RESULT stage={perf} {key}=7"));
            }
        }
        lines
    }

    fn run(lines: &[String], host: &HostSide) -> Result<String, String> {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        summary(&transcript(&lines), "demo:\n", host)
    }

    #[test]
    fn results_are_parsed_by_stage() {
        let lines = vec![
            (Duration::ZERO, "(XEN) DOM1: FRONTEND-RESULT stage=handshake backend=absent polled_s=90.02 tries=170".to_string()),
            (Duration::ZERO, "FRONTEND-RESULT stage=blk_perf seq1m_read_mbs=50.1".to_string()),
            (Duration::ZERO, "FRONTEND-RESULT stage=blk_perf rand4k_read_qd1_iops=489".to_string()),
            (Duration::ZERO, "FRONTEND-RESULT done=1 uptime=95.1".to_string()),
        ];
        let r = results(&lines);
        assert_eq!(get(&r, "handshake", "backend"), "absent");
        assert_eq!(get(&r, "handshake", "tries"), "170");
        assert_eq!(get(&r, "done", "done"), "1");
        assert_eq!(get(&r, "blk_perf", "seq1m_read_mbs"), "50.1");
        assert_eq!(get(&r, "blk_perf", "rand4k_read_qd1_iops"), "489");
        assert_eq!(get(&r, "blk_perf", "absent"), "?");
    }

    #[test]
    fn an_uplink_interrupt_that_never_came_fails() {
        let lines: Vec<String> = passing()
            .into_iter()
            .map(|l| l.replace(",irqs:2", ",irqs:0"))
            .collect();
        let text = run(&lines, &host()).unwrap_err();
        assert!(text.contains("FAIL uplink irq"), "{text}");
        // A polled uplink promises no interrupt: nothing to check.
        let polled: Vec<String> = lines
            .into_iter()
            .map(|l| l.replace("uplink_irq=78", "uplink_irq=polled"))
            .collect();
        assert!(run(&polled, &host()).is_ok());
    }

    #[test]
    fn an_upload_that_was_cut_short_or_never_segmented_fails() {
        let mut short_upload = host();
        if let Some(c) = short_upload.upload_received.first_mut() {
            c.bytes = 1000;
        }
        let text = run(&passing(), &short_upload).unwrap_err();
        assert!(text.contains("FAIL tcp up"), "{text}");
        assert!(text.contains("received 1000 bytes"), "{text}");
        // Intact bytes, but no GSO frame was cut: the offload was not exercised.
        let unsegmented: Vec<String> = passing()
            .into_iter()
            .map(|l| l.replace(",seg:12,", ",seg:0,"))
            .collect();
        let text = run(&unsegmented, &host()).unwrap_err();
        assert!(text.contains("FAIL tcp up"), "{text}");
        let mut nothing = host();
        nothing.upload_received.clear();
        let text = run(&passing(), &nothing).unwrap_err();
        assert!(text.contains("no connection"), "{text}");
    }

    #[test]
    fn a_complete_run_passes_with_figures_and_counters() {
        let text = run(&passing(), &host()).unwrap();
        assert!(!text.contains("FAIL"), "{text}");
        assert!(text.contains("read QD1 7 / QD32 7 IOPS"), "{text}");
        assert!(
            text.contains("4194304 bytes from the host's 127.0.0.1:40000 in 2.00 s = 2.00 MB/s")
        );
        assert!(
            text.contains("4194304 bytes to the host's 127.0.0.1:40001 in 4.00 s = 1.00 MB/s"),
            "{text}"
        );
        assert!(text.contains(&format!(
            "holds what the frontend wrote (sha256 {SHA_DISK})"
        )));
        assert!(
            text.contains("(last of 1) ioreqs=9 ioreq_errors=0\n"),
            "{text}"
        );
        assert!(
            text.contains(" uplink=in:3,out:3,seg:12,drop:0,csum:0,tx_err:0,irqs:2\n"),
            "{text}"
        );
    }

    #[test]
    fn the_backend_domain_must_be_what_the_route_boots() {
        let text = run(&passing(), &host()).unwrap();
        assert!(
            text.contains("ok   domain     domid=0 xen=4.17.5"),
            "{text}"
        );
        // The same transcript judged as the route with no dom0: wrong domid, and dom0.
        let mut no_dom0 = host();
        no_dom0.backend = Some(ExpectedBackend {
            domid: 1,
            dom0: false,
        });
        assert!(run(&passing(), &no_dom0)
            .unwrap_err()
            .contains("FAIL domain"));
        let with = |line: &str| {
            let mut lines = passing();
            lines[0] = line.to_string();
            run(&lines, &no_dom0)
        };
        let control = "STUBVIRT-DOMAIN domid=1 xen=4.22.0 caps=control dom0=0 direct_mapped=1";
        assert!(with(control).is_ok());
        // A hardware domain, or one whose DMA addresses are not machine addresses, fails.
        let hardware = control.replace("caps=control", "caps=control,hardware");
        assert!(with(&hardware).unwrap_err().contains("FAIL domain"));
        let translated = control.replace("direct_mapped=1", "direct_mapped=0");
        assert!(with(&translated).unwrap_err().contains("FAIL domain"));
        let mut silent = passing();
        silent.remove(0);
        assert!(run(&silent, &host())
            .unwrap_err()
            .contains("printed no STUBVIRT-DOMAIN line"));
    }

    #[test]
    fn a_host_image_other_than_what_the_frontend_read_fails() {
        let mut host = host();
        host.image_sha256 = Ok("0".repeat(64));
        let text = run(&passing(), &host).unwrap_err();
        assert!(text.contains("FAIL host image"), "{text}");
    }

    #[test]
    fn wrong_tcp_bytes_fail_and_show_what_the_host_served() {
        let mut lines = passing();
        lines.retain(|l| !l.contains("stage=tcp sha256"));
        lines.push(format!(
            "FRONTEND-RESULT stage=tcp sha256={}",
            "1".repeat(64)
        ));
        let mut host = host();
        host.tcp_served = vec![Served {
            bytes: 65536,
            seconds: 30.0,
            error: Some("Broken pipe".into()),
        }];
        let text = run(&lines, &host).unwrap_err();
        assert!(
            text.contains("1 connection(s): 65536 bytes in 30.00 s (Broken pipe)"),
            "{text}"
        );
    }

    #[test]
    fn without_disk_and_uplink_the_failures_are_named() {
        let lines: Vec<String> = passing()
            .into_iter()
            .filter(|l| !l.contains("stage=disk") && !l.contains("tcp") && !l.contains("READY"))
            .map(|l| {
                l.replace("disk=ready", "disk=absent")
                    .replace("disk=/dev/vdb", "disk=none")
                    .replace("ping_gw=1", "ping_gw=0")
            })
            .chain(["STUBVIRT-READY frontend=1 devices=blk@0x2000000,net@0x2000200".to_string()])
            .collect();
        let text = run(&lines, &host()).unwrap_err();
        for expected in [
            "FAIL devices    blk=ready net=ready disk=absent",
            "stubvirt serves no disk",
            "stubvirt reports no uplink",
            "FAIL disk       no block device with serial stubvirt-disk\n",
            "FAIL ping",
            "FAIL tcp        nc exit ?: got ? of 4194304 bytes",
            "the host served no connection",
            "ok   RAM disk",
        ] {
            assert!(text.contains(expected), "{expected} in\n{text}");
        }
    }

    #[test]
    fn an_absent_backend_ends_the_summary() {
        let lines =
            ["FRONTEND-RESULT stage=handshake backend=absent polled_s=20.1 tries=40".to_string()];
        let text = run(&lines, &host()).unwrap_err();
        assert!(text.contains("BACKEND NEVER CAME UP"));
        assert!(text.contains("for 20.1 s (40 polls)"));
        assert!(!text.contains("RAM disk"));
    }

    #[test]
    fn a_missing_fsck_or_figure_fails() {
        let mut lines = passing();
        lines.retain(|l| !l.contains("stage=fs ") && !l.contains("disk_perf seq1m_read"));
        lines.push("FRONTEND-RESULT stage=fs mkfs=ext2 ok=1 files=48 fsck=rc4".into());
        let text = run(&lines, &host()).unwrap_err();
        assert!(text.contains("FAIL RAM ext2"), "{text}");
        assert!(text.contains("e2fsck -fn: rc4"), "{text}");
        assert!(text.contains("FAIL disk fe_io"), "{text}");
    }

    #[test]
    fn tokens_are_found_by_key() {
        let line = "frontend=1 devices=blk@0x2000000,disk@0x2000400 uplink=52:54:00:12:34:56";
        assert_eq!(token(line, "devices"), "blk@0x2000000,disk@0x2000400");
        assert_eq!(token(line, "uplink"), "52:54:00:12:34:56");
        assert_eq!(token(line, "vcpus"), "");
    }
}
