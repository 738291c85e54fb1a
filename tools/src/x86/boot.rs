//! Booting the x86_64 image in tests: directly under QEMU (seconds: banner, panic and
//! exception reports), and as PVH dom0 of Debian's Xen 4.17 inside QEMU (the self-test).

use crate::console::{watch, End, Transcript};
use crate::{apt, process::step, x86::xen};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const QEMU_PACKAGE: &str = "qemu-system-x86";
const BANNER: &str = " x86_64 booting";
/// What `isa-debug-exit` makes of the kernel's exit codes: `(code << 1) | 1`.
const EXIT_OK: i32 = 1;
const EXIT_CRASH: i32 = (0x7f << 1) | 1;
/// Marks of a failed run under Xen: ours (panic, exception) and Xen's.
const FAILURE_MARKS: [&str; 3] = ["PANIC: ", "EXCEPTION vector", "Panic on CPU"];

fn qemu_direct(image: &Path, cmdline: &str) -> Command {
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(["-accel", "tcg", "-M", "microvm", "-m", "128"])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-serial", "none", "-debugcon", "stdio"])
        .args([
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-kernel",
        ])
        .arg(image)
        .args(["-append", cmdline]);
    command
}

/// One direct boot: the kernel must print the banner and `expect`, then make QEMU exit
/// with `code` on its own (isa-debug-exit).
fn direct_case(
    image: &Path,
    name: &str,
    cmdline: &str,
    expect: &str,
    code: i32,
) -> Result<(), String> {
    let log_name = format!("x86_64-direct-{}", name.replace(' ', "-"));
    let mut command = qemu_direct(image, cmdline);
    let transcript = watch(&log_name, &mut command, Duration::from_secs(20), |_| false)?;
    let exit = match transcript.end {
        End::Exited(status) => status.code(),
        _ => None,
    };
    let found = transcript
        .find(expect)
        .map(|(t, line)| (t.as_secs_f64(), line.clone()));
    match (transcript.find(BANNER), found, exit) {
        (Some(_), Some((seconds, line)), Some(c)) if c == code => {
            println!("    ok: {name}: `{line}` after {seconds:.2} s");
            Ok(())
        }
        _ => Err(failure(&transcript, &format!("x86_64 direct boot `{name}`: expected the banner, `{expect}` and exit code {code}, got exit {exit:?}"))),
    }
}

fn failure(transcript: &Transcript, what: &str) -> String {
    format!(
        "{what}\n--- last console lines ({}) ---\n{}",
        transcript.log.display(),
        transcript.tail(40)
    )
}

/// The fast path without Xen: banner and clean exit, then a panic and a page fault, each
/// reported and turned into the crash exit code.
pub fn direct_tests(image: &Path) -> Result<(), String> {
    apt::ensure_installed(&[QEMU_PACKAGE], "QEMU to boot the x86_64 image")?;
    step("x86_64 image under plain QEMU (no Xen): banner, panic and exception reports");
    direct_case(
        image,
        "boot",
        "loglevel=debug",
        "STUBVIRT-BOOT x86_64 ok",
        EXIT_OK,
    )?;
    direct_case(
        image,
        "panic",
        "crashtest=panic",
        "PANIC: panicked at",
        EXIT_CRASH,
    )?;
    direct_case(
        image,
        "page fault",
        "crashtest=fault",
        "faulting address (cr2)",
        EXIT_CRASH,
    )
}

/// QEMU running Debian's Xen with the image as PVH dom0 and `cmdline` as its command line.
fn qemu_xen(image: &Path, xen: &Path, cmdline: &str) -> Command {
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(["-accel", "tcg", "-cpu", "qemu64,+svm,+npt", "-m", "512"])
        .args([
            "-no-reboot",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-monitor",
            "none",
        ])
        .arg("-kernel")
        .arg(xen)
        // Multiboot module string: the words after the file name are dom0's command line.
        .arg("-initrd")
        .arg(format!("{} {cmdline}", image.display()))
        .args(["-append", XEN_CMDLINE]);
    command
}

/// Xen's own command line (see the notes: `+npt` and `dom0-iommu=none` are required).
const XEN_CMDLINE: &str = "console=com1 loglvl=all noreboot dom0=pvh dom0-iommu=none dom0_mem=64M";
/// What Xen prints when dom0 powers off (SCHEDOP_shutdown, SHUTDOWN_poweroff) ...
const XEN_DOM0_HALTED: &str = "Hardware Dom0 halted";
/// ... and when it crashes (SHUTDOWN_crash).
const XEN_DOM0_CRASHED: &str = "Hardware Dom0 crashed";

