//! Running child processes with clear progress lines and errors.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the parent of `tools/`).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Prints a progress line that stands out from the children's output.
pub fn step(message: &str) {
    println!("==> {message}");
}

/// Runs `command` to completion in the workspace root; a non-zero exit is an error.
pub fn run(command: &mut Command) -> Result<(), String> {
    run_in(&workspace_root(), command)
}

/// Runs `command` to completion in `dir` (for tools that write into the current
/// directory, like `apt-get source`); a non-zero exit is an error.
pub fn run_in(dir: &Path, command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let status = command
        .current_dir(dir)
        .status()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed: {status}"))
    }
}

/// A `cargo` command using the same cargo that runs the xtask.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}
