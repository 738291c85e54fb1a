//! Shared by the benchmark binaries: criterion set-up, reading back criterion's medians
//! for the summary tables, and table printing.

use criterion::Criterion;
use std::path::PathBuf;
use std::time::Duration;

/// Where criterion keeps its results; `cargo xtask bench` sets it, a plain `cargo bench`
/// gets the workspace's `target/criterion`.
pub fn criterion_home() -> PathBuf {
    match std::env::var_os("CRITERION_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/criterion"),
    }
}

/// Criterion with short, repeated samples (the machine is shared: medians, not means).
/// `STUBVIRT_BENCH_QUICK=1` shortens the runs further, for a smoke test.
pub fn criterion() -> Criterion {
    let home = criterion_home();
    // SAFETY-free in edition 2021: set before criterion starts, single-threaded here.
    std::env::set_var("CRITERION_HOME", &home);
    let quick = std::env::var_os("STUBVIRT_BENCH_QUICK").is_some();
    let (warm, measure, samples) = if quick {
        (Duration::from_millis(200), Duration::from_millis(500), 10)
    } else {
        (Duration::from_millis(800), Duration::from_secs(2), 30)
    };
    Criterion::default()
        .warm_up_time(warm)
        .measurement_time(measure)
        .sample_size(samples)
        .without_plots()
        .configure_from_args()
}

/// Criterion's median time per iteration, in nanoseconds, for `group/id`.
pub fn median_ns(group: &str, id: &str) -> Option<f64> {
    let path = criterion_home()
        .join(group)
        .join(id)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let median = text.get(text.find("\"median\"")?..)?;
    let value = median.get(median.find("\"point_estimate\":")? + 17..)?;
    let end = value.find([',', '}'])?;
    value.get(..end)?.trim().parse().ok()
}

/// Prints a table with a title, a header row and rows, columns padded.
///
/// The table lines are framed by `<!-- bench:{id} -->` and `<!-- /bench:{id} -->`:
/// `cargo xtask bench` finds them by these markers and copies the lines between them,
/// unchanged, into the block of the same id in docs/performance.md. So `id` must stay
/// stable, and the lines carry nothing but the table (no trailing whitespace).
pub fn print_table(id: &str, title: &str, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    println!("\n## {title}\n");
    println!("<!-- bench:{id} -->");
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    line(header.iter().map(|h| h.to_string()).collect());
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for row in rows {
        line(row.clone());
    }
    println!("<!-- /bench:{id} -->");
}

/// A rate with an SI suffix.
pub fn si(value: f64) -> String {
    if value >= 1e9 {
        format!("{:.2} G", value / 1e9)
    } else if value >= 1e6 {
        format!("{:.2} M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1} k", value / 1e3)
    } else {
        format!("{value:.1}")
    }
}
