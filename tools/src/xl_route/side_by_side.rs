//! `cargo xtask bench-e2e`: stubvirt beside the incumbent, Linux's PV backends, in one
//! boot. The xl route's machine (Xen 4.20 in QEMU, Debian trixie's Linux as dom0, FLASK
//! enforcing) with dom0 also serving: blkback with a RAM disk (`brd`) and netback on a
//! bridge. Two Linux frontends (the demo's kernel and initramfs) each get a virtio disk
//! and NIC from stubvirt and a PV disk and vif from dom0; the first runs `fe_io` on both
//! disks, then each sends the other TCP streams over both networks
//! (`tools/dom0/bench.sh`, `tools/frontend/bench.sh`). Every workload runs on the two
//! backends in turn, the order alternating between rounds, and the table gives the mean
//! of the rounds. The table goes to docs/performance.md (blocks `bench-e2e:`).

use super::{boot, prepare, xen_source_path, Dom0Run};
use crate::bench;
use crate::bench::doc_blocks::Block;
use crate::bench::provenance::{RunStart, PERFORMANCE_DOC};
use crate::console::Transcript;
use crate::process::{step, workspace_root};
use std::collections::BTreeMap;
use std::time::Duration;

const OWNER: &str = "bench-e2e";
const COMMAND: &str = "cargo xtask bench-e2e";
/// Boot to power-off: two rounds of `fe_io` (6 figures of 2 s each, per disk) and of TCP
/// streams, with the boots around them; several times that on a busy host.
const DEADLINE: Duration = Duration::from_secs(1500);
/// What Linux's netback needs beyond stubvirt's policy: it copies a frame from one
/// frontend's tx grant straight into another's rx grant, a grant copy Xen checks between
/// the two frontends (stubvirt's switch copies through its own memory and does not).
const NETBACK_POLICY: &str = "
# bench-e2e only: Linux's netback copies one frontend's grant into another's.
allow stubvirt_frontend_t stubvirt_frontend_t:grant copy;
";
/// The backends, as the frontends name them.
const BACKENDS: [&str; 2] = ["stubvirt", "linux"];

/// One row of the table: a figure both backends produce.
struct Row {
    /// How the frontends' result lines name it (see [`samples`]).
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    /// Whether more is better (throughput) or less (latency).
    higher_is_better: bool,
}

const fn row(key: &'static str, label: &'static str, unit: &'static str) -> Row {
    Row {
        key,
        label,
        unit,
        higher_is_better: true,
    }
}

const ROWS: &[Row] = &[
    row("rand4k_read_qd1_iops", "4 KiB random read, QD 1", "IOPS"),
    row("rand4k_read_qd32_iops", "4 KiB random read, QD 32", "IOPS"),
    row("rand4k_write_qd1_iops", "4 KiB random write, QD 1", "IOPS"),
    row(
        "rand4k_write_qd32_iops",
        "4 KiB random write, QD 32",
        "IOPS",
    ),
    row("seq1m_write_mbs", "1 MiB sequential write", "MiB/s"),
    row("seq1m_read_mbs", "1 MiB sequential read", "MiB/s"),
    row("tcp_1_to_2", "TCP stream, frontend 1 to 2", "MiB/s"),
    row("tcp_2_to_1", "TCP stream, frontend 2 to 1", "MiB/s"),
    Row {
        key: "ping_1_to_2",
        label: "ping round trip, frontend 1 to 2",
        unit: "ms",
        higher_is_better: false,
    },
];

/// The `key=value` fields of a frontend's `FRONTEND-RESULT` line.
fn fields(line: &str) -> Option<BTreeMap<&str, &str>> {
    let (_, rest) = line.split_once("FRONTEND-RESULT ")?;
    Some(
        rest.split_whitespace()
            .filter_map(|field| field.split_once('='))
            .collect(),
    )
}

