//! The demo with several frontends (`--frontends N`, the route with no dom0): what each
//! frontend is told, each frontend's own view of the transcript (so that the one-frontend
//! summary checks it unchanged), its share of the host disk, and the check of the
//! frontend-to-frontend transfer through stubvirt's switch.

use super::host;
use super::layout::SHARE_BYTES;
use crate::console::{End, Transcript};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Port the second frontend takes the first one's stream on.
const PEER_PORT: u16 = 5001;
/// Port the second frontend waits on for the word to crash (`--crash`).
const CRASH_PORT: u16 = 5002;

/// Frontend `n`'s (0-based) command line: its own address (10.0.2.15 + n); with several,
/// the first sends to the second and the second listens.
pub fn frontend_args(base: &str, n: usize, count: usize) -> String {
    let mut args = base.to_string();
    if count > 1 {
        args.push_str(&format!(" fe_ip=10.0.2.{}", 15 + n));
        match n {
            0 => args.push_str(&format!(" fe_peer=10.0.2.16:{PEER_PORT}")),
            1 => args.push_str(&format!(" fe_peer_listen={PEER_PORT}")),
            _ => {}
        }
    }
    args
}

/// Frontend `n`'s extra command line with `--crash`: the second one crashes when the
/// first tells it (its panic ends in a reboot request, which Xen sees), the first runs
/// I/O meanwhile.
pub fn crash_args(n: usize) -> String {
    match n {
        0 => format!(" fe_survive=10.0.2.16:{CRASH_PORT}"),
        1 => format!(" fe_crash_on={CRASH_PORT} panic=-1"),
        _ => String::new(),
    }
}

/// The transcript as frontend `domid` alone would have produced it: other frontends'
/// console lines and READY lines left out, the counters line's `fe<domid>.` devices named
/// as with one frontend and the others' dropped.
pub fn view(t: &Transcript, domid: u32, all: &[u32]) -> Transcript {
    let others: Vec<u32> = all.iter().copied().filter(|&d| d != domid).collect();
    let mut lines = Vec::new();
    let mut end = End::TimedOut;
    for (i, (time, line)) in t.lines.iter().enumerate() {
        let foreign = others.iter().any(|o| {
            line.contains(&format!("DOM{o}: "))
                || line.contains(&format!("STUBVIRT-READY frontend={o} "))
        });
        if !foreign {
            lines.push((*time, counters_for(line, domid)));
        }
        if matches!(t.end, End::Stopped(stop) if stop == i) {
            end = End::Stopped(lines.len().saturating_sub(1));
        }
    }
    if let End::Exited(status) = t.end {
        end = End::Exited(status);
    }
    Transcript {
        lines,
        end,
        log: t.log.clone(),
    }
}

/// `t` up to (not including) its first line containing `needle`.
pub fn before(mut t: Transcript, needle: &str) -> Transcript {
    if let Some(at) = t.lines.iter().position(|(_, l)| l.contains(needle)) {
        t.lines.truncate(at);
        if matches!(t.end, End::Stopped(stop) if stop >= at) {
            t.end = End::Stopped(at.saturating_sub(1));
        }
    }
    t
}

/// A counters line with only `domid`'s devices, named without their prefix.
fn counters_for(line: &str, domid: u32) -> String {
    let Some((head, rest)) = line.split_once("STUBVIRT-COUNTERS ") else {
        return line.to_string();
    };
    let own = format!("fe{domid}.");
    let words: Vec<String> = rest
        .split_whitespace()
        .filter_map(|word| {
            if let Some(device) = word.strip_prefix(&own) {
                return Some(device.to_string());
            }
            if word.starts_with("fe") && word.contains('.') {
                return None;
            }
            if let Some(list) = word.strip_prefix("per_vcpu=") {
                let mine = list
                    .split(',')
                    .find_map(|part| part.strip_prefix(&format!("{domid}:")))
                    .unwrap_or(list);
                return Some(format!("per_vcpu={mine}"));
            }
            Some(word.to_string())
        })
        .collect();
    format!("{head}STUBVIRT-COUNTERS {}", words.join(" "))
}

