//! `cargo xtask test`: every test the project has, fastest first; and `cargo xtask check`,
//! its fast tier.

use crate::process::{cargo, run as run_command, step};

pub fn run(_args: &[String]) -> Result<(), String> {
    check(&[])?;
    step("fuzz smoke: every libFuzzer target for a few seconds");
    crate::fuzz::smoke()?;
    crate::x86::boot::tests()?;
    crate::arm64::test::tests()?;
    step("end to end: the demo's run on both routes (no dom0 on Xen 4.21+, dom0 on 4.17.5), every check asserted");
    crate::demo::run_test()?;
    step("end to end: the xl route (Xen 4.20, a Linux dom0 whose xl creates stubvirt and its frontends, FLASK enforcing)");
    crate::xl_route::command(&[])?;
    step("end to end: the side-by-side bench, short (stubvirt and Linux's PV backends serve the same frontends; every figure must come, none is judged)");
    crate::xl_route::side_by_side::command(&["--check".to_string()])?;
    Ok(())
}

/// `cargo xtask check`: the fast tier for everyday work: formatting, every lint (host
/// workspace and both image configurations) and the host tests, no QEMU.
pub fn check(_args: &[String]) -> Result<(), String> {
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
    crate::x86::image::clippy()?;
    crate::arm64::image::clippy()?;
    crate::xen::abi_headers::ensure()?;
    crate::apt::ensure_installed(
        &["device-tree-compiler"],
        "dtc, for the host test that reads back the topology node",
    )?;
    step("host tests: device models, simulated Xen, virtio-drivers frontends, kernel ABI layouts");
    run_command(cargo().args(["test", "--workspace"]))
}
