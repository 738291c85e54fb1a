//! `cargo xtask fuzz [--seconds N] [--save-corpus] [--no-sanitizer] [TARGET...]`: every
//! libFuzzer target of `devices/fuzz` for N seconds each, with a table of executions.
//! `cargo xtask test` runs a short smoke of each (the corpus replay on stable is part of
//! `cargo test`).
//!
//! The address sanitizer is on by default: it guards the harness's own `unsafe` (page
//! allocation, the virtio-drivers HAL). The code under test, `devices`, forbids `unsafe`,
//! so a long campaign may leave it out with `--no-sanitizer`, about 6.6x the executions
//! (`ring_net`: 6,397 against 965 per second here); overflow checks stay on either way.
//!
//! Needs the rustup nightly toolchain (on the machine) and cargo-fuzz, which is installed
//! from crates.io when missing.

use crate::process::{step, workspace_root};
use std::path::{Path, PathBuf};
use std::process::Command;

const FUZZ_DIR: &str = "devices/fuzz";
/// Fuzz builds go with the other build outputs, not inside `devices/`; one directory per
/// sanitizer setting, so switching does not rebuild.
const TARGET_DIR: &str = "target/fuzz";
const TARGET_DIR_NO_SANITIZER: &str = "target/fuzz-nosan";
/// Seconds per target in the smoke `cargo xtask test` runs.
pub const SMOKE_SECONDS: u64 = 5;
/// The smoke is deterministic: a fixed seed, so CI is not red by chance; it also stops
/// after this many executions if they come before the time limit.
const SMOKE_SEED: &str = "-seed=1";
const SMOKE_RUNS: u64 = 20_000;

struct Options {
    seconds: u64,
    save_corpus: bool,
    /// Deterministic smoke: fixed seed and a cap on executions.
    smoke: bool,
    /// Build and run without the address sanitizer (`-s none`).
    no_sanitizer: bool,
    targets: Vec<String>,
}

impl Options {
    /// cargo-fuzz's sanitizer and target directory arguments.
    /// Without the sanitizer, the harness also recycles simulated frontends' pages (it
    /// would hide a use after free from the sanitizer, so never with it).
    fn build_args(&self) -> &'static [&'static str] {
        if self.no_sanitizer {
            &[
                "--sanitizer",
                "none",
                "--features",
                "recycle-pages",
                "--target-dir",
                TARGET_DIR_NO_SANITIZER,
            ]
        } else {
            &["--sanitizer", "address", "--target-dir", TARGET_DIR]
        }
    }
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        seconds: 60,
        save_corpus: false,
        smoke: false,
        no_sanitizer: false,
        targets: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().ok_or("--seconds needs a number")?;
                options.seconds = value
                    .parse()
                    .map_err(|_| format!("--seconds: `{value}` is not a number"))?;
            }
            "--save-corpus" => options.save_corpus = true,
            "--smoke" => options.smoke = true,
            "--no-sanitizer" => options.no_sanitizer = true,
            name if !name.starts_with('-') => options.targets.push(name.to_string()),
            other => return Err(format!("fuzz: unknown option `{other}`")),
        }
    }
    Ok(options)
}

