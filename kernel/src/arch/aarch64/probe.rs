//! MMIO accesses that may fault: a frontend probing a register window that its device
//! model has not registered yet gets a data abort injected by Xen. An armed probe's
//! abort is recorded by the trap handler and the access is skipped, so the caller can
//! retry later instead of crashing.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Address of the armed probe instruction (0: none armed).
static ARMED_PC: AtomicUsize = AtomicUsize::new(0);
static FAULTED: AtomicBool = AtomicBool::new(false);
/// Only the first GiB (device memory in the boot identity map) may be probed.
const DEVICE_LIMIT: usize = 1 << 30;

/// Called by the trap handler for a data abort at `elr`: whether it is the armed probe's
/// instruction (then the fault is recorded and the instruction is to be skipped).
pub fn fault_at(elr: u64) -> bool {
    let armed = ARMED_PC.load(Ordering::Acquire);
    if armed != 0 && armed as u64 == elr {
        FAULTED.store(true, Ordering::Release);
        true
    } else {
        false
    }
}

/// A 32-bit read of device register `addr`; `None` if the access faulted.
pub fn read32(addr: usize) -> Option<u32> {
    if addr >= DEVICE_LIMIT || !addr.is_multiple_of(4) {
        return None;
    }
    let value: u32;
    FAULTED.store(false, Ordering::Release);
    // SAFETY: `addr` lies in the identity-mapped device range (first GiB, Device-nGnRE);
    // a fault there is caught by the trap handler, which skips exactly the `ldr` whose
    // address the code below publishes in ARMED_PC before executing it.
    unsafe {
        asm!(
            "adr {pc}, 2f",
            "str {pc}, [{armed}]",
            "dmb ish",
            "2: ldr {v:w}, [{a}]",
            "str xzr, [{armed}]",
            pc = out(reg) _,
            armed = in(reg) ARMED_PC.as_ptr(),
            a = in(reg) addr,
            v = out(reg) value,
            options(nostack),
        );
    }
    (!FAULTED.load(Ordering::Acquire)).then_some(value)
}

/// A 32-bit write of device register `addr`; false if the access faulted.
pub fn write32(addr: usize, value: u32) -> bool {
    if addr >= DEVICE_LIMIT || !addr.is_multiple_of(4) {
        return false;
    }
    FAULTED.store(false, Ordering::Release);
    // SAFETY: as in `read32`, for the `str`.
    unsafe {
        asm!(
            "adr {pc}, 2f",
            "str {pc}, [{armed}]",
            "dmb ish",
            "2: str {v:w}, [{a}]",
            "str xzr, [{armed}]",
            pc = out(reg) _,
            armed = in(reg) ARMED_PC.as_ptr(),
            a = in(reg) addr,
            v = in(reg) value,
            options(nostack),
        );
    }
    !FAULTED.load(Ordering::Acquire)
}

/// PSCI 0.2 `CPU_ON` (SMC64 calling convention), through Xen's virtual PSCI (`hvc`).
const PSCI_CPU_ON: u64 = 0xc400_0003;

/// The secondary vcpu's inputs and outputs: `[0]` address to read, `[1]` value read,
/// `[2]` 1 when done. One cache line, cleaned and invalidated around the secondary's
/// run because it accesses memory with its MMU off (non-cacheable).
#[repr(C, align(64))]
struct Mailbox([AtomicU64; 8]);

static MAILBOX: Mailbox = Mailbox([const { AtomicU64::new(0) }; 8]);

// Entered by a freshly started vcpu (MMU off, x0 = context = the mailbox): one 32-bit read
// of the device register, the result into the mailbox, then PSCI CPU_OFF.
core::arch::global_asm!(
    ".section .text, \"ax\"",
    ".balign 4",
    ".global stubvirt_secondary_read",
    "stubvirt_secondary_read:",
    "    ldr x1, [x0]",
    "    ldr w2, [x1]",
    "    str x2, [x0, #8]",
    "    mov x3, #1",
    "    str x3, [x0, #16]",
    "    dsb sy",
    "    movz x0, #0x0002",
    "    movk x0, #0x8400, lsl #16",
    "    hvc #0",
    "3:  wfe",
    "    b 3b",
);

extern "C" {
    fn stubvirt_secondary_read();
}

fn clean_invalidate(va: usize) {
    // SAFETY: cache maintenance of a line of our own static; no data is changed.
    unsafe { asm!("dc civac, {va}", "dsb sy", va = in(reg) va, options(nostack)) };
}

/// Starts the vcpu with affinity `mpidr` (under Xen: the vcpu id) with PSCI `CPU_ON`; it
/// reads device register `addr` once (its own trapped access, so Xen queues it in that
/// vcpu's ioreq slot) and powers itself off. `pause` is called between checks, at most
/// `tries` times. Returns the value read, `None` if CPU_ON failed or it never finished.
/// Only for a register that already answers (the secondary has no exception vectors).
pub fn read32_on_vcpu(mpidr: u64, addr: usize, tries: u32, mut pause: impl FnMut()) -> Option<u32> {
    if addr >= DEVICE_LIMIT || !addr.is_multiple_of(4) {
        return None;
    }
    let [target, value, done, ..] = &MAILBOX.0;
    target.store(addr as u64, Ordering::SeqCst);
    value.store(0, Ordering::SeqCst);
    done.store(0, Ordering::SeqCst);
    let mailbox = MAILBOX.0.as_ptr() as usize;
    clean_invalidate(mailbox);
    let entry = stubvirt_secondary_read as *const () as usize as u64;
    let ret: u64;
    // SAFETY: CPU_ON starts another vcpu at `entry` (identity mapped, so its physical
    // address) with x0 = the mailbox's physical address; that code touches only the
    // mailbox and the device register, then powers its vcpu off. x1..x3 may be clobbered.
    unsafe {
        asm!(
            "hvc #0",
            inlateout("x0") PSCI_CPU_ON => ret,
            inlateout("x1") mpidr => _,
            inlateout("x2") entry => _,
            inlateout("x3") mailbox as u64 => _,
            options(nostack),
        );
    }
    if ret != 0 {
        return None;
    }
    for _ in 0..tries {
        clean_invalidate(mailbox);
        if done.load(Ordering::Acquire) == 1 {
            return Some(value.load(Ordering::Acquire) as u32);
        }
        pause();
    }
    None
}
