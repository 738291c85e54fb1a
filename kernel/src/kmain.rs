//! The common kernel entry: console, log level, banner, memory, then the self-test.

use crate::arch::{Arch, BootInfo, Current, RamRegion, GRANT_WINDOW_SLOTS, PAGE_SIZE};
use crate::xen::abi::memory::{E820Entry, E820_RAM};
use crate::xen::abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
use crate::{cmdline, console, mem, selftest, serve, xen};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};

/// Guest-physical bytes the grant window spans.
const WINDOW_BYTES: u64 = (GRANT_WINDOW_SLOTS * PAGE_SIZE) as u64;

/// QEMU exit code (`isa-debug-exit` / PSCI) of a panic or exception.
const CRASH_EXIT_CODE: u8 = 0x7f;

static XEN: AtomicBool = AtomicBool::new(false);

/// Where every architecture's boot code ends up (see [`crate::arch`]).
pub fn kernel_main(mut boot: BootInfo) -> ! {
    XEN.store(boot.xen, Ordering::Release);
    if boot.xen && boot.xen_console && xen::console::allowed() {
        console::use_xen_console();
    }
    console::init_log(cmdline::log_level(boot.cmdline).unwrap_or(log::LevelFilter::Info));
    // The banner is printed unconditionally: tests look for it.
    let _ = writeln!(
        console::Writer,
        "stubvirt {} {} booting",
        env!("CARGO_PKG_VERSION"),
        Current::NAME
    );
    log::info!("command line: {:?}", boot.cmdline);
    log::info!("Xen: {}", if boot.xen { "present" } else { "absent" });
    match cmdline::value_of(boot.cmdline, "crashtest") {
        Some("panic") => panic!("crash test requested on the command line"),
        Some("fault") => log::error!("read {}", mem::read_unmapped()),
        _ => {}
    }
    if boot.ram.is_empty() && boot.xen {
        ram_from_xen(&mut boot);
    }
    for r in &boot.ram {
        log::debug!("RAM {:#x}..{:#x}", r.start, r.start + r.len);
    }
    let window = boot.grant_window_gpa..boot.grant_window_gpa + WINDOW_BYTES;
    if boot
        .ram
        .iter()
        .any(|r| r.start < window.end && window.start < r.start + r.len)
    {
        // Xen would replace those RAM pages with grant mappings: refuse to run.
        panic!(
            "the grant window {:#x}..{:#x} overlaps RAM: give the domain less memory",
            window.start, window.end
        );
    }
    match mem::init(&boot) {
        Ok(budget) => log::info!(
            "memory: RAM {} KiB, heap {} KiB, free frames {} KiB",
            budget.ram / 1024,
            budget.heap / 1024,
            budget.free_after_heap / 1024
        ),
        Err(why) => panic!("memory init failed: {why}"),
    }
    if boot.xen {
        xen::domain::report();
        if let Some(config) = serve::requested(&boot) {
            serve::run(&boot, &config)
        }
        test_modes(&boot);
        selftest::run(&boot);
        power_off()
    } else {
        let _ = writeln!(
            console::Writer,
            "STUBVIRT-BOOT {} ok (no Xen)",
            Current::NAME
        );
        Current::exit_without_xen(0)
    }
}

/// The modes only tests boot, in the test image (`test-modes`): each runs and powers off.
#[cfg(feature = "test-modes")]
fn test_modes(boot: &BootInfo) {
    if cmdline::value_of(boot.cmdline, "bystander") == Some("1") {
        bystander()
    }
    #[cfg(target_arch = "aarch64")]
    if cmdline::value_of(boot.cmdline, "frontend_test") == Some("1") {
        crate::frontend_test::run(boot);
        power_off()
    }
    #[cfg(target_arch = "aarch64")]
    if cmdline::value_of(boot.cmdline, "grantbench") == Some("1") {
        crate::grant_bench::run(boot);
        power_off()
    }
}

/// The product image has no test modes: one asked for is refused by name, not mistaken for
/// the self-test.
#[cfg(not(feature = "test-modes"))]
fn test_modes(boot: &BootInfo) {
    for mode in ["bystander", "frontend_test", "grantbench"] {
        if cmdline::value_of(boot.cmdline, mode).is_some() {
            let _ = writeln!(
                console::Writer,
                "STUBVIRT-REFUSED {mode}: a test mode, only in the test image \
                 (target/images/stubvirt-*-test.img)"
            );
            power_off()
        }
    }
}

/// `bystander=1`: a domain that is there and does nothing, so that a backend's privilege
/// test has a domain it does not serve to try things on.
#[cfg(feature = "test-modes")]
fn bystander() -> ! {
    let _ = writeln!(console::Writer, "STUBVIRT-BYSTANDER waiting");
    loop {
        let wake = xen::evtchn::system_time_ns().saturating_add(10_000_000_000);
        if xen::sched::poll(&mut [], wake).is_err() {
            power_off()
        }
    }
}

/// Xen 4.17 gives a PVH dom0 no memory map in the start info: ask for the e820 map.
fn ram_from_xen(boot: &mut BootInfo) {
    let mut entries = [E820Entry::default(); 64];
    match xen::memory::memory_map(&mut entries) {
        Ok(n) => {
            for e in entries.iter().take(n) {
                let (addr, size, kind) = (e.addr, e.size, e.type_);
                if kind == E820_RAM {
                    let _ = boot.ram.push(RamRegion {
                        start: addr,
                        len: size,
                    });
                }
            }
        }
        Err(e) => log::error!("XENMEM_memory_map failed: {e}"),
    }
}

/// Ends the run after the self-test (its result line says how it went): a domU is
/// destroyed, a dom0 makes Xen halt the machine.
fn power_off() -> ! {
    let e = xen::sched::shutdown(SHUTDOWN_POWEROFF);
    log::error!("SCHEDOP_shutdown refused: {e}");
    Current::halt()
}

/// Stops after a panic or exception: crash shutdown under Xen, crash exit code without.
pub fn fatal_stop() -> ! {
    if XEN.load(Ordering::Acquire) {
        let _ = xen::sched::shutdown(SHUTDOWN_CRASH);
        Current::halt()
    }
    Current::exit_without_xen(CRASH_EXIT_CODE)
}
