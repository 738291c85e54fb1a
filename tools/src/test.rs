//! `cargo xtask test`: every test the project has, fastest first.

use crate::process::{cargo, run as run_command, step};

pub fn run(_args: &[String]) -> Result<(), String> {
    step("format check (cargo fmt --check)");
    run_command(cargo().args(["fmt", "--all", "--", "--check"]))?;
    step("lints (cargo clippy -D warnings)");
    run_command(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    step("host tests: device models, simulated Xen, virtio-drivers frontends");
    run_command(cargo().args(["test", "--workspace"]))?;
    Ok(())
}
