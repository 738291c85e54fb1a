//! The lifecycle stages of the end-to-end run, checked from the transcript.
//!
//! Driver resets (`fe_rebind=N`; `cargo xtask test` asks for them on the dom0 route):
//! each round unbinds and binds the virtio-blk and virtio-net drivers with I/O in flight,
//! so Linux resets both devices mid-request.
//!
//! A crash (`--crash`, on the route with no dom0): the second frontend panics while the
//! first runs I/O; stubvirt must notice, release it, have Xen free it, and keep serving
//! the first throughout.

use super::report::{get, results, Results};
use crate::console::Transcript;
use std::collections::BTreeMap;
use std::time::Duration;

/// Rounds `cargo xtask test` asks for.
pub const ROUNDS: u32 = 20;

/// Pages stubvirt holds for a live device once the rounds are over: its rings (descriptor
/// table, avail and used ring, one page each per queue), nothing else.
const RING_PAGES: [(&str, u64); 2] = [("blk", 3), ("net", 6)];

/// Memory the frontend may lose over all the rounds (`MemAvailable` with the page cache
/// dropped, before and after them): slab and socket caches move by a few MiB, while rings
/// or receive buffers left allocated at each reset would be tens of MiB (a frontend of
/// 256 MiB once ran out of memory during the rounds).
const MEMORY_LOSS_LIMIT_KB: u64 = 16 * 1024;

/// The frontend's available memory before and after the rounds, in kB
/// (`mem_available_kb=BEFORE,AFTER`).
fn memory_kb(field: &str) -> Option<(u64, u64)> {
    let (before, after) = field.split_once(',')?;
    Some((before.parse().ok()?, after.parse().ok()?))
}

/// What stubvirt's last counters line says `device` holds (`held:N`).
fn held(counters: &str, device: &str) -> Option<u64> {
    let token = counters
        .split_whitespace()
        .find_map(|t| t.strip_prefix(&format!("{device}=")))?;
    token
        .split(',')
        .find_map(|kv| kv.strip_prefix("held:"))?
        .parse()
        .ok()
}

/// `None` when the run had no rebind stage; else whether it passed, and in words: every
/// round done, every acknowledged MiB read back after every round, eth0 answering after
/// every round, no grant left in use and no bad head in Linux's log, a new download from
/// the host afterwards equal to what the host sent, and stubvirt holding only the new
/// rings (`last_counters`: its last counters line).
pub fn rebind(r: &Results, host_sha256: &str, last_counters: &str) -> Option<(bool, String)> {
    r.get("rebind")?;
    let rings_only = RING_PAGES
        .iter()
        .all(|&(device, pages)| held(last_counters, device) == Some(pages));
    let field = |key| get(r, "rebind", key);
    let number = |key| field(key).parse::<u64>().ok();
    let rounds = number("rounds");
    let asked = number("of");
    let all = |key| rounds.is_some() && number(key) == rounds;
    let download = field("tcp_sha256");
    let memory = memory_kb(field("mem_available_kb"));
    let lost_kb = memory.map(|(before, after)| before.saturating_sub(after));
    let memory_kept = lost_kb.is_some_and(|lost| lost <= MEMORY_LOSS_LIMIT_KB);
    let passed = rounds.is_some()
        && rounds == asked
        && all("readback_ok")
        && all("pings")
        && number("kernel_errors") == Some(0)
        && download == host_sha256
        && rings_only
        && memory_kept;
    let memory_words = match (memory, lost_kb) {
        (Some((before, after)), Some(lost)) => format!(
            "the frontend's available memory {} -> {} MiB ({lost} kB lost{})",
            before / 1024,
            after / 1024,
            if memory_kept {
                ""
            } else {
                ", MORE than the rounds may leave"
            }
        ),
        _ => "the frontend's available memory NOT reported".to_string(),
    };
    let detail = format!(
        "{} of {} rounds of unbind + bind with I/O in flight; acknowledged data read back \
         after {} of them, eth0 answered after {}; Linux logged {} grant or ring errors; \
         then {} bytes from the host, sha256 {}; stubvirt holds {} pages for blk and {} \
         for net ({}); {memory_words}",
        field("rounds"),
        field("of"),
        field("readback_ok"),
        field("pings"),
        field("kernel_errors"),
        field("tcp_bytes"),
        if download == host_sha256 {
            "equal to what the host sent"
        } else {
            "NOT what the host sent"
        },
        held(last_counters, "blk").map_or("?".into(), |n| n.to_string()),
        held(last_counters, "net").map_or("?".into(), |n| n.to_string()),
        if rings_only {
            "its rings only"
        } else {
            "MORE than its rings: 3 and 6 expected"
        }
    );
    Some((passed, detail))
}

