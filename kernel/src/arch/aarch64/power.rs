//! Stopping: PSCI SYSTEM_OFF (plain QEMU; Xen's virtual PSCI too), or parking the CPU.
//! Shutting down through Xen (`SCHEDOP_shutdown`) is common code's job.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;

/// PSCI conduit from the device tree's `/psci` `method`: `smc` when true, else `hvc`.
static PSCI_SMC: AtomicBool = AtomicBool::new(false);

/// Records the PSCI conduit the device tree names.
pub fn use_smc(psci_smc: bool) {
    PSCI_SMC.store(psci_smc, Ordering::Release);
}

/// Powers the machine off through PSCI; parks the CPU if that returns.
pub fn psci_system_off() -> ! {
    // SAFETY: SYSTEM_OFF takes no pointers and does not return on success; on failure it
    // only writes x0 (and SMCCC allows x1..x3 to change).
    unsafe {
        if PSCI_SMC.load(Ordering::Acquire) {
            asm!("smc #0", inlateout("x0") PSCI_SYSTEM_OFF => _, out("x1") _, out("x2") _,
                 out("x3") _, options(nostack));
        } else {
            asm!("hvc #0", inlateout("x0") PSCI_SYSTEM_OFF => _, out("x1") _, out("x2") _,
                 out("x3") _, options(nostack));
        }
    }
    halt()
}

/// Parks this CPU forever with interrupts masked.
pub fn halt() -> ! {
    loop {
        // SAFETY: masking interrupts and waiting for an event touch no memory.
        unsafe { asm!("msr daifset, #0xf", "wfe", options(nomem, nostack)) };
    }
}
