//! Raw page memory of simulated frontends. The only `unsafe` of the test harness lives
//! here: `virtio-drivers` hands its DMA buffers around as raw pointers (its `Hal` is an
//! unsafe trait), so the simulated Xen must read and write them by address, exactly like
//! the real hypervisor maps a frontend's page into the backend.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;

pub const PAGE_SIZE: usize = 4096;

/// `pages` zeroed, page-aligned pages. Never null: allocation failure aborts.
pub fn alloc_pages(pages: usize) -> NonNull<u8> {
    if let Some(ptr) = spare::take(pages) {
        // SAFETY: a spare block is a live allocation of exactly `pages` pages that nothing
        // else references (free_pages' contract), so it may be written whole.
        unsafe { ptr.as_ptr().write_bytes(0, pages.max(1) * PAGE_SIZE) };
        return ptr;
    }
    let layout = page_layout(pages);
    // SAFETY: the layout has a non-zero size (at least one page) and a valid alignment.
    let ptr = unsafe { alloc_zeroed(layout) };
    NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout))
}

/// Frees pages from [`alloc_pages`].
///
/// # Safety
/// `ptr` must come from `alloc_pages(pages)` with the same `pages`, and not be used again.
pub unsafe fn free_pages(ptr: NonNull<u8>, pages: usize) {
    if let Some(ptr) = spare::keep(ptr, pages) {
        // SAFETY: the caller guarantees ptr/pages match an earlier allocation with this
        // layout.
        unsafe { dealloc(ptr.as_ptr(), page_layout(pages)) }
    }
}

/// Freed blocks kept for the next allocation of the same size, with the
/// `recycle-pages` feature (the fuzzer without a sanitizer): a fresh allocation costs
/// page faults, a simulated machine's is up to 1 MiB, and it was half of an input's time.
/// Off otherwise, so that the address sanitizer still sees every use after free.
#[cfg(feature = "recycle-pages")]
mod spare {
    use std::cell::RefCell;
    use std::ptr::NonNull;

    /// Enough for a few simulated machines; the rest is freed.
    const MAX_BLOCKS: usize = 64;
    /// Larger blocks (simulated disks) are mostly untouched: a fresh zeroed mapping costs
    /// only the pages used, while a recycled one is cleared whole.
    const MAX_PAGES: usize = 128;

    struct Blocks(Vec<(usize, NonNull<u8>)>);

    impl Drop for Blocks {
        fn drop(&mut self) {
            for (pages, ptr) in self.0.drain(..) {
                // SAFETY: kept by `keep`, which took over free_pages' contract: a live
                // allocation of `pages` pages that nothing references.
                unsafe { std::alloc::dealloc(ptr.as_ptr(), super::page_layout(pages)) }
            }
        }
    }

    thread_local! {
        static BLOCKS: RefCell<Blocks> = const { RefCell::new(Blocks(Vec::new())) };
    }

    pub fn take(pages: usize) -> Option<NonNull<u8>> {
        BLOCKS.with_borrow_mut(|blocks| {
            let at = blocks.0.iter().position(|&(p, _)| p == pages)?;
            Some(blocks.0.swap_remove(at).1)
        })
    }

    /// Keeps the block, or gives it back when the list is full.
    pub fn keep(ptr: NonNull<u8>, pages: usize) -> Option<NonNull<u8>> {
        BLOCKS
            .try_with(|blocks| {
                let mut blocks = blocks.borrow_mut();
                if pages <= MAX_PAGES && blocks.0.len() < MAX_BLOCKS {
                    blocks.0.push((pages, ptr));
                    None
                } else {
                    Some(ptr)
                }
            })
            .unwrap_or(Some(ptr))
    }
}

#[cfg(not(feature = "recycle-pages"))]
mod spare {
    use std::ptr::NonNull;

    pub fn take(_pages: usize) -> Option<NonNull<u8>> {
        None
    }

    pub fn keep(ptr: NonNull<u8>, _pages: usize) -> Option<NonNull<u8>> {
        Some(ptr)
    }
}

fn page_layout(pages: usize) -> Layout {
    Layout::from_size_align(pages.max(1) * PAGE_SIZE, PAGE_SIZE)
        .unwrap_or_else(|_| Layout::new::<u8>())
}

/// A byte range of live host memory that a frontend shared (whole DMA pages, or the
/// exact bytes of a buffer passed to `Hal::share`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedRange {
    pub start: usize,
    pub end: usize,
}

impl SharedRange {
    pub fn contains(&self, addr: usize, len: usize) -> bool {
        addr >= self.start && addr.checked_add(len).is_some_and(|end| end <= self.end)
    }
}

/// Copies bytes out of shared frontend memory.
///
/// The grant table only calls this for ranges inside a live [`SharedRange`]: memory a
/// frontend allocated or lent to the device and has not taken back (ending the grant
/// fails while the backend holds a mapping).
pub fn read(range: SharedRange, addr: usize, dst: &mut [u8]) -> bool {
    if !range.contains(addr, dst.len()) {
        return false;
    }
    // SAFETY: `addr..addr+len` lies inside memory the frontend shared and still owns
    // (checked above); frontend and backend run on one thread, so no write races.
    unsafe { std::ptr::copy_nonoverlapping(addr as *const u8, dst.as_mut_ptr(), dst.len()) };
    true
}

/// Copies bytes into shared frontend memory (same contract as [`read`]).
pub fn write(range: SharedRange, addr: usize, src: &[u8]) -> bool {
    if !range.contains(addr, src.len()) {
        return false;
    }
    // SAFETY: as in `read`: inside a live shared range, single-threaded access.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), addr as *mut u8, src.len()) };
    true
}
