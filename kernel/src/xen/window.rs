//! The grant window's slots: who owns which page of it.
//!
//! Slot 0 holds the shared-info page, slots 1..=GRANT_FRAMES our grant-table frames; the
//! rest are handed out one at a time for foreign (or self-) grant mappings.

use crate::arch::{GRANT_WINDOW_SLOTS, PAGE_SIZE};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

/// The slot of the shared-info page.
pub const SHARED_INFO_SLOT: usize = 0;
/// Our grant table's frames (512 v1 entries each).
pub const GRANT_FRAMES: usize = 2;
/// First slot of the grant-table frames.
pub const GRANT_TABLE_SLOT: usize = 1;
/// First slot available for grant mappings.
pub const FIRST_MAP_SLOT: usize = GRANT_TABLE_SLOT + GRANT_FRAMES;

static BASE_GPA: AtomicU64 = AtomicU64::new(0);
/// One bit per slot: set = in use.
static USED: Mutex<[u64; GRANT_WINDOW_SLOTS / 64]> = Mutex::new([0; GRANT_WINDOW_SLOTS / 64]);

/// Records where the window is in our physmap and reserves the fixed slots.
pub fn init(base_gpa: u64) {
    BASE_GPA.store(base_gpa, Ordering::Release);
    let mut used = USED.lock();
    for slot in 0..FIRST_MAP_SLOT {
        set(&mut used[..], slot, true);
    }
}

/// The guest-physical address of a slot.
pub fn gpa(slot: usize) -> u64 {
    BASE_GPA.load(Ordering::Acquire) + (slot * PAGE_SIZE) as u64
}

/// Takes a free mapping slot: the first clear bit of the first word not full (the fixed
/// slots are set at [`init`]), so a batch of mappings costs a few word tests per page,
/// not a scan of the window.
pub fn alloc() -> Option<usize> {
    let mut used = USED.lock();
    let (index, word) = used
        .iter_mut()
        .enumerate()
        .find(|(index, word)| **word | fixed_bits(*index) != u64::MAX)?;
    let bit = (*word | fixed_bits(index)).trailing_ones() as usize;
    *word |= 1 << bit;
    Some(index * 64 + bit)
}

/// The fixed slots' bits of word `index`: never handed out, even before [`init`].
fn fixed_bits(index: usize) -> u64 {
    if index == 0 {
        (1 << FIRST_MAP_SLOT) - 1
    } else {
        0
    }
}

/// Returns a mapping slot (its page must be unmapped).
pub fn free(slot: usize) {
    if slot >= FIRST_MAP_SLOT {
        set(&mut USED.lock()[..], slot, false);
    }
}

/// How many mapping slots are free.
pub fn free_count() -> usize {
    let used = USED.lock();
    (FIRST_MAP_SLOT..GRANT_WINDOW_SLOTS)
        .filter(|&s| !is_set(&used[..], s))
        .count()
}

fn is_set(used: &[u64], slot: usize) -> bool {
    used.get(slot / 64)
        .is_some_and(|word| word & (1 << (slot % 64)) != 0)
}

fn set(used: &mut [u64], slot: usize, value: bool) {
    if let Some(word) = used.get_mut(slot / 64) {
        if value {
            *word |= 1 << (slot % 64);
        } else {
            *word &= !(1 << (slot % 64));
        }
    }
}
