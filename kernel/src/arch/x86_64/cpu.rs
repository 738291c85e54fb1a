//! Single x86 instructions the rest of the arch code needs, each in a tiny wrapper.

use core::arch::asm;

/// Writes a byte to an I/O port.
///
/// # Safety
/// The port must be one whose write has no memory-safety effect (console, debug exit).
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: port I/O touches no memory; the caller vouches for the device side.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads a byte from an I/O port.
///
/// # Safety
/// As for [`outb`]: the read must have no memory-safety side effect.
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: port I/O touches no memory; the caller vouches for the device side.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
    };
    value
}

/// `cpuid` (leaf, subleaf 0) -> (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    // cpuid is safe on x86_64 (every such CPU has it; it has no side effects).
    let r = core::arch::x86_64::__cpuid_count(leaf, 0);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Writes a model-specific register.
///
/// # Safety
/// The MSR and value must be valid and must not break memory safety (the hypercall-page
/// MSR writes into a page we own).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller guarantees the write is valid and memory-safe.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
            options(nostack, preserves_flags));
    }
}

/// The faulting linear address of the last page fault.
pub fn cr2() -> u64 {
    let value: u64;
    // SAFETY: reading CR2 has no side effects (we run at CPL 0).
    unsafe { asm!("mov {}, cr2", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Invalidates the TLB entry of one virtual address.
///
/// # Safety
/// Always memory-safe by itself; unsafe because it is a privileged instruction whose use
/// must follow a page-table change the caller made.
pub unsafe fn invlpg(va: usize) {
    // SAFETY: invlpg only drops a cached translation.
    unsafe { asm!("invlpg [{}]", in(reg) va, options(nostack, preserves_flags)) };
}

/// Stops forever with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: cli/hlt only stop this CPU; nothing runs afterwards.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Reads a model-specific register.
///
/// # Safety
/// The MSR must exist (reading an absent one raises #GP).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists; reading has no side effects.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") low, out("edx") high,
            options(nomem, nostack, preserves_flags));
    }
    (u64::from(high) << 32) | u64::from(low)
}

const MSR_EFER: u32 = 0xc000_0080;
const EFER_NXE: u64 = 1 << 11;

/// Turns on no-execute page protection when the CPU has it; returns whether it is on.
pub fn enable_nx() -> bool {
    let (max_extended, _, _, _) = cpuid(0x8000_0000);
    if max_extended < 0x8000_0001 || cpuid(0x8000_0001).3 & (1 << 20) == 0 {
        return false;
    }
    // SAFETY: EFER exists on every x86_64 CPU; setting NXE only makes bit 63 of page-table
    // entries meaningful, and none of our entries sets it yet.
    unsafe { wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE) };
    true
}
