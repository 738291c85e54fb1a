//! `cargo xtask bench [--quick] [queue|datapath ...]`: the criterion benchmarks of
//! `tests/benches` (queue processing against rust-vmm `virtio-queue`; block and net
//! data paths, hypercalls and exits per request, footprint through the simulated Xen),
//! then their summary tables again, with the machine they ran on.
//!
//! Criterion's own output streams as it runs; the tables each bench prints at its end
//! are collected and repeated at the bottom so they are not lost in it.

use crate::process::{cargo, step, workspace_root};
use std::io::{BufRead, BufReader};
use std::process::Stdio;

const BENCHES: [&str; 2] = ["queue", "datapath"];

pub fn run(args: &[String]) -> Result<(), String> {
    let mut quick = false;
    let mut selected = Vec::new();
    for arg in args {
        match arg.as_str() {
            "--quick" => quick = true,
            name if BENCHES.contains(&name) => selected.push(name.to_string()),
            other => {
                return Err(format!(
                    "bench: unknown argument `{other}` (benches: {BENCHES:?}, --quick)"
                ))
            }
        }
    }
    if selected.is_empty() {
        selected = BENCHES.iter().map(|b| b.to_string()).collect();
    }
    let root = workspace_root();
    let mut tables = vec![machine()];
    for bench in &selected {
        step(&format!("cargo bench -p stubvirt-tests --bench {bench}"));
        let mut command = cargo();
        command
            .args(["bench", "-p", "stubvirt-tests", "--bench", bench])
            .env("CRITERION_HOME", root.join("target/criterion"))
            .current_dir(&root)
            .stdout(Stdio::piped());
        if quick {
            command.env("STUBVIRT_BENCH_QUICK", "1");
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start cargo bench: {e}"))?;
        let stdout = child.stdout.take().ok_or("cargo bench has no stdout")?;
        let mut in_tables = false;
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| format!("reading cargo bench output: {e}"))?;
            println!("{line}");
            in_tables |= line.starts_with("## ");
            if in_tables {
                tables.push(line);
            }
        }
        let status = child.wait().map_err(|e| format!("cargo bench: {e}"))?;
        if !status.success() {
            return Err(format!("cargo bench --bench {bench} failed: {status}"));
        }
    }
    step("summary");
    for line in tables {
        println!("{line}");
    }
    Ok(())
}

/// The machine line for the tables: cores and CPU model.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("machine: {cores} cores, {model}")
}