/// Every figure the frontends printed, by row key and backend, one per round; and the
/// problems they reported (a failed stream, a missing device, a corrupted stream).
#[derive(Default, Debug)]
struct Samples {
    figures: BTreeMap<(String, String), Vec<f64>>,
    problems: Vec<String>,
}

fn samples(lines: &[String]) -> Samples {
    let mut out = Samples::default();
    for line in lines {
        let Some(f) = fields(line) else { continue };
        let (Some(stage), Some(backend)) = (f.get("stage"), f.get("backend")) else {
            continue;
        };
        if f.get("ok") == Some(&"0") {
            out.problems.push(line.trim().to_string());
            continue;
        }
        let mut add =
            |key: String, value: Option<&&str>| match value.and_then(|v| v.parse::<f64>().ok()) {
                Some(v) => out
                    .figures
                    .entry((key, backend.to_string()))
                    .or_default()
                    .push(v),
                None => out.problems.push(format!("no figure in: {line}")),
            };
        match *stage {
            "bench_blk" => {
                for (key, value) in &f {
                    if !["stage", "backend", "round"].contains(key) {
                        add(key.to_string(), Some(value));
                    }
                }
            }
            "bench_tcp" => {
                let key = format!(
                    "tcp_{}_to_{}",
                    f.get("from").unwrap_or(&"?"),
                    f.get("to").unwrap_or(&"?")
                );
                add(key, f.get("mbs"));
            }
            "bench_ping" => {
                let from = line.split_once("XL-FE").and_then(|(_, r)| r.get(..1));
                let to = f.get("to").and_then(|ip| ip.rsplit('.').next());
                let key = format!("ping_{}_to_{}", from.unwrap_or("?"), to.unwrap_or("?"));
                add(key, f.get("avg_ms"));
            }
            _ => {}
        }
    }
    out
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn figure(value: Option<f64>) -> String {
    match value {
        None => "-".into(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// The table's lines, and the rows that lack a figure of either backend.
fn table(samples: &Samples) -> (Vec<String>, Vec<String>) {
    let mut lines = vec![
        "| workload | unit | stubvirt | Linux PV (blkback, netback) | stubvirt / Linux | rounds |"
            .to_string(),
        "|---|---|---|---|---|---|".to_string(),
    ];
    let mut missing = Vec::new();
    for row in ROWS {
        let of = |backend: &str| {
            samples
                .figures
                .get(&(row.key.to_string(), backend.to_string()))
                .map(Vec::as_slice)
                .unwrap_or_default()
        };
        let [ours, theirs] = BACKENDS.map(of);
        let (a, b) = (mean(ours), mean(theirs));
        // Throughput: ours over theirs; latency: theirs over ours. Above 1: stubvirt better.
        let ratio = match (a, b) {
            (Some(a), Some(b)) if row.higher_is_better && b > 0.0 => Some(a / b),
            (Some(a), Some(b)) if !row.higher_is_better && a > 0.0 => Some(b / a),
            _ => None,
        };
        if a.is_none() || b.is_none() {
            missing.push(row.label.to_string());
        }
        lines.push(format!(
            "| {} | {} | {} | {} | {} | {} |",
            row.label,
            row.unit,
            figure(a),
            figure(b),
            ratio.map_or("-".into(), |r| format!("{r:.2}x")),
            ours.len().min(theirs.len())
        ));
    }
    (lines, missing)
}

/// What a run measures: the full bench, or `--check`'s short one (one round, short
/// figures) that `cargo xtask test` runs to keep the bench working; its figures are not
/// written anywhere.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Length {
    Full,
    Check,
}

impl Length {
    /// dom0's command line for this length (`tools/dom0/bench.sh` reads it).
    fn dom0_args(self) -> String {
        let length = match self {
            Length::Full => "",
            Length::Check => " dom0_bench_rounds=1 dom0_bench_s=2 dom0_bench_io_s=1",
        };
        format!("{} dom0_bench=1{length}", boot::DOM0_ARGS)
    }
}

/// `--check` and the Xen source's arguments, apart.
fn parse(args: &[String]) -> (Length, Vec<String>) {
    let length = if args.iter().any(|a| a == "--check") {
        Length::Check
    } else {
        Length::Full
    };
    let rest = args.iter().filter(|a| *a != "--check").cloned().collect();
    (length, rest)
}

/// `cargo xtask bench-e2e [--check] [--xen-source PATH]`.
pub fn command(args: &[String]) -> Result<(), String> {
    let (length, source_args) = parse(args);
    let path = xen_source_path(&source_args, "bench-e2e")?;
    let doc_path = workspace_root().join(PERFORMANCE_DOC);
    let doc = std::fs::read_to_string(&doc_path)
        .map_err(|e| format!("read {}: {e}", doc_path.display()))?;
    // Broken markers fail now, not after the run.
    bench::doc_blocks::find(&doc, OWNER).map_err(|e| format!("{PERFORMANCE_DOC}: {e}"))?;
    let start = RunStart::now();
    let machine = prepare(
        &path,
        &Dom0Run {
            args: &length.dom0_args(),
            extra_policy: NETBACK_POLICY,
        },
        4,
    )?;
    step(&format!(
        "[4/4] booting Xen {} with {} as dom0, stubvirt and Linux's PV backends side by side \
         ({length:?} run, bounded: {} s)",
        machine.source.version,
        machine.dom0.kernel_package,
        DEADLINE.as_secs()
    ));
    let transcript = boot::run(
        &machine.xen,
        &machine.tree,
        DEADLINE,
        "bench-e2e",
        // Both backends' vcpus beside their frontends', as on a real machine.
        crate::arm64::sysdt::Tcg::ThreadPerVcpu,
    )?;
    let table = report(&transcript, &machine.source.version)?;
    if length == Length::Check {
        step(&format!(
            "check run: every row measured on both backends; {PERFORMANCE_DOC} left as it is"
        ));
        return Ok(());
    }
    let produced = [
        Block::new("run", start.block_lines(COMMAND)),
        Block::new("linux-pv", table),
    ];
    bench::doc_blocks::rewrite_file(&doc_path, OWNER, COMMAND, &produced)?;
    step(&format!("wrote {PERFORMANCE_DOC}: blocks run, linux-pv"));
    Ok(())
}

/// Prints what the run measured; the table, when every row has both figures and nothing
/// failed.
fn report(transcript: &Transcript, xen_version: &str) -> Result<Vec<String>, String> {
    let lines: Vec<String> = transcript.lines.iter().map(|(_, l)| l.clone()).collect();
    let samples = samples(&lines);
    let (table, missing) = table(&samples);
    let denials: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("avc:  denied"))
        .collect();
    println!("\n==== stubvirt beside Linux's PV backends (Xen {xen_version}, one boot)");
    let context = [
        "XL-DOM0 ",
        "stage=bench_setup",
        "STUBVIRT-READY",
        "STUBVIRT-XL-",
    ];
    for line in lines
        .iter()
        .filter(|l| context.iter().any(|c| l.contains(c)))
    {
        println!("    {line}");
    }
    for line in &table {
        println!("{line}");
    }
    println!("FLASK denials: {}", denials.len());
    for line in denials.iter().take(10) {
        println!("    {line}");
    }
    let mut problems: Vec<String> = samples.problems.clone();
    problems.extend(
        missing
            .iter()
            .map(|row| format!("no figure for both: {row}")),
    );
    problems.extend(denials.iter().take(3).map(|l| format!("FLASK: {l}")));
    if problems.is_empty() {
        Ok(table)
    } else {
        Err(format!(
            "the side-by-side run is incomplete ({PERFORMANCE_DOC} left as it is); log {}:\n  {}",
            transcript.log.display(),
            problems.join("\n  ")
        ))
    }
}

#[cfg(test)]
mod tests;