/// The `key=value` words of the first line containing `needle`, with its time.
fn fields_of(t: &Transcript, needle: &str) -> Option<(Duration, BTreeMap<String, String>)> {
    let (time, line) = t.find(needle)?;
    let fields = line
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Some((*time, fields))
}

/// One checked row of the crash stage: whether it passed, its name, what was seen.
pub type Row = (bool, &'static str, String);

/// The crash stage's rows: stubvirt noticed the crashed frontend and released it; Xen
/// freed it; the surviving frontend's I/O and downloads succeeded during and after (from
/// `survivor`, its own view of `t`), and it holds only its rings.
/// `confined`: stubvirt ran under its FLASK policy, which must refuse it the destroy.
pub fn crash(
    t: &Transcript,
    survivor: &Transcript,
    crashed: u32,
    host_sha256: &str,
    confined: bool,
) -> Vec<Row> {
    let crashed_at = t
        .find(&format!("DOM{crashed}: FRONTEND-RESULT stage=crash"))
        .map(|(time, _)| *time);
    let gone = fields_of(t, &format!("STUBVIRT-FRONTEND-GONE frontend={crashed} "));
    let destroyed = fields_of(
        t,
        &format!("STUBVIRT-FRONTEND-DESTROYED frontend={crashed} "),
    );
    let field = |f: &BTreeMap<String, String>, k: &str| f.get(k).cloned().unwrap_or_default();
    let mut rows = Vec::new();

    let notice = match (crashed_at, &gone) {
        (Some(at), Some((seen, f))) if *seen >= at => {
            let channels = field(f, "channels");
            let all_closed = channels
                .split_once('/')
                .is_some_and(|(closed, all)| closed == all && closed != "0");
            let passed = field(f, "pages_held") == "0"
                && field(f, "ioreq_server") == "released"
                && all_closed
                && field(f, "devices").parse::<u32>().is_ok_and(|n| n > 0);
            let detail = format!(
                "domU{crashed} crashed (sysrq c) at {:.1} s; stubvirt noticed (state {}, via \
                 {}) {:.1} s later by the host's clock, Linux's panic and the console \
                 included; detached {} devices, {} pages still held, ioreq server {}, {} \
                 event channels closed",
                at.as_secs_f64(),
                field(f, "state"),
                field(f, "via"),
                (*seen - at).as_secs_f64(),
                field(f, "devices"),
                field(f, "pages_held"),
                field(f, "ioreq_server"),
                channels
            );
            rows.push((passed, "crash", detail));
            Some(*seen)
        }
        (None, _) => {
            rows.push((false, "crash", format!("domU{crashed} never crashed")));
            None
        }
        _ => {
            let detail = format!("domU{crashed} crashed; stubvirt never reported it gone");
            rows.push((false, "crash", detail));
            None
        }
    };
    rows.push(match (&destroyed, confined) {
        (Some((_, f)), false) => (
            field(f, "result") == "freed",
            "destroy",
            format!(
                "XEN_DOMCTL_destroydomain by stubvirt: {} after {} ms (`freed`: Xen no \
                 longer knows the domain, so nothing held its pages)",
                field(f, "result"),
                field(f, "ms")
            ),
        ),
        (Some((_, f)), true) => (
            field(f, "result") == "refused(errno13)",
            "destroy",
            format!(
                "XEN_DOMCTL_destroydomain by stubvirt: {} (its FLASK policy does not let it \
                 destroy a frontend; the domain is left shut down to its owner)",
                field(f, "result")
            ),
        ),
        (None, _) => (
            false,
            "destroy",
            "stubvirt did not try to destroy it".into(),
        ),
    });
    rows.push(survived(survivor, notice, host_sha256));
    rows
}

/// The survivor's row: its I/O during the crash ended after stubvirt noticed it, every
/// request and both downloads succeeded, the crashed frontend is unreachable, and
/// stubvirt holds only the survivor's rings.
fn survived(survivor: &Transcript, noticed: Option<Duration>, host_sha256: &str) -> Row {
    let r = results(&survivor.lines);
    let field = |stage, key| get(&r, stage, key).to_string();
    let io_ended = survivor
        .find("FRONTEND-RESULT stage=survive io_rc=")
        .map(|(time, _)| *time);
    let spanned = matches!((noticed, io_ended), (Some(n), Some(e)) if e > n);
    let last_counters = survivor
        .lines
        .iter()
        .rev()
        .find(|(_, l)| l.contains("STUBVIRT-COUNTERS "))
        .map_or("", |(_, l)| l.as_str());
    let rings_only = RING_PAGES
        .iter()
        .all(|&(device, pages)| held(last_counters, device) == Some(pages));
    let passed = spanned
        && field("survive", "io_rc") == "0"
        && field("survive", "after_io_rc") == "0"
        && field("survive", "tcp_sha256") == host_sha256
        && field("survive", "tcp2_sha256") == host_sha256
        && field("survive", "peer_ping") == "0"
        && rings_only;
    let figure = |key| {
        format!(
            "{} -> {}",
            field("survive_during", key),
            field("survive_after", key)
        )
    };
    let detail = format!(
        "the other frontend's fe_io {} the notice (exit {}, then {}); 4 KiB QD1 read \
         IOPS during -> after: {}, QD32 write: {}, 1 MiB read MB/s: {}; downloads \
         {} and {}; crashed peer answers ping: {}; stubvirt holds {} pages for blk and \
         {} for net",
        if spanned { "spanned" } else { "did NOT span" },
        field("survive", "io_rc"),
        field("survive", "after_io_rc"),
        figure("rand4k_read_qd1_iops"),
        figure("rand4k_write_qd32_iops"),
        figure("seq1m_read_mbs"),
        sha_word(&field("survive", "tcp_sha256"), host_sha256),
        sha_word(&field("survive", "tcp2_sha256"), host_sha256),
        field("survive", "peer_ping"),
        held(last_counters, "blk").map_or("?".into(), |n| n.to_string()),
        held(last_counters, "net").map_or("?".into(), |n| n.to_string()),
    );
    (passed, "survivor", detail)
}

fn sha_word(got: &str, want: &str) -> &'static str {
    if got == want {
        "intact"
    } else {
        "NOT the host's bytes"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(lines: &[&str]) -> Results {
        let lines: Vec<(Duration, String)> = lines
            .iter()
            .map(|l| (Duration::ZERO, format!("(XEN) DOM1: FRONTEND-RESULT {l}")))
            .collect();
        results(&lines)
    }

    const COUNTERS: &str = "ioreqs=9 blk=req:5,held:3,irqs:2 net=req:7,held:6,irqs:1";

    #[test]
    fn every_round_must_read_back_and_answer() {
        let good = "stage=rebind rounds=20 of=20 readback_ok=20 pings=20 kernel_errors=0 \
                    mem_available_kb=228536,226064";
        let download = "stage=rebind tcp_bytes=4194304 tcp_sha256=abc";
        let check = |lines: &[&str], sha, counters| rebind(&report(lines), sha, counters);
        assert!(check(&[], "abc", COUNTERS).is_none());
        assert!(check(&[good, download], "abc", COUNTERS).unwrap().0);
        assert!(!check(&[good, download], "abd", COUNTERS).unwrap().0);
        let leaked = COUNTERS.replace("held:3", "held:4");
        assert!(!check(&[good, download], "abc", &leaked).unwrap().0);
        let lost = good.replace("readback_ok=20", "readback_ok=19");
        assert!(!check(&[&lost, download], "abc", COUNTERS).unwrap().0);
        let stuck = good.replace("rounds=20 ", "rounds=7 ");
        assert!(!check(&[&stuck, download], "abc", COUNTERS).unwrap().0);
        let leaking = good.replace(",226064", ",26064");
        let (passed, detail) = check(&[&leaking, download], "abc", COUNTERS).unwrap();
        assert!(!passed);
        assert!(
            detail.contains("228536 -> 26064") || detail.contains("223 -> 25 MiB"),
            "{detail}"
        );
        let unreported = good.replace(" mem_available_kb=228536,226064", "");
        assert!(!check(&[&unreported, download], "abc", COUNTERS).unwrap().0);
        let logged = good.replace("kernel_errors=0", "kernel_errors=2");
        let (passed, detail) = check(&[&logged, download], "abc", COUNTERS).unwrap();
        assert!(!passed);
        assert!(
            detail.contains("Linux logged 2 grant or ring errors"),
            "{detail}"
        );
    }

    fn transcript(lines: &[(u64, &str)]) -> Transcript {
        Transcript {
            lines: lines
                .iter()
                .map(|(s, l)| (Duration::from_secs(*s), l.to_string()))
                .collect(),
            end: crate::console::End::Stopped(lines.len() - 1),
            log: "x".into(),
        }
    }

    const CRASH_RUN: &[(u64, &str)] = &[
        (
            10,
            "(XEN) DOM2: FRONTEND-RESULT stage=survive told_after_tries=3",
        ),
        (11, "(XEN) DOM3: FRONTEND-RESULT stage=crash uptime=80.1"),
        (
            12,
            "(XEN) DOM1: STUBVIRT-FRONTEND-GONE frontend=3 state=shutdown via=virq \
              devices=3 pages_held=0 ioreq_server=released channels=2/2",
        ),
        (
            12,
            "(XEN) DOM1: STUBVIRT-FRONTEND-DESTROYED frontend=3 result=freed ms=4",
        ),
        (
            20,
            "(XEN) DOM2: FRONTEND-RESULT stage=survive_during rand4k_read_qd1_iops=500",
        ),
        (20, "(XEN) DOM2: FRONTEND-RESULT stage=survive io_rc=0"),
        (
            20,
            "(XEN) DOM2: FRONTEND-RESULT stage=survive tcp_sha256=abc",
        ),
        (
            25,
            "(XEN) DOM2: FRONTEND-RESULT stage=survive after_io_rc=0 peer_ping=0",
        ),
        (
            25,
            "(XEN) DOM2: FRONTEND-RESULT stage=survive tcp2_sha256=abc",
        ),
        (
            26,
            "(XEN) DOM1: STUBVIRT-COUNTERS ioreqs=9 blk=req:5,held:3 net=req:7,held:6",
        ),
    ];

    fn crash_rows(lines: &[(u64, &str)]) -> Vec<Row> {
        let t = transcript(lines);
        crash(&t, &t, 3, "abc", false)
    }

    #[test]
    fn a_crash_passes_only_if_noticed_released_freed_and_survived() {
        let rows = crash_rows(CRASH_RUN);
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r.0), "{rows:#?}");
        assert!(rows[0].2.contains("1.0 s later"), "{}", rows[0].2);
        let changed = |from: &str, to: &str| -> Vec<(u64, String)> {
            CRASH_RUN
                .iter()
                .map(|(s, l)| (*s, l.replace(from, to)))
                .collect()
        };
        let failing = |from: &str, to: &str, row: usize| {
            let lines = changed(from, to);
            let lines: Vec<(u64, &str)> = lines.iter().map(|(s, l)| (*s, l.as_str())).collect();
            let rows = crash_rows(&lines);
            assert!(
                !rows[row].0,
                "{from} -> {to} should fail row {row}: {rows:#?}"
            );
        };
        failing("pages_held=0", "pages_held=3", 0);
        failing("channels=2/2", "channels=1/2", 0);
        failing("ioreq_server=released", "ioreq_server=kept", 0);
        failing("frontend=3 state", "frontend=4 state", 0);
        failing("stage=crash", "stage=crush", 0);
        failing("result=freed", "result=dying", 1);
        let t = transcript(CRASH_RUN);
        assert!(
            !crash(&t, &t, 3, "abc", true)[1].0,
            "confined: freed means not confined"
        );
        let refused: Vec<(u64, String)> = changed("result=freed", "result=refused(errno13)");
        let refused: Vec<(u64, &str)> = refused.iter().map(|(s, l)| (*s, l.as_str())).collect();
        let t = transcript(&refused);
        assert!(crash(&t, &t, 3, "abc", true)[1].0);
        failing("io_rc=0", "io_rc=1", 2);
        failing("tcp2_sha256=abc", "tcp2_sha256=abd", 2);
        failing("peer_ping=0", "peer_ping=1", 2);
        failing("held:3", "held:4", 2);
        // I/O that ended before stubvirt noticed proves nothing about serving through it.
        let mut early: Vec<(u64, &str)> = CRASH_RUN.to_vec();
        early[5].0 = 11;
        assert!(!crash_rows(&early)[2].0);
    }
}
