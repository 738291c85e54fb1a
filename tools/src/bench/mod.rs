//! Measuring stubvirt: the benchmark commands and the blocks of figures they write into docs.
//!
//! `cargo xtask bench [--quick] [queue|datapath ...]`: the criterion benchmarks of
//! `tests/benches` (queue processing against rust-vmm `virtio-queue`; block and net
//! data paths, hypercalls and exits per request, footprint through the simulated Xen),
//! then their summary tables again.
//!
//! A full run (every bench, no `--quick`) also builds both images for their sizes and
//! then rewrites the generated blocks of docs/performance.md (see `doc_blocks`): the
//! run's provenance (`bench:run`), every table the benches print, by the id each is
//! printed with (`print_table` in tests/benches/common), and the images (`bench:images`).
//! A table without a block, or a block without a table, fails the run, so the document
//! and the benches cannot drift apart. A partial or quick run only prints: its figures
//! are not comparable with a full run's.
//!
//! Criterion's own output streams as it runs; the tables each bench prints at its end
//! are collected and repeated at the bottom so they are not lost in it.

pub mod doc_blocks;
pub mod grant;
pub mod provenance;

use crate::process::{cargo, step, workspace_root};
use doc_blocks::Block;
use provenance::{RunStart, PERFORMANCE_DOC};
use std::io::{BufRead, BufReader};
use std::process::Stdio;

const BENCHES: [&str; 2] = ["queue", "datapath"];
/// The blocks this command writes are `<!-- bench:ID ... -->`.
const OWNER: &str = "bench";
const COMMAND: &str = "cargo xtask bench";

/// The image sizes are their own blocks, `images:`: sized by every full run, or alone by
/// `cargo xtask bench images` (no benches, a few minutes of building).
const IMAGES_OWNER: &str = "images";
const IMAGES_COMMAND: &str = "cargo xtask bench images";

pub fn run(args: &[String]) -> Result<(), String> {
    if args == ["images"] {
        return write_image_sizes();
    }
    let mut quick = false;
    let mut selected = Vec::new();
    for arg in args {
        match arg.as_str() {
            "--quick" => quick = true,
            name if BENCHES.contains(&name) => selected.push(name.to_string()),
            other => {
                return Err(format!(
                    "bench: unknown argument `{other}` (benches: {BENCHES:?}, --quick; \
                     or `images` alone)"
                ))
            }
        }
    }
    if selected.is_empty() {
        selected = BENCHES.iter().map(|b| b.to_string()).collect();
    }
    let full = !quick && BENCHES.iter().all(|b| selected.iter().any(|s| s == b));
    let doc_path = workspace_root().join(PERFORMANCE_DOC);
    let doc = std::fs::read_to_string(&doc_path)
        .map_err(|e| format!("read {}: {e}", doc_path.display()))?;
    // Broken markers fail now, not after the minutes of a run.
    doc_blocks::find(&doc, OWNER).map_err(|e| format!("{PERFORMANCE_DOC}: {e}"))?;

    let start = RunStart::now();
    if full {
        write_image_sizes()?;
    }
    let mut produced = Vec::new();
    let mut tables = Vec::new();
    for bench in &selected {
        tables.extend(run_bench(bench, quick)?);
    }
    step("summary");
    println!(
        "machine: {}, commit {}",
        provenance::machine(),
        start.commit
    );
    for line in &tables {
        println!("{line}");
    }
    produced.extend(
        doc_blocks::find(&tables.join("\n"), OWNER)
            .map_err(|e| format!("the benches' tables: {e}"))?,
    );

    if !full {
        if let Some(problem) = doc_blocks::unplaced(&doc, OWNER, &produced)? {
            return Err(format!("{PERFORMANCE_DOC}: {problem}"));
        }
        step(&format!(
            "partial run (--quick or not every bench): {PERFORMANCE_DOC} left as it is; \
             only a full `{COMMAND}` rewrites it"
        ));
        return Ok(());
    }
    produced.insert(0, Block::new("run", start.block_lines(COMMAND)));
    doc_blocks::rewrite_file(&doc_path, OWNER, COMMAND, &produced)?;
    let ids: Vec<&str> = produced.iter().map(|b| b.id.as_str()).collect();
    step(&format!(
        "wrote {PERFORMANCE_DOC}: blocks {} ({})",
        ids.join(", "),
        provenance::duration(start.clock.elapsed())
    ));
    Ok(())
}

/// Runs one bench binary, streaming its output, and returns its lines from the first
/// table title on (the tables it prints at its end).
fn run_bench(bench: &str, quick: bool) -> Result<Vec<String>, String> {
    let root = workspace_root();
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
    let mut tables = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading cargo bench output: {e}"))?;
        println!("{line}");
        if !tables.is_empty() || line.starts_with("## ") {
            tables.push(line);
        }
    }
    let status = child.wait().map_err(|e| format!("cargo bench: {e}"))?;
    if !status.success() {
        return Err(format!("cargo bench --bench {bench} failed: {status}"));
    }
    Ok(tables)
}

/// Rewrites the `images:` blocks of the performance document: when, and the sizes.
fn write_image_sizes() -> Result<(), String> {
    let start = RunStart::now();
    let sizes = image_sizes()?;
    let doc_path = workspace_root().join(PERFORMANCE_DOC);
    let blocks = [Block::new("run", start.block_lines(IMAGES_COMMAND)), sizes];
    doc_blocks::rewrite_file(&doc_path, IMAGES_OWNER, IMAGES_COMMAND, &blocks)?;
    step(&format!("wrote {PERFORMANCE_DOC}: the image sizes"));
    Ok(())
}

/// The `sizes` block: the images built afresh from the measured tree (what is in
/// `target/images` may be another commit's), and the product images' sizes against the
/// budget (`cargo xtask test` fails over it); the test image's, for comparison.
fn image_sizes() -> Result<Block, String> {
    use crate::build::IMAGE_BUDGET_BYTES;
    let images = [
        (crate::arm64::image::build()?, true),
        (crate::x86::image::build()?, true),
        (crate::arm64::image::build_test()?, false),
    ];
    let root = workspace_root();
    let mut lines = vec![
        "| image | bytes | KiB | of the 256 KiB budget |".to_string(),
        "|---|---|---|---|".to_string(),
    ];
    for (image, budgeted) in images {
        let bytes = std::fs::metadata(&image)
            .map_err(|e| format!("{}: {e}", image.display()))?
            .len();
        let shown = image.strip_prefix(&root).unwrap_or(&image).display();
        let share = if budgeted {
            format!("{:.0}%", 100.0 * bytes as f64 / IMAGE_BUDGET_BYTES as f64)
        } else {
            "test modes added: no budget".to_string()
        };
        lines.push(format!(
            "| `{shown}` | {bytes} | {:.1} | {share} |",
            bytes as f64 / 1024.0,
        ));
    }
    Ok(Block::new("sizes", lines))
}
