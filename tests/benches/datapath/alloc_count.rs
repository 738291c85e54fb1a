//! The bench binary's global allocator: counts heap bytes live and allocations made,
//! for the footprint table, with the simulated Xen's own allocations left out.

use devices::backend::{DomainId, Frontends};
use devices::memory::{AccessError, Barrier, GuestMemory, MapError, MapRequest, MappedPage};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use stubvirt_tests::world::GrantedMemory;

/// Counts heap bytes live and allocations made, for the footprint table.
struct CountingAllocator;

pub static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
pub static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Set while the simulated Xen runs, whose allocations are not the backend's.
static PAUSED: AtomicBool = AtomicBool::new(false);

/// Runs `f` with the allocation count paused.
fn uncounted<R>(f: impl FnOnce() -> R) -> R {
    PAUSED.store(true, Ordering::Relaxed);
    let r = f();
    PAUSED.store(false, Ordering::Relaxed);
    r
}

/// The simulated Xen's memory with its allocations left out of the count.
pub struct UncountedMemory(pub GrantedMemory);

impl GuestMemory for UncountedMemory {
    type Rings = Self;

    fn rings(&self) -> &Self {
        self
    }

    fn rings_mut(&mut self) -> &mut Self {
        self
    }

    fn map_batch(&mut self, requests: &[MapRequest], results: &mut [Result<MappedPage, MapError>]) {
        uncounted(|| self.0.map_batch(requests, results))
    }
    fn unmap_batch(&mut self, pages: &[MappedPage]) -> usize {
        uncounted(|| self.0.unmap_batch(pages))
    }
    fn read(&self, page: MappedPage, offset: usize, dst: &mut [u8]) -> Result<(), AccessError> {
        uncounted(|| self.0.read(page, offset, dst))
    }
    fn write(&mut self, page: MappedPage, offset: usize, src: &[u8]) -> Result<(), AccessError> {
        uncounted(|| self.0.write(page, offset, src))
    }
    fn barrier(&self, kind: Barrier) {
        uncounted(|| self.0.barrier(kind))
    }
}

impl Frontends for UncountedMemory {
    type Memory = Self;

    fn memory(&mut self, domain: DomainId) -> Option<&mut Self> {
        (domain == self.0.frontend).then_some(self)
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        if !PAUSED.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;
