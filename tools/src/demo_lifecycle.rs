//! The driver-reset rounds of the end-to-end run (`fe_rebind=N` on the frontend's command
//! line; `cargo xtask test` asks for them on the dom0 route): each round unbinds and binds
//! the virtio-blk and virtio-net drivers with I/O in flight, so Linux resets both devices
//! mid-request. What must hold afterwards, checked here from the frontend's report.

use crate::demo_report::{get, Results};

/// Rounds `cargo xtask test` asks for.
pub const ROUNDS: u32 = 20;

/// Pages stubvirt holds for a live device once the rounds are over: its rings (descriptor
/// table, avail and used ring, one page each per queue), nothing else.
const RING_PAGES: [(&str, u64); 2] = [("blk", 3), ("net", 6)];

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
    let passed = rounds.is_some()
        && rounds == asked
        && all("readback_ok")
        && all("pings")
        && number("kernel_errors") == Some(0)
        && download == host_sha256
        && rings_only;
    let detail = format!(
        "{} of {} rounds of unbind + bind with I/O in flight; acknowledged data read back \
         after {} of them, eth0 answered after {}; Linux logged {} grant or ring errors; \
         then {} bytes from the host, sha256 {}; stubvirt holds {} pages for blk and {} \
         for net ({})",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo_report::results;
    use std::time::Duration;

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
        let good = "stage=rebind rounds=20 of=20 readback_ok=20 pings=20 kernel_errors=0";
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
        let logged = good.replace("kernel_errors=0", "kernel_errors=2");
        let (passed, detail) = check(&[&logged, download], "abc", COUNTERS).unwrap();
        assert!(!passed);
        assert!(
            detail.contains("Linux logged 2 grant or ring errors"),
            "{detail}"
        );
    }
}