/// One boot under Xen: the self-test fields, the seconds from QEMU start to the result
/// line, and from our banner to it (the kernel's own share). The run must end with the
/// kernel powering dom0 off through Xen.
pub fn xen_selftest_once(
    image: &Path,
    xen: &Path,
    run: usize,
) -> Result<(String, f64, f64), String> {
    let mut command = qemu_xen(image, xen, "loglevel=info");
    let transcript = watch(
        &format!("x86_64-xen-{run}"),
        &mut command,
        Duration::from_secs(180),
        |line| {
            line.contains(XEN_DOM0_HALTED)
                || line.contains(XEN_DOM0_CRASHED)
                || FAILURE_MARKS.iter().any(|m| line.contains(m))
        },
    )?;
    let halted = matches!(transcript.end, End::Stopped(i)
        if transcript.lines.get(i).is_some_and(|(_, l)| l.contains(XEN_DOM0_HALTED)));
    let result = transcript
        .find("STUBVIRT-SELFTEST ")
        .and_then(|(time, line)| {
            let fields = line.split("STUBVIRT-SELFTEST ").nth(1)?;
            Some((fields.to_string(), *time))
        });
    match result {
        Some((fields, time))
            if halted
                && fields.starts_with("x86_64 result=pass ")
                && fields.contains(" failed=0") =>
        {
            let banner = transcript.find(BANNER).map_or(time, |(t, _)| *t);
            Ok((
                fields,
                time.as_secs_f64(),
                time.saturating_sub(banner).as_secs_f64(),
            ))
        }
        _ => Err(failure(
            &transcript,
            "x86_64 self-test under Xen: expected a passing result line, then dom0 powered off",
        )),
    }
}

/// A panic under Xen: reported on Xen's console, then a crash shutdown Xen acknowledges.
pub fn xen_crash_test(image: &Path, xen: &Path) -> Result<(), String> {
    let mut command = qemu_xen(image, xen, "crashtest=panic");
    let transcript = watch(
        "x86_64-xen-panic",
        &mut command,
        Duration::from_secs(180),
        |line| line.contains(XEN_DOM0_CRASHED) || line.contains(XEN_DOM0_HALTED),
    )?;
    match (
        transcript.find("PANIC: panicked at"),
        transcript.find(XEN_DOM0_CRASHED),
    ) {
        (Some(_), Some((time, _))) => {
            println!(
                "    ok: panic under Xen: reported, then `{XEN_DOM0_CRASHED}` after {:.2} s",
                time.as_secs_f64()
            );
            Ok(())
        }
        _ => Err(failure(
            &transcript,
            "x86_64 panic under Xen: expected PANIC, then a crash shutdown",
        )),
    }
}

/// The self-test under real Xen, `runs` times; prints each time and the median.
pub fn xen_selftest(image: &Path, runs: usize) -> Result<(), String> {
    apt::ensure_installed(&[QEMU_PACKAGE], "QEMU to boot Xen")?;
    let xen = xen::hypervisor()?;
    step(&format!(
        "x86_64 image as PVH dom0 of Xen 4.17 in QEMU (TCG): self-test x{runs}"
    ));
    let mut times = Vec::new();
    for run in 1..=runs.max(1) {
        let (fields, seconds, kernel) = xen_selftest_once(image, &xen, run)?;
        println!(
            "    run {run}: STUBVIRT-SELFTEST {fields}  ({seconds:.2} s after QEMU start, \
             {kernel:.3} s after our banner)"
        );
        times.push(seconds);
    }
    crate::console::print_median("boot-to-result under Xen", times);
    Ok(())
}

/// `cargo xtask xen-x86 [RUNS]`: build the image, then the self-test under Xen RUNS times.
pub fn xen_command(args: &[String]) -> Result<(), String> {
    let runs = match args.first() {
        Some(n) => n
            .parse()
            .map_err(|_| format!("RUNS must be a number, not `{n}`"))?,
        None => 1,
    };
    let image = super::image::build()?;
    xen_selftest(&image, runs)
}

/// The x86_64 part of `cargo xtask test`: lint the image configuration, build the image
/// (and check its size budget), boot it directly under QEMU, then under Xen with the
/// self-test.
pub fn tests() -> Result<(), String> {
    super::image::clippy()?;
    let image = super::image::build()?;
    crate::build::check_budget(&image)?;
    direct_tests(&image)?;
    xen_selftest(&image, 1)?;
    step("x86_64 image as PVH dom0 of Xen: a panic ends in a crash shutdown");
    xen_crash_test(&image, &xen::hypervisor()?)
}
