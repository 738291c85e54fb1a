//! The arm64 image's toolchain. rustup here has no aarch64 target and no `rust-src`, so
//! the image builds with Debian's `rustc-web`/`cargo-web`/`rust-web-src` (bookworm-security,
//! installed as `/usr/bin/rustc`, `/usr/bin/cargo`) and `-Zbuild-std`. rustup's proxies stay
//! first in PATH, so the Debian cargo is always called by its full path.

use crate::apt;
use std::process::Command;

const PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "rust-web-clippy",
    "lld",
    "binutils-aarch64-linux-gnu",
];

/// Installs what is missing (idempotent).
pub fn ensure() -> Result<(), String> {
    apt::ensure_installed(
        PACKAGES,
        "arm64 image: Debian rustc (+ sources for -Zbuild-std, clippy), ld.lld, aarch64 objcopy",
    )
}

/// Debian's cargo, driving Debian's rustc, with nightly flags allowed (`-Zbuild-std`).
/// `subcommand` is `build` or `clippy` (Debian's `cargo-clippy`, which runs the cargo
/// named by `CARGO`).
pub fn cargo(subcommand: &str) -> Command {
    let mut command = if subcommand == "clippy" {
        let mut clippy = Command::new("/usr/bin/cargo-clippy");
        clippy.env("CARGO", "/usr/bin/cargo");
        clippy
    } else {
        Command::new("/usr/bin/cargo")
    };
    command
        .arg(subcommand)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTDOC", "/usr/bin/rustdoc")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    command
}

/// `objcopy` that understands aarch64 ELF files (binutils-aarch64-linux-gnu).
pub const OBJCOPY: &str = "aarch64-linux-gnu-objcopy";
