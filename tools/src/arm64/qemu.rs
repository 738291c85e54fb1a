//! The fast arm64 check without Xen: the image under plain `qemu-system-aarch64 -M virt`
//! must print its banner and power itself off (PSCI), entered at EL1 and at EL2; a panic
//! and an exception must produce their reports and power off instead of hanging.
//! Seconds, not minutes.

use crate::apt;
use crate::console::{watch, End, Transcript};
use crate::process::step;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

/// One plain-QEMU run: its name, machine options, kernel command line, and the console
/// lines it must show.
struct Case {
    name: &'static str,
    machine: &'static str,
    cpu: &'static str,
    append: &'static str,
    expect: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "arm64-qemu-el1",
        machine: "virt",
        cpu: "cortex-a57",
        append: "loglevel=debug",
        expect: &["stubvirt ", " aarch64 booting", "STUBVIRT-BOOT aarch64 ok"],
    },
    Case {
        name: "arm64-qemu-el2",
        machine: "virt,virtualization=on,gic-version=3",
        cpu: "max",
        append: "",
        expect: &[" aarch64 booting", "STUBVIRT-BOOT aarch64 ok"],
    },
    Case {
        name: "arm64-qemu-panic",
        machine: "virt",
        cpu: "cortex-a57",
        append: "crashtest=panic",
        expect: &[" aarch64 booting", "PANIC: panicked at"],
    },
    Case {
        name: "arm64-qemu-fault",
        machine: "virt",
        cpu: "cortex-a57",
        append: "crashtest=fault",
        expect: &[
            " aarch64 booting",
            "EXCEPTION synchronous",
            "data abort) FAR 0x0000004000000000",
            "ELR 0x",
        ],
    },
];

/// Runs every case; fails on a missing line, an unexpected report, or a hang.
pub fn run(image: &Path) -> Result<(), String> {
    apt::ensure_installed(
        &["qemu-system-arm"],
        "arm64 boot tests (qemu-system-aarch64)",
    )?;
    for case in CASES {
        step(&format!(
            "arm64 image under plain QEMU ({}, -M {}, \"{}\")",
            case.cpu, case.machine, case.append
        ));
        let transcript = watch(
            case.name,
            Command::new("qemu-system-aarch64")
                .args(["-M", case.machine, "-cpu", case.cpu, "-m", "256"])
                .args(["-nographic", "-no-reboot", "-nic", "none", "-kernel"])
                .arg(image)
                .args(["-append", case.append]),
            DEADLINE,
            |_| false,
        )?;
        check(case, &transcript)?;
    }
    Ok(())
}

fn check(case: &Case, transcript: &Transcript) -> Result<(), String> {
    let fail = |why: String| {
        Err(format!(
            "{}: {why}; log {}; last lines:\n{}",
            case.name,
            transcript.log.display(),
            transcript.tail(20)
        ))
    };
    match &transcript.end {
        End::Exited(status) if status.success() => {}
        End::Exited(status) => return fail(format!("QEMU exited with {status}")),
        End::TimedOut => return fail(format!("no power-off within {DEADLINE:?}")),
        End::Stopped(_) => {}
    }
    for report in ["EXCEPTION", "PANIC"] {
        let expected = case.expect.iter().any(|e| e.contains(report));
        if let (false, Some((_, line))) = (expected, transcript.find(report)) {
            return fail(format!("unexpected report: {line}"));
        }
    }
    for expected in case.expect {
        if transcript.find(expected).is_none() {
            return fail(format!("no line containing {expected:?}"));
        }
    }
    if let Some((at, _)) = transcript.find(" booting") {
        step(&format!(
            "{}: banner after {:.3} s, power-off after {:.3} s",
            case.name,
            at.as_secs_f64(),
            transcript
                .lines
                .last()
                .map_or(0.0, |(t, _)| t.as_secs_f64())
        ));
    }
    Ok(())
}
