//! stubvirt under real Xen (4.17.5 with IOREQ, built by `arm64::xen`) in
//! `qemu-system-aarch64` (TCG): (a) as dom0, (b) as a dom0less domU with no dom0. Each boot
//! must print one `STUBVIRT-SELFTEST aarch64 result=pass ... failed=0` line. Then one panic
//! and one exception under Xen must be reported, not hang.

use super::sysdt::{self, Role};
use super::xen;
use crate::apt;
use crate::console::{watch, End, Transcript};
use crate::process::{step, workspace_root};
use std::path::Path;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(180);
/// Lines after which nothing useful follows: Xen's own panic, a boot without Xen, the
/// crash of dom0 announced by Xen, the last line of stubvirt's exception report.
const FINAL_MARKS: [&str; 4] = [
    "Panic on CPU",
    "STUBVIRT-BOOT",
    "Hardware Dom0 crashed",
    " x28 ",
];

/// Boots Xen with stubvirt in `role` and command line `bootargs`; watches the console
/// until `stop` accepts a line (or QEMU exits, or the deadline passes).
pub fn boot(
    image: &Path,
    xen: &Path,
    role: Role,
    bootargs: &str,
    name: &str,
    stop: impl FnMut(&str) -> bool,
) -> Result<Transcript, String> {
    let dir = workspace_root().join("target/arm64-boot").join(name);
    let (dtb, loads) = sysdt::build(&dir, role, image, sysdt::XEN_ARGS, bootargs)?;
    let mut command = sysdt::qemu_command(xen, &dtb, &loads, sysdt::Tcg::OneThread);
    watch(name, &mut command, DEADLINE, stop)
}

fn failure(transcript: &Transcript, what: &str) -> String {
    format!(
        "{what} ({}); log {}; last lines:\n{}",
        match transcript.end {
            End::TimedOut => format!("nothing conclusive within {DEADLINE:?}"),
            End::Exited(status) => format!("QEMU exited: {status}"),
            End::Stopped(_) => "stopped at the last line below".to_string(),
        },
        transcript.log.display(),
        transcript.tail(30)
    )
}

/// One self-test boot; returns the result fields, the seconds from QEMU start to them and
/// the seconds from our banner to them.
pub fn selftest_once(
    image: &Path,
    xen: &Path,
    role: Role,
    run: usize,
) -> Result<(String, f64, f64), String> {
    let name = format!("arm64-xen-{}-{run}", format!("{role:?}").to_lowercase());
    let transcript = boot(image, xen, role, sysdt::BOOTARGS, &name, until_verdict())?;
    passed(&transcript).ok_or_else(|| {
        failure(
            &transcript,
            &format!("aarch64 self-test as {role:?} under Xen did not pass"),
        )
    })
}

/// The fatal paths under Xen: a panic in dom0 (reported through console_io, then the crash
/// shutdown Xen announces) and an exception in a domU (the full report on the vpl011).
fn crash_tests(image: &Path, xen: &Path) -> Result<(), String> {
    step("arm64 image under Xen: panic as dom0, exception as domU");
    let cases: [(Role, &str, &[&str], &str); 2] = [
        (
            Role::Dom0,
            "crashtest=panic",
            &["PANIC: panicked at"],
            "Hardware Dom0 crashed",
        ),
        (
            Role::DomU,
            "crashtest=fault",
            &[
                "EXCEPTION synchronous",
                "data abort) FAR 0x0000004000000000",
                "ELR 0x",
            ],
            " x28 ",
        ),
    ];
    for (role, bootargs, expect, last) in cases {
        let name = format!("arm64-xen-{}-crash", format!("{role:?}").to_lowercase());
        let transcript = boot(image, xen, role, bootargs, &name, |line| {
            line.contains(last) || line.contains("STUBVIRT-SELFTEST ")
        })?;
        let complete = matches!(transcript.end, End::Stopped(_))
            && transcript.find(last).is_some()
            && expect.iter().all(|e| transcript.find(e).is_some());
        if !complete {
            return Err(failure(
                &transcript,
                &format!("{bootargs} as {role:?} under Xen: expected {expect:?}, then {last:?}"),
            ));
        }
    }
    Ok(())
}

