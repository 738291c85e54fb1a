//! arm64 (AArch64, EL1) support.
//!
//! `boot/aarch64/entry.S` holds the Image header and the entry code (EL2 drop, identity
//! map, MMU and caches on, self-relocation, stack) and calls [`aarch64_entry`], which reads
//! the device tree into a [`BootInfo`] and enters the common kernel. The same image runs
//! under plain QEMU `-M virt` (PL011), as a dom0less domU (vpl011) and as dom0
//! (`HYPERVISOR_console_io`), wherever it is loaded.

mod console;
mod devtree;
pub mod gic;
mod hypercall;
mod mmu;
mod power;
pub mod probe;
mod trap;

use super::{Arch, BootInfo};

core::arch::global_asm!(include_str!("../../../../boot/aarch64/entry.S"));
core::arch::global_asm!(include_str!("../../../../boot/aarch64/vectors.S"));

/// The arm64 implementation of [`Arch`].
pub struct Aarch64;

impl Arch for Aarch64 {
    const NAME: &'static str = "aarch64";

    fn early_console_write(bytes: &[u8]) {
        console::write(bytes);
    }

    unsafe fn hypercall(op: u32, args: [u64; 5]) -> i64 {
        // SAFETY: forwarded contract: the caller vouches for every pointer argument.
        unsafe { hypercall::hvc(op, args) }
    }

    fn exit_without_xen(_code: u8) -> ! {
        // PSCI SYSTEM_OFF carries no exit code; the tests read the console instead.
        power::psci_system_off()
    }

    fn halt() -> ! {
        power::halt()
    }

    const UNMAPPED_VA: usize = mmu::UNMAPPED_VA;

    fn window_va(slot: usize) -> usize {
        mmu::window_va(slot)
    }

    unsafe fn map_window_page(slot: usize, gpa: u64, writable: bool) {
        // SAFETY: forwarded contract (slot free, gpa placed by Xen).
        unsafe { mmu::map(slot, gpa, writable) }
    }

    unsafe fn unmap_window_pages(slots: impl Iterator<Item = usize> + Clone) {
        // SAFETY: forwarded contract (no live reference into the slots).
        unsafe { mmu::unmap(slots) }
    }
}

/// Nanoseconds of the physical counter (`CNTPCT_EL0`, which Xen leaves readable at EL1).
/// Xen on Arm never updates `vcpu_time_info.system_time`; its own clock is this counter
/// less its count at boot, so this is an upper bound of Xen system time: a `SCHEDOP_poll`
/// deadline computed from it never lies in the past (it may be late by Xen's boot instant).
pub fn counter_ns() -> u64 {
    let (count, freq): (u64, u64);
    // SAFETY: reads of two counter registers, no side effects.
    unsafe {
        core::arch::asm!(
            "isb",
            "mrs {c}, cntpct_el0",
            "mrs {f}, cntfrq_el0",
            c = out(reg) count,
            f = out(reg) freq,
            options(nostack, nomem),
        );
    }
    if freq == 0 {
        return 0;
    }
    (u128::from(count) * 1_000_000_000 / u128::from(freq)) as u64
}

/// First Rust code, called by `entry.S` with the MMU on, the image relocated, `.bss`
/// zeroed and a stack: `dtb` is the device tree from `x0` at entry, `load_base` the
/// address the image runs at (identity mapped).
#[no_mangle]
extern "C" fn aarch64_entry(dtb: usize, load_base: usize) -> ! {
    mmu::init();
    let boot: BootInfo = devtree::boot_info(dtb, load_base);
    crate::kernel_main(boot)
}
