//! The simulated Xen's guest memory for stubvirt's queue: grant table and hypercall
//! accounting, with the frontend's granted pages beside it.

use crate::layout::{make_available, DriverView};
use crate::serve::DriverLike;
use devices::grant::PAGE_SIZE;
use devices::memory::{AccessError, Barrier, GuestMemory, MapError, MapRequest, MappedPage};
use stubvirt_tests::rings::Granted;
use stubvirt_tests::world::GrantedMemory;

/// The simulated Xen's frontend pages, granted to the backend.
pub struct SimDriver {
    pub pages: Granted,
}

impl DriverView for SimDriver {
    fn addr(&self, page: usize, offset: usize) -> u64 {
        self.pages.dma(page * PAGE_SIZE + offset)
    }
    fn put(&mut self, page: usize, offset: usize, bytes: &[u8]) {
        self.pages.write(page * PAGE_SIZE + offset, bytes);
    }
}

/// The simulated Xen memory with the frontend's pages beside it.
pub struct SimPair {
    pub mem: GrantedMemory,
    pub driver: SimDriver,
}

impl GuestMemory for SimPair {
    type Rings = Self;

    fn rings(&self) -> &Self {
        self
    }

    fn rings_mut(&mut self) -> &mut Self {
        self
    }

    fn map_batch(&mut self, requests: &[MapRequest], results: &mut [Result<MappedPage, MapError>]) {
        self.mem.map_batch(requests, results)
    }
    fn unmap_batch(&mut self, pages: &[MappedPage]) -> usize {
        self.mem.unmap_batch(pages)
    }
    fn read(&self, page: MappedPage, offset: usize, dst: &mut [u8]) -> Result<(), AccessError> {
        self.mem.read(page, offset, dst)
    }
    fn write(&mut self, page: MappedPage, offset: usize, src: &[u8]) -> Result<(), AccessError> {
        self.mem.write(page, offset, src)
    }
    fn barrier(&self, kind: Barrier) {
        self.mem.barrier(kind)
    }
}

impl DriverLike for SimPair {
    fn refill(&mut self, heads: &[u16], avail_idx: &mut u16) {
        make_available(&mut self.driver, heads, avail_idx);
    }
}