/// sha256 of frontend `n`'s share of the raw disk image.
pub fn share_sha256(image: &Path, n: usize) -> Result<String, String> {
    let mut file = std::fs::File::open(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let mut bytes = vec![0u8; SHARE_BYTES as usize];
    file.seek(SeekFrom::Start(n as u64 * SHARE_BYTES))
        .and_then(|_| file.read_exact(&mut bytes))
        .map_err(|e| format!("{}: {e}", image.display()))?;
    host::sha256_of_bytes(&bytes)
}

/// The frontend-to-frontend check: the sender reached the receiver (ping), and the
/// receiver got exactly the bytes the host had sent, by sha256.
pub fn peer(sender: &Transcript, receiver: &Transcript, host_sha256: &str) -> (bool, String) {
    let sent = crate::demo::report::results(&sender.lines);
    let got = crate::demo::report::results(&receiver.lines);
    let field = |r, stage, key| crate::demo::report::get(r, stage, key).to_string();
    let ping = field(&sent, "peer_send", "ping");
    let sent_sha = field(&sent, "peer_send", "sha256");
    let got_sha = field(&got, "peer_recv", "sha256");
    let got_bytes = field(&got, "peer_recv", "bytes");
    let passed = ping == "1" && sent_sha == host_sha256 && got_sha == host_sha256;
    let detail = format!(
        "first frontend pinged the second: {}; sent {} bytes (sha256 {}), the second \
         received {got_bytes} bytes (sha256 {}) in {} tries; {}",
        if ping == "1" { "replied" } else { "no reply" },
        field(&sent, "peer_send", "bytes"),
        sent_sha.get(..16).unwrap_or(&sent_sha),
        got_sha.get(..16).unwrap_or(&got_sha),
        field(&sent, "peer_send", "tries"),
        if passed {
            "equal to what the host sent"
        } else {
            "NOT what the host sent"
        }
    );
    (passed, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_frontend_sees_only_its_own_lines_and_devices() {
        let lines = [
            "(XEN) DOM2: FRONTEND-RESULT stage=net ip=10.0.2.15",
            "(XEN) DOM3: FRONTEND-RESULT stage=net ip=10.0.2.16",
            "(XEN) DOM1: STUBVIRT-READY frontend=2 vcpus=2 devices=blk@0x2000000",
            "(XEN) DOM1: STUBVIRT-READY frontend=3 vcpus=2 devices=blk@0x2000000",
            "(XEN) DOM1: STUBVIRT-COUNTERS ioreqs=9 per_vcpu=2:3/4,3:5/6 ioreq_errors=0 \
             fe2.blk=req:1,held:0 fe3.blk=req:7,held:0 uplink=in:1,irqs:2",
        ];
        let t = Transcript {
            lines: lines
                .iter()
                .map(|l| (Duration::from_secs(1), l.to_string()))
                .collect(),
            end: End::Stopped(4),
            log: "x".into(),
        };
        let third = view(&t, 3, &[2, 3]);
        let text: Vec<&str> = third.lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(text.len(), 3);
        assert!(text[0].contains("10.0.2.16"));
        assert!(text[1].contains("frontend=3"));
        assert_eq!(
            text[2],
            "(XEN) DOM1: STUBVIRT-COUNTERS ioreqs=9 per_vcpu=5/6 ioreq_errors=0 \
             blk=req:7,held:0 uplink=in:1,irqs:2"
        );
        assert!(matches!(third.end, End::Stopped(2)));
        let cut = before(third, "STUBVIRT-COUNTERS");
        assert_eq!(cut.lines.len(), 2);
        assert!(matches!(cut.end, End::Stopped(1)));
    }

    #[test]
    fn the_first_frontend_sends_and_the_second_listens() {
        assert_eq!(frontend_args("a", 0, 1), "a");
        assert_eq!(
            frontend_args("a", 0, 2),
            "a fe_ip=10.0.2.15 fe_peer=10.0.2.16:5001"
        );
        assert_eq!(
            frontend_args("a", 1, 2),
            "a fe_ip=10.0.2.16 fe_peer_listen=5001"
        );
    }
}
