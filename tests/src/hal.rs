//! The frontend's DMA layer, as Linux `xen-grant-dma` does it: every buffer the driver
//! shares is granted to the backend and its "DMA address" is the grant address
//! (`1 << 63 | gref << 12 | offset`, consecutive grefs per buffer). Read-only grants for
//! driver-to-device buffers; ending a grant the backend still maps is recorded as a
//! violation ("Grant still in use by backend domain").

use crate::host_pages::{self, SharedRange, PAGE_SIZE};
use crate::world::{self, BACKEND_DOMID};
use devices::backend::DomainId;
use devices::grant::{GrantAddress, GrantRef};
use std::ptr::NonNull;
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// The DMA layer of frontend domain `DOMID`.
pub struct GrantDmaHal<const DOMID: u16>;

/// Grants the pages covering `start..start+len` (consecutive grefs); returns the first.
pub fn grant_buffer(domain: DomainId, start: usize, len: usize, readonly: bool) -> u32 {
    let first_page = start & !(PAGE_SIZE - 1);
    let end = start + len.max(1);
    let frames: Vec<(usize, SharedRange)> = (first_page..end)
        .step_by(PAGE_SIZE)
        .map(|page| {
            let shared = SharedRange {
                start: start.max(page),
                end: end.min(page + PAGE_SIZE),
            };
            (page, shared)
        })
        .collect();
    world::with(|w| {
        w.table(domain)
            .grant_consecutive(&frames, readonly, BACKEND_DOMID)
    })
}

/// Ends access to the grants of a buffer; a grant still mapped is a violation.
pub fn end_buffer(domain: DomainId, first_gref: u32, start: usize, len: usize) {
    let pages = ((start % PAGE_SIZE) + len.max(1)).div_ceil(PAGE_SIZE) as u32;
    world::with(|w| {
        for gref in first_gref..first_gref + pages {
            if let Err(e) = w.table(domain).end_access(gref) {
                w.violations
                    .push(format!("dom{domain}: ending grant {gref} failed: {e:?}"));
            }
        }
    });
}

fn gref_of(paddr: PhysAddr) -> u32 {
    GrantAddress::decode(paddr)
        .map(|a| a.gref.0)
        .unwrap_or(u32::MAX)
}

// SAFETY: dma_alloc returns fresh, zeroed, page-aligned allocations that nothing else
// aliases; share/unshare only record grants and never touch the buffer themselves.
unsafe impl<const DOMID: u16> Hal for GrantDmaHal<DOMID> {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let vaddr = host_pages::alloc_pages(pages);
        let gref = grant_buffer(DOMID, vaddr.as_ptr() as usize, pages * PAGE_SIZE, false);
        (GrantAddress::encode(GrantRef(gref), 0), vaddr)
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        end_buffer(
            DOMID,
            gref_of(paddr),
            vaddr.as_ptr() as usize,
            pages * PAGE_SIZE,
        );
        let still_mapped = world::with(|w| {
            (0..pages as u32).any(|i| w.table(DOMID).entry(gref_of(paddr) + i).is_some())
        });
        if !still_mapped {
            // SAFETY: vaddr/pages come from dma_alloc (the trait's contract), and no grant
            // onto them is left, so the simulated backend cannot reach them any more.
            unsafe { host_pages::free_pages(vaddr, pages) };
        }
        0
    }

    unsafe fn mmio_phys_to_virt(_paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        // Only the PCI transport asks for this; the simulated machine has no PCI.
        panic!("simulated Xen: no PCI BARs to map")
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let start = buffer.as_ptr() as *mut u8 as usize;
        let readonly = direction == BufferDirection::DriverToDevice;
        let gref = grant_buffer(DOMID, start, buffer.len(), readonly);
        GrantAddress::encode(GrantRef(gref), (start % PAGE_SIZE) as u16)
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, _direction: BufferDirection) {
        end_buffer(
            DOMID,
            gref_of(paddr),
            buffer.as_ptr() as *mut u8 as usize,
            buffer.len(),
        );
    }
}
