//! The checks of the Linux frontends' phase of the xl route: what each frontend's
//! `tools/frontend/init.sh` reported (its console as dom0 printed it, `XL-FE1 ...`), and
//! what stubvirt printed for them.

use crate::console::Transcript;
use crate::demo::report::{get, results, Results};

/// The console of the frontend dom0 printed with `label` (`FE1`, `FE2`, `FE1-AGAIN`).
fn console(transcript: &Transcript, label: &str) -> Results {
    let prefix = format!("XL-{label} ");
    let lines: Vec<_> = transcript
        .lines
        .iter()
        .filter_map(|(t, line)| {
            line.split_once(&prefix)
                .map(|(_, rest)| (*t, rest.to_string()))
        })
        .collect();
    results(&lines)
}

/// The domids dom0 reported for frontend `name`, in order of creation.
fn domids(transcript: &Transcript, name: &str) -> Vec<String> {
    let prefix = format!("XL-DOM0 {name} domid=");
    transcript
        .lines
        .iter()
        .filter_map(|(_, line)| line.split_once(&prefix).map(|(_, d)| d.trim().to_string()))
        .filter(|d| !d.is_empty())
        .collect()
}

fn disk_checked(r: &Results) -> bool {
    get(r, "handshake", "backend") == "ready"
        && get(r, "handshake", "blk") == "ready"
        && get(r, "handshake", "net") == "ready"
        && get(r, "blk_verify", "ok") == "1"
        && get(r, "fs", "ok") == "1"
        && get(r, "fs", "fsck") == "clean"
        && get(r, "blk_perf", "rand4k_read_qd32_iops") != "?"
}

/// One line per check, with whether it passed; and the figures worth printing.
pub fn checks(transcript: &Transcript, stubvirt: &[String]) -> (Vec<(String, bool)>, Vec<String>) {
    let fe1 = console(transcript, "FE1");
    let fe2 = console(transcript, "FE2");
    let again = console(transcript, "FE1-AGAIN");
    let fe1_ids = domids(transcript, "fe1");
    let released_clean = |domid: Option<&String>| {
        domid.is_some_and(|d| {
            stubvirt.iter().any(|l| {
                (l.starts_with(&format!("STUBVIRT-XL-RELEASED frontend={d} "))
                    || l.starts_with(&format!("STUBVIRT-FRONTEND-GONE frontend={d} ")))
                    && l.contains(" pages_held=0 ")
            })
        })
    };
    let sent = get(&fe1, "peer_send", "sha256");
    let checks = vec![
        (
            "Linux frontends: each finds its disk and NIC, its disk verifies, ext2 is clean, fe_io runs".to_string(),
            disk_checked(&fe1) && disk_checked(&fe2),
        ),
        (
            "Linux frontends: each pings the other through stubvirt's switch".to_string(),
            get(&fe1, "net", "ping_gw") == "1" && get(&fe2, "net", "ping_gw") == "1",
        ),
        (
            "Linux frontends: 4 MiB over TCP from one to the other, byte-exact".to_string(),
            get(&fe1, "peer_send", "rc") == "0"
                && get(&fe2, "peer_recv", "bytes") == "4194304"
                && sent != "?"
                && get(&fe2, "peer_recv", "sha256") == sent,
        ),
        (
            "Linux frontends: both finish".to_string(),
            get(&fe1, "done", "done") == "1" && get(&fe2, "done", "done") == "1",
        ),
        (
            "Linux frontend created again: served (a new domain), then xl destroy while it uses its disk; stubvirt releases it".to_string(),
            fe1_ids.len() == 2
                && fe1_ids.first() != fe1_ids.get(1)
                && get(&again, "handshake", "blk") == "ready"
                && get(&again, "blk", "dev") != "?"
                && transcript.find("XL-DOM0 destroy rc=0").is_some()
                && released_clean(fe1_ids.get(1)),
        ),
    ];
    let figures = vec![
        format!(
            "fe1: fe_io 4 KiB random read QD1 {} / QD32 {} IOPS, 1 MiB read {} MB/s; ping {} ms",
            get(&fe1, "blk_perf", "rand4k_read_qd1_iops"),
            get(&fe1, "blk_perf", "rand4k_read_qd32_iops"),
            get(&fe1, "blk_perf", "seq1m_read_mbs"),
            get(&fe1, "net", "ping_avg_ms"),
        ),
        format!(
            "fe1 -> fe2: {} bytes in {} s (sha256 {})",
            get(&fe2, "peer_recv", "bytes"),
            get(&fe1, "peer_send", "s"),
            get(&fe2, "peer_recv", "sha256"),
        ),
    ];
    (checks, figures)
}
