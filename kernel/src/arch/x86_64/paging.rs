//! The grant window's page table: 512 4 KiB slots at virtual 4 GiB (PDPT entry 4, set up
//! by boot/x86_64/entry.s), identity-placed over the guest-physical window at 4 GiB.

use super::cpu::invlpg;
use crate::arch::{GRANT_WINDOW_SLOTS, PAGE_SIZE};
use core::sync::atomic::{AtomicBool, Ordering};

/// Virtual (and guest-physical) base of the grant window: just above the 4 GiB the boot
/// code identity-maps, so it is never RAM or MMIO in a small PVH domain's physmap.
pub const WINDOW_BASE: u64 = 0x1_0000_0000;

const PTE_PRESENT: u64 = 1;
const PTE_WRITABLE: u64 = 2;
const PTE_NO_EXECUTE: u64 = 1 << 63;

/// Whether EFER.NXE is on (bit 63 of an entry is reserved otherwise).
static NX: AtomicBool = AtomicBool::new(false);

/// Enables no-execute protection for window pages when the CPU supports it.
pub fn init() {
    NX.store(super::cpu::enable_nx(), Ordering::Release);
}

extern "C" {
    /// The 512-entry page table behind the window (in `.bss`, see entry.s).
    static mut window_pt: [u64; GRANT_WINDOW_SLOTS];
}

pub fn window_va(slot: usize) -> usize {
    assert!(
        slot < GRANT_WINDOW_SLOTS,
        "grant window slot {slot} out of range"
    );
    WINDOW_BASE as usize + slot * PAGE_SIZE
}

/// # Safety
/// See [`crate::arch::Arch::map_window_page`].
pub unsafe fn map(slot: usize, gpa: u64, writable: bool) {
    let va = window_va(slot);
    let nx = if NX.load(Ordering::Acquire) {
        PTE_NO_EXECUTE
    } else {
        0
    };
    let flags = PTE_PRESENT | nx | if writable { PTE_WRITABLE } else { 0 };
    // SAFETY: slot < 512 (checked by window_va); only this module writes window_pt, on the
    // boot CPU; the entry was not present, so no stale translation can exist, but we
    // invalidate anyway in case of a speculative negative cache.
    unsafe {
        let table = &mut *core::ptr::addr_of_mut!(window_pt);
        if let Some(entry) = table.get_mut(slot) {
            core::ptr::write_volatile(entry, (gpa & 0x000f_ffff_ffff_f000) | flags);
        }
        invlpg(va);
    }
}

/// # Safety
/// See [`crate::arch::Arch::unmap_window_pages`] (one slot).
pub unsafe fn unmap(slot: usize) {
    let va = window_va(slot);
    // SAFETY: as in `map`; the caller guarantees no reference into the page is live; the
    // invlpg makes sure no CPU access goes through the old translation afterwards.
    unsafe {
        let table = &mut *core::ptr::addr_of_mut!(window_pt);
        if let Some(entry) = table.get_mut(slot) {
            core::ptr::write_volatile(entry, 0);
        }
        invlpg(va);
    }
}