/// Stops at the result line, or once a failure has been reported in full: a panic's
/// message is the line after `PANIC: `.
fn until_verdict() -> impl FnMut(&str) -> bool {
    let mut panicked = false;
    move |line| {
        let done = panicked
            || line.contains("STUBVIRT-SELFTEST ")
            || FINAL_MARKS.iter().any(|m| line.contains(m));
        panicked = line.contains("PANIC: ");
        done
    }
}

fn passed(transcript: &Transcript) -> Option<(String, f64, f64)> {
    let End::Stopped(index) = transcript.end else {
        return None;
    };
    let (time, line) = transcript.lines.get(index)?;
    let (banner, _) = transcript.find(" aarch64 booting")?;
    let fields = line.split("STUBVIRT-SELFTEST ").nth(1)?;
    (fields.starts_with("aarch64 result=pass ") && fields.contains(" failed=0")).then(|| {
        let since_banner = time.saturating_sub(*banner);
        (
            fields.to_string(),
            time.as_secs_f64(),
            since_banner.as_secs_f64(),
        )
    })
}

/// The self-test in both roles, `runs` times each (prints each time and the medians), then
/// the fatal paths once.
pub fn xen_tests(image: &Path, runs: usize) -> Result<(), String> {
    apt::ensure_installed(
        &["qemu-system-arm", "device-tree-compiler"],
        "booting Xen for arm64 in QEMU",
    )?;
    let xen = xen::hypervisor()?;
    for role in [Role::Dom0, Role::DomU] {
        step(&format!(
            "arm64 image as {role:?} of Xen 4.17.5 (IOREQ) in QEMU (TCG): self-test x{runs}"
        ));
        let mut times = Vec::new();
        for run in 1..=runs.max(1) {
            let (fields, seconds, ours) = selftest_once(image, &xen, role, run)?;
            println!(
                "    run {run}: STUBVIRT-SELFTEST {fields}  ({seconds:.2} s after QEMU start, \
                 {ours:.3} s after our banner)"
            );
            times.push(seconds);
        }
        crate::console::print_median(&format!("{role:?} boot-to-result"), times);
    }
    crash_tests(image, &xen)
}

/// `cargo xtask xen-arm64 [RUNS] [IMAGE]`: the tests under Xen (self-tests RUNS times per
/// role) on IMAGE (an already built arm64 Image) or on a freshly built one.
pub fn xen_command(args: &[String]) -> Result<(), String> {
    let runs = match args.first() {
        Some(n) => n
            .parse()
            .map_err(|_| format!("RUNS must be a number, not `{n}`"))?,
        None => 1,
    };
    let image = match args.get(1) {
        Some(path) => std::path::PathBuf::from(path),
        None => super::image::build()?,
    };
    xen_tests(&image, runs)
}

#[cfg(test)]
mod tests {
    use super::until_verdict;

    #[test]
    fn stops_at_the_result_or_after_a_full_report() {
        let mut stop = until_verdict();
        assert!(!stop("(XEN) DOM1: stubvirt 0.1.0 aarch64 booting"));
        assert!(stop(
            "(XEN) DOM1: STUBVIRT-SELFTEST aarch64 result=pass checks=1 failed=0"
        ));

        let mut stop = until_verdict();
        assert!(!stop("PANIC: panicked at kernel/src/kmain.rs:1:1:"));
        assert!(stop("the message"));

        let mut stop = until_verdict();
        assert!(!stop(
            "stubvirt: EXCEPTION synchronous (current EL, SP_ELx)"
        ));
        assert!(!stop("  x0  0x0000000000000000 x1  0x0000000000000000"));
        assert!(stop(
            "  x28 0x0000000000000000 x29 0x0000000000000000 x30 0x0"
        ));
    }
}
