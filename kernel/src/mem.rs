//! Physical memory: a bump frame allocator over free RAM, and the heap on top of it.

use crate::arch::{BootInfo, RamRegion, PAGE_SIZE};
use crate::memmap::{free_ranges, Range};
use linked_list_allocator::LockedHeap;
use spin::Mutex;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// The identity map built at boot covers the low 4 GiB; RAM above it is not used.
const MAPPED_LIMIT: u64 = 0x1_0000_0000;

/// Heap size: enough for the self-test and device queues, small enough for a 16 MiB domain.
pub const HEAP_BYTES: u64 = 2 * 1024 * 1024;

/// Heap bytes allocated now (the serve loop reports it: the devices allocate at set-up
/// only, so this is also their footprint under load).
pub fn heap_used() -> usize {
    HEAP.lock().used()
}

struct Frames {
    free: [Range; 32],
    count: usize,
}

static FRAMES: Mutex<Frames> = Mutex::new(Frames {
    free: [Range { start: 0, end: 0 }; 32],
    count: 0,
});

/// The memory budget printed at boot.
#[derive(Debug)]
pub struct Budget {
    pub ram: u64,
    pub free_after_heap: u64,
    pub heap: u64,
}

fn to_ranges(regions: &[RamRegion]) -> heapless::Vec<Range, 32> {
    regions
        .iter()
        .map(|r| Range {
            start: r.start,
            end: r.start.saturating_add(r.len),
        })
        .collect()
}

/// Builds the free list from the boot information and carves the heap out of it.
pub fn init(boot: &BootInfo) -> Result<Budget, &'static str> {
    let ram = to_ranges(&boot.ram);
    let reserved = to_ranges(&boot.reserved);
    let mut frames = FRAMES.lock();
    let mut free = [Range { start: 0, end: 0 }; 32];
    let count = free_ranges(&ram, &reserved, MAPPED_LIMIT, &mut free);
    frames.free = free;
    frames.count = count;
    let heap_start =
        take(&mut frames, HEAP_BYTES / PAGE_SIZE as u64).ok_or("no RAM for the heap")?;
    // SAFETY: the range is free RAM (RAM minus every reservation), identity-mapped, and
    // handed out exactly once by the frame allocator.
    unsafe { HEAP.lock().init(heap_start as *mut u8, HEAP_BYTES as usize) };
    let total_free: u64 = frames.free.iter().take(frames.count).map(Range::len).sum();
    Ok(Budget {
        ram: ram.iter().map(Range::len).sum(),
        free_after_heap: total_free,
        heap: HEAP_BYTES,
    })
}

fn take(frames: &mut Frames, pages: u64) -> Option<u64> {
    let bytes = pages * PAGE_SIZE as u64;
    let count = frames.count;
    let range = frames
        .free
        .iter_mut()
        .take(count)
        .find(|r| r.len() >= bytes)?;
    let start = range.start;
    range.start += bytes;
    Some(start)
}

/// Allocates `pages` contiguous, zeroed, identity-mapped frames; returns the physical
/// (= virtual) address. Frames are never freed (a unikernel's boot-time structures).
pub fn alloc_frames(pages: u64) -> Option<u64> {
    let start = take(&mut FRAMES.lock(), pages)?;
    // SAFETY: the frames were free RAM, are identity-mapped and now belong to the caller.
    unsafe { core::ptr::write_bytes(start as *mut u8, 0, (pages as usize) * PAGE_SIZE) };
    Some(start)
}

/// [`alloc_frames`] as a byte slice owned for ever (the frames are never freed).
pub fn alloc_static(pages: u64) -> Option<&'static mut [u8]> {
    let start = alloc_frames(pages)?;
    // SAFETY: alloc_frames handed out these zeroed, identity-mapped bytes exactly once;
    // nothing else refers to them, and they are never freed.
    Some(unsafe { core::slice::from_raw_parts_mut(start as *mut u8, pages as usize * PAGE_SIZE) })
}

/// Reads an address the arch never maps (the `crashtest=fault` boot option): the exception
/// report must appear, not a hang.
pub fn read_unmapped() -> u8 {
    use crate::arch::{Arch, Current};
    // SAFETY: the address is never mapped, so the load faults before reading anything;
    // the page-fault handler reports and stops the machine and never returns here.
    unsafe { core::ptr::read_volatile(Current::UNMAPPED_VA as *const u8) }
}

/// Reads one byte of identity-mapped memory or of a mapped grant-window page.
///
/// Panics on an address outside both (a bug in the caller); the self-test uses it on
/// frames from [`alloc_frames`] and on live window slots.
pub fn read_byte(va: usize) -> u8 {
    assert!(is_mapped(va), "read of unmapped address {va:#x}");
    // SAFETY: the address is identity-mapped RAM below 4 GiB or a grant-window page;
    // volatile because a granted page may change under us.
    unsafe { core::ptr::read_volatile(va as *const u8) }
}

/// Writes one byte; see [`read_byte`].
pub fn write_byte(va: usize, value: u8) {
    assert!(is_mapped(va), "write of unmapped address {va:#x}");
    // SAFETY: as in read_byte; the caller owns the frame or the writable mapping.
    unsafe { core::ptr::write_volatile(va as *mut u8, value) }
}

/// Whether `len` bytes at `va` are identity-mapped (VA == guest-physical address), as the
/// heap and frames are: a hypercall may then name them by frame number. Grant-window
/// pages are not.
pub fn is_identity_mapped(va: u64, len: usize) -> bool {
    va.checked_add(len as u64)
        .is_some_and(|end| va != 0 && end <= MAPPED_LIMIT)
}

fn is_mapped(va: usize) -> bool {
    use crate::arch::{Arch, Current, GRANT_WINDOW_SLOTS};
    let window = Current::window_va(0)..Current::window_va(GRANT_WINDOW_SLOTS - 1) + PAGE_SIZE;
    (va as u64) < MAPPED_LIMIT || window.contains(&va)
}
