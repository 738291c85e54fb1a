//! The grant window's page tables. entry.S identity maps memory with 1 GiB blocks; this
//! adds level-1 entry 511 (virtual 511 GiB) -> one level-2 table -> one level-3 table of
//! [`GRANT_WINDOW_SLOTS`] 4 KiB pages, mapped and unmapped here one slot at a time.

use crate::arch::{GRANT_WINDOW_SLOTS, PAGE_SIZE};
use core::arch::asm;
use core::cell::UnsafeCell;

const WINDOW_L1_INDEX: usize = 511;
const WINDOW_VA: usize = WINDOW_L1_INDEX << 30;
/// 256 GiB: level-1 entries 256..511 are invalid (except the window's).
pub const UNMAPPED_VA: usize = 256 << 30;

const DESC_TABLE: u64 = 0b11; // table (levels 1-2) / page (level 3)
const ATTR_NORMAL: u64 = 1 << 2; // MAIR index 1: normal write-back
const AP_READ_ONLY: u64 = 1 << 7;
const SH_INNER: u64 = 3 << 8;
const AF: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;

#[repr(C, align(4096))]
struct Table(UnsafeCell<[u64; 512]>);

// SAFETY: only the boot CPU touches the tables (the `Arch` contract).
unsafe impl Sync for Table {}

impl Table {
    const fn new() -> Self {
        Self(UnsafeCell::new([0; 512]))
    }

    fn addr(&self) -> u64 {
        self.0.get() as u64
    }

    /// # Safety
    /// `index < 512`, and no translation in use may depend on the old value.
    unsafe fn set(&self, index: usize, value: u64) {
        // SAFETY: in bounds per the caller; a volatile store so the walker sees it.
        unsafe { core::ptr::write_volatile(self.0.get().cast::<u64>().add(index), value) }
    }
}

static WINDOW_L2: Table = Table::new();
static WINDOW_L3: Table = Table::new();

extern "C" {
    /// The identity-map level-1 table built by entry.S (linker/aarch64.ld).
    static __boot_l1: u8;
}

/// Hooks the window's tables into the live translation tables.
pub fn init() {
    const _: () = assert!(GRANT_WINDOW_SLOTS <= 512);
    // SAFETY: entries L1[511] and L2[0] are unused by the identity map (it covers
    // L1[0..256]); the tables are identity mapped (VA == PA), page aligned and zeroed.
    unsafe {
        let l1 = &raw const __boot_l1 as *mut u64;
        core::ptr::write_volatile(l1.add(WINDOW_L1_INDEX), WINDOW_L2.addr() | DESC_TABLE);
        WINDOW_L2.set(0, WINDOW_L3.addr() | DESC_TABLE);
        asm!("dsb ishst", "isb", options(nostack));
    }
}

/// Virtual address of window slot `slot`.
pub fn window_va(slot: usize) -> usize {
    WINDOW_VA + slot * PAGE_SIZE
}

/// Maps window slot `slot` to `gpa` (normal memory, never executable).
///
/// # Safety
/// See [`crate::arch::Arch::map_window_page`].
pub unsafe fn map(slot: usize, gpa: u64, writable: bool) {
    assert!(
        slot < GRANT_WINDOW_SLOTS,
        "grant window slot {slot} out of range"
    );
    let access = if writable { 0 } else { AP_READ_ONLY };
    let entry = (gpa & !(PAGE_SIZE as u64 - 1))
        | DESC_TABLE
        | ATTR_NORMAL
        | SH_INNER
        | AF
        | PXN
        | UXN
        | access;
    // SAFETY: slot in range and unmapped (caller), so no cached translation exists;
    // the barrier orders the store before the first access through the slot.
    unsafe {
        WINDOW_L3.set(slot, entry);
        asm!("dsb ishst", "isb", options(nostack));
    }
}

/// Unmaps window slots `slots` and invalidates their translations: every entry broken,
/// one barrier, every page's TLBI issued, one wait for them all (as Linux's range flush
/// does), instead of a full barrier round per page.
///
/// # Safety
/// See [`crate::arch::Arch::unmap_window_pages`].
pub unsafe fn unmap(slots: impl Iterator<Item = usize> + Clone) {
    for slot in slots.clone() {
        assert!(
            slot < GRANT_WINDOW_SLOTS,
            "grant window slot {slot} out of range"
        );
        // SAFETY: no reference into the slot is live (caller): break the entry.
        unsafe { WINDOW_L3.set(slot, 0) };
    }
    // SAFETY: barriers only: the broken entries are visible to the table walkers of
    // every CPU before any TLBI below.
    unsafe { asm!("dsb ishst", options(nostack)) };
    for slot in slots {
        let page = (window_va(slot) >> 12) as u64;
        // SAFETY: drops any cached translation of a slot whose entry is broken above.
        unsafe { asm!("tlbi vale1is, {page}", page = in(reg) page, options(nostack)) };
    }
    // SAFETY: waits for every TLBI above to complete on all CPUs before the grants
    // themselves are unmapped.
    unsafe { asm!("dsb ish", "isb", options(nostack)) };
}
