//! `cargo xtask grant-bench`: stubvirt's arm64 image as dom0 of the real Xen (QEMU TCG)
//! with `grantbench=1` times the two routes to a frontend's bytes, map + copy + unmap
//! against `GNTTABOP_copy`, and this prints the table with the faster route per size.
//! A run whose every copy moved the right bytes writes the table and its provenance into
//! docs/performance.md (blocks `grant-bench:routes` and `grant-bench:run`, see
//! `doc_blocks`), so the figures there are always a whole run's.

use super::doc_blocks::{self, Block};
use super::provenance::{RunStart, PERFORMANCE_DOC};
use crate::arm64::sysdt::{Role, BOOTARGS};
use crate::console::End;
use crate::process::{step, workspace_root};
use crate::{apt, arm64};
use std::collections::BTreeMap;

/// The blocks this command writes are `<!-- grant-bench:ID ... -->`.
const OWNER: &str = "grant-bench";
const COMMAND: &str = "cargo xtask grant-bench";

/// One case of the kernel's `STUBVIRT-GRANTBENCH` lines.
#[derive(Debug, PartialEq)]
pub struct Case {
    pub way: String,
    pub bytes: u64,
    pub frames: u64,
    pub map_ns: u64,
    pub copy_ns: u64,
    pub ok: bool,
}

/// Parses one result line (`None` for the setup and `done` lines).
pub fn parse(line: &str) -> Option<Case> {
    let rest = line.split("STUBVIRT-GRANTBENCH ").nth(1)?;
    let f: BTreeMap<&str, &str> = rest
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok());
    Some(Case {
        way: f.get("way")?.to_string(),
        bytes: num("bytes")?,
        frames: num("frames")?,
        map_ns: num("map_ns")?,
        copy_ns: num("copy_ns")?,
        ok: f.get("ok") == Some(&"1"),
    })
}

pub fn command(_args: &[String]) -> Result<(), String> {
    let start = RunStart::now();
    apt::ensure_installed(
        &["qemu-system-arm", "device-tree-compiler"],
        "booting Xen for arm64 in QEMU",
    )?;
    // `grantbench=1` is a test mode: the test image.
    let image = arm64::image::build_test()?;
    let xen = arm64::xen::hypervisor()?;
    step("grant routes under Xen 4.17.5 (arm64 dom0, QEMU TCG): map+copy+unmap vs GNTTABOP_copy");
    let args = format!("{BOOTARGS} grantbench=1");
    let transcript =
        arm64::boot::boot(&image, &xen, Role::Dom0, &args, "arm64-grant-bench", |l| {
            l.contains("STUBVIRT-GRANTBENCH done") || l.contains("STUBVIRT-GRANTBENCH setup=")
        })?;
    let cases: Vec<Case> = transcript
        .lines
        .iter()
        .filter_map(|(_, l)| parse(l))
        .collect();
    if !matches!(transcript.end, End::Stopped(_)) || cases.is_empty() {
        return Err(format!(
            "the grant bench did not finish; log {}; last lines:\n{}",
            transcript.log.display(),
            transcript.tail(20)
        ));
    }
    let table = table(&cases);
    for line in &table {
        println!("{line}");
    }
    if cases.iter().any(|c| !c.ok) || transcript.find("done ok=1").is_none() {
        return Err("a route did not move the right bytes (table above)".into());
    }
    let blocks = [
        Block::new("run", start.block_lines(COMMAND)),
        Block::new("routes", table),
    ];
    doc_blocks::rewrite_file(
        &workspace_root().join(PERFORMANCE_DOC),
        OWNER,
        COMMAND,
        &blocks,
    )?;
    step(&format!(
        "wrote {PERFORMANCE_DOC}: blocks grant-bench:run, grant-bench:routes"
    ));
    Ok(())
}

/// The result table, one row per case, with the faster route.
fn table(cases: &[Case]) -> Vec<String> {
    let mut lines = vec![
        "| way | bytes x frames | map+copy+unmap | GNTTABOP_copy | copy/map | faster |".to_string(),
        "|---|---|---|---|---|---|".to_string(),
    ];
    for c in cases {
        lines.push(format!(
            "| {} | {} x {} | {:.1} us | {:.1} us | {:.2} | {}{} |",
            if c.way == "from" {
                "frontend -> backend"
            } else {
                "backend -> frontend"
            },
            c.bytes,
            c.frames,
            c.map_ns as f64 / 1000.0,
            c.copy_ns as f64 / 1000.0,
            c.copy_ns as f64 / c.map_ns.max(1) as f64,
            if c.copy_ns < c.map_ns { "copy" } else { "map" },
            if c.ok { "" } else { " (DATA CHECK FAILED)" }
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_result_line_and_skips_the_others() {
        let case = parse(
            "(XEN) DOM0: STUBVIRT-GRANTBENCH way=to bytes=1500 frames=32 map_ns=91000 copy_ns=40000 ok=1",
        );
        assert_eq!(
            case,
            Some(Case {
                way: "to".into(),
                bytes: 1500,
                frames: 32,
                map_ns: 91000,
                copy_ns: 40000,
                ok: true
            })
        );
        assert_eq!(parse("STUBVIRT-GRANTBENCH done ok=1 iterations=300"), None);
        assert_eq!(parse("STUBVIRT-GRANTBENCH setup=failed"), None);
    }
}
