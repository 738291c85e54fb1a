//! `cargo xtask build` for x86_64: the PVH ELF `target/images/stubvirt-x86_64.elf`.
//!
//! Built with the rustup stable toolchain for the host triple, as a static, non-PIE
//! binary linked by `rust-lld` with `linker/x86_64.ld` (passed by `kernel/build.rs`). The
//! rustflags are set for this build only: `--target` keeps them away from build scripts
//! and proc-macros, which must still link as normal host programs.

use crate::process::{cargo, run, step, workspace_root};
use std::path::PathBuf;

/// The triple the image is compiled for (the host's: rustup has its `core`/`alloc`).
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Rustflags of the bare-metal image.
pub const RUSTFLAGS: &str = "-C linker=rust-lld -C linker-flavor=ld.lld \
    -C relocation-model=static -C code-model=small -C link-arg=--no-dynamic-linker \
    -C link-arg=-static -C link-arg=--strip-all";

/// Where the image lands.
pub fn image_path() -> PathBuf {
    workspace_root().join("target/images/stubvirt-x86_64.elf")
}

/// A cargo command for the image crate with the image's target and flags.
pub fn image_cargo(subcommand: &str) -> std::process::Command {
    let mut command = cargo();
    command
        .env("RUSTFLAGS", RUSTFLAGS)
        .args([
            subcommand,
            "--package",
            "kernel",
            "--features",
            "image",
            "--release",
        ])
        .args(["--target", TARGET]);
    command
}

/// Builds the image and copies it to [`image_path`]; prints its size.
pub fn build() -> Result<PathBuf, String> {
    step("building the x86_64 PVH image (kernel, rustup stable, no_std)");
    run(image_cargo("build").args(["--bin", "stubvirt"]))?;
    let built = workspace_root()
        .join("target")
        .join(TARGET)
        .join("release/stubvirt");
    let image = image_path();
    if let Some(dir) = image.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    std::fs::copy(&built, &image).map_err(|e| format!("copy {}: {e}", built.display()))?;
    let size = std::fs::metadata(&image).map_err(|e| e.to_string())?.len();
    println!(
        "    {} ({} bytes, {:.1} KiB)",
        image.display(),
        size,
        size as f64 / 1024.0
    );
    Ok(image)
}

/// Lints the image configuration (arch code, allocator, panic handler) with clippy.
pub fn clippy() -> Result<(), String> {
    step("lints of the x86_64 image (cargo clippy --features image, -D warnings)");
    run(image_cargo("clippy").args(["--", "-D", "warnings"]))
}