/// The targets cargo-fuzz knows: one file each in `devices/fuzz/fuzz_targets`.
fn all_targets() -> Result<Vec<String>, String> {
    let dir = workspace_root().join(FUZZ_DIR).join("fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .flatten()
        .filter_map(|entry| {
            entry
                .path()
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    Ok(names)
}

fn nightly_cargo() -> Command {
    let mut command = Command::new("rustup");
    command
        .args(["run", "nightly", "cargo"])
        .current_dir(workspace_root());
    // The xtask runs under stable cargo; do not let its settings leak into nightly's.
    for var in [
        "CARGO",
        "RUSTC",
        "RUSTDOC",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "RUSTUP_TOOLCHAIN",
    ] {
        command.env_remove(var);
    }
    command
}

/// `cargo fuzz run TARGET` with the project's fuzz and target directories.
fn fuzz_run(target: &str, build_args: &[&str]) -> Command {
    let mut command = nightly_cargo();
    command
        .args(["fuzz", "run", "--fuzz-dir", FUZZ_DIR])
        .args(build_args)
        .arg(target);
    command
}

fn ensure_cargo_fuzz() -> Result<(), String> {
    let present = nightly_cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if present {
        return Ok(());
    }
    step("installing cargo-fuzz from crates.io (once)");
    crate::process::run(crate::process::cargo().args(["install", "cargo-fuzz", "--locked"]))
}

/// One target's run: executions done, or the failure.
struct Outcome {
    target: String,
    executions: u64,
    seconds: u64,
    corpus: usize,
    error: Option<String>,
}

fn run_target(target: &str, options: &Options) -> Result<Outcome, String> {
    let (seconds, save_corpus, smoke) = (options.seconds, options.save_corpus, options.smoke);
    let root = workspace_root();
    let saved = root.join(FUZZ_DIR).join("corpus").join(target);
    let scratch = root.join("target").join("fuzz-corpus").join(target);
    if smoke {
        // Same inputs every time: start from the repository corpus alone.
        let _ = std::fs::remove_dir_all(&scratch);
    }
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let mut command = fuzz_run(target, options.build_args());
    command.arg(&scratch);
    // The repository corpus seeds the run but is only written with --save-corpus.
    if saved.is_dir() {
        command.arg(&saved);
    }
    command.args([
        "--",
        &format!("-max_total_time={seconds}"),
        if smoke { SMOKE_SEED } else { "-seed=0" },
        &if smoke {
            format!("-runs={SMOKE_RUNS}")
        } else {
            "-runs=-1".to_string()
        },
        "-print_final_stats=1",
    ]);
    let output = command
        .output()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    let log = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    let log_path = root
        .join("target")
        .join("logs")
        .join(format!("fuzz-{target}.log"));
    if let Some(dir) = log_path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(&log_path, &log);
    let executions = log
        .lines()
        .rev()
        .filter_map(|l| {
            l.strip_prefix("Done ")
                .and_then(|rest| rest.split_whitespace().next())
        })
        .find_map(|n| n.parse().ok())
        .unwrap_or(0);
    let error = (!output.status.success()).then(|| {
        let artifact = log
            .lines()
            .find(|l| l.contains("Test unit written to"))
            .unwrap_or("no artifact line");
        format!(
            "{target} failed ({}); {artifact}; full log {}",
            output.status,
            log_path.display()
        )
    });
    if save_corpus && error.is_none() {
        merge_into(target, &saved, &scratch, options.build_args())?;
    }
    Ok(Outcome {
        target: target.to_string(),
        executions,
        seconds,
        corpus: count_files(&saved),
        error,
    })
}

/// Adds the scratch inputs that bring new coverage to the repository corpus.
fn merge_into(
    target: &str,
    saved: &Path,
    scratch: &PathBuf,
    build_args: &[&str],
) -> Result<(), String> {
    std::fs::create_dir_all(saved).map_err(|e| format!("{}: {e}", saved.display()))?;
    let status = fuzz_run(target, build_args)
        .arg(saved)
        .arg(scratch)
        .args(["--", "-merge=1"])
        .output()
        .map_err(|e| format!("cannot merge corpus: {e}"))?
        .status;
    if status.success() {
        Ok(())
    } else {
        Err(format!("merging the {target} corpus failed: {status}"))
    }
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

pub fn run(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    ensure_cargo_fuzz()?;
    let known = all_targets()?;
    let targets = if options.targets.is_empty() {
        known.clone()
    } else {
        options.targets.clone()
    };
    if let Some(unknown) = targets.iter().find(|t| !known.contains(t)) {
        return Err(format!(
            "no fuzz target `{unknown}`; targets: {}",
            known.join(", ")
        ));
    }
    step(if options.no_sanitizer {
        "building the fuzz targets (nightly, no sanitizer)"
    } else {
        "building the fuzz targets (nightly, address sanitizer)"
    });
    let status = nightly_cargo()
        .args(["fuzz", "build", "--fuzz-dir", FUZZ_DIR])
        .args(options.build_args())
        .status()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    if !status.success() {
        return Err(format!("building the fuzz targets failed: {status}"));
    }
    let mut outcomes = Vec::new();
    for target in &targets {
        step(&format!("fuzzing {target} for {} s", options.seconds));
        outcomes.push(run_target(target, &options)?);
    }
    println!(
        "\n{:<16} {:>8} {:>14} {:>10} {:>10}  result",
        "target", "seconds", "executions", "exec/s", "corpus"
    );
    for o in &outcomes {
        println!(
            "{:<16} {:>8} {:>14} {:>10} {:>10}  {}",
            o.target,
            o.seconds,
            o.executions,
            o.executions / o.seconds.max(1),
            o.corpus,
            if o.error.is_some() { "FAILED" } else { "ok" }
        );
    }
    let failures: Vec<String> = outcomes.into_iter().filter_map(|o| o.error).collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\nTurn each crash into a regression: copy the artifact to {FUZZ_DIR}/regressions/<target>/ (replayed by `cargo test`), then fix.",
            failures.join("\n")
        ))
    }
}

/// The short run `cargo xtask test` makes of every target.
pub fn smoke() -> Result<(), String> {
    run(&[
        "--smoke".to_string(),
        "--seconds".to_string(),
        SMOKE_SECONDS.to_string(),
    ])
}
