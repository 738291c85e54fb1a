//! Exception reports: every exception taken to EL1 is fatal, except a data abort of an
//! armed MMIO probe ([`super::probe`]), which is recorded and skipped. Otherwise prints the
//! vector, ESR (with its exception class), FAR, ELR, SPSR and all general registers, then
//! stops like a panic.

use crate::console::Writer;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};

/// Registers saved by `boot/aarch64/vectors.S` (same layout).
#[repr(C)]
pub struct TrapFrame {
    x: [u64; 31],
    elr: u64,
    spsr: u64,
    esr: u64,
    far: u64,
}

const VECTORS: [&str; 4] = ["synchronous", "IRQ", "FIQ", "SError"];
const ORIGINS: [&str; 4] = [
    "current EL, SP_EL0",
    "current EL, SP_ELx",
    "lower EL, AArch64",
    "lower EL, AArch32",
];

static IN_TRAP: AtomicBool = AtomicBool::new(false);

/// Vector number of a synchronous exception from the current EL on SP_ELx.
const SYNC_CURRENT_EL: u64 = 4;
/// ESR exception class of a data abort taken without a change in exception level.
const EC_DATA_ABORT_SAME_EL: u64 = 0x25;

/// Called by vectors.S with the vector number (0..16) and the saved registers. Returns
/// (vectors.S then restores the frame and `eret`s) only for an armed probe's data abort.
#[no_mangle]
extern "C" fn aarch64_trap(kind: u64, frame: &mut TrapFrame) {
    if kind == SYNC_CURRENT_EL
        && frame.esr >> 26 == EC_DATA_ABORT_SAME_EL
        && super::probe::fault_at(frame.elr)
    {
        // The probe's single 4-byte load/store: resume after it.
        frame.elr += 4;
        return;
    }
    if IN_TRAP.swap(true, Ordering::AcqRel) {
        // A fault while reporting a fault: stop without touching anything else.
        super::power::halt();
    }
    // Nowhere to report a console failure.
    let _ = report(kind, frame);
    crate::kmain::fatal_stop()
}

fn report(kind: u64, frame: &TrapFrame) -> core::fmt::Result {
    let mut out = Writer;
    let vector = VECTORS.get((kind % 4) as usize).copied().unwrap_or("?");
    let origin = ORIGINS.get((kind / 4) as usize).copied().unwrap_or("?");
    writeln!(out, "\nstubvirt: EXCEPTION {vector} ({origin})")?;
    writeln!(
        out,
        "  ESR {:#018x} (EC {:#04x} {}) FAR {:#018x}",
        frame.esr,
        frame.esr >> 26,
        exception_class(frame.esr >> 26),
        frame.far
    )?;
    writeln!(out, "  ELR {:#018x} SPSR {:#018x}", frame.elr, frame.spsr)?;
    for (row, regs) in frame.x.chunks(4).enumerate() {
        write!(out, " ")?;
        for (col, value) in regs.iter().enumerate() {
            write!(out, " x{:<2} {value:#018x}", row * 4 + col)?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn exception_class(ec: u64) -> &'static str {
    match ec {
        0x00 => "unknown",
        0x01 => "WFI/WFE",
        0x07 => "FP/SIMD access",
        0x0e => "illegal execution state",
        0x15 => "SVC",
        0x16 => "HVC",
        0x17 => "SMC",
        0x18 => "system register",
        0x20 | 0x21 => "instruction abort",
        0x22 => "PC alignment",
        0x24 | 0x25 => "data abort",
        0x26 => "SP alignment",
        0x2f => "SError",
        0x3c => "BRK",
        _ => "other",
    }
}
