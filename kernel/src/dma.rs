//! Memory for the host's own virtio devices, which stubvirt drives with the
//! `virtio-drivers` crate (its `Hal` trait): DMA frames, buffer addresses, and the
//! register windows.
//!
//! Valid only where a guest-physical address is the machine address a device DMAs to:
//! without Xen, or as Arm dom0, which Xen maps 1:1. The boot code keeps
//! [`BootInfo::host_virtio`] empty elsewhere. Everything here is identity mapped
//! (VA == guest-physical), so an address is its own DMA address and nothing is copied.

use crate::arch::BootInfo;
use crate::mem;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// `virtio-drivers`' hardware interface over the identity map.
pub struct DirectMapHal;

// SAFETY: dma_alloc hands out zeroed, page-aligned frames that belong to nobody else (the
// frame allocator gives each frame once and never takes it back); share returns the
// buffer's own address, which is its machine address under the identity map.
unsafe impl Hal for DirectMapHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        // Queues are allocated once, at probe time, from boot memory: running out there
        // is a configuration error, not something a guest can cause.
        let Some(start) = mem::alloc_frames(pages as u64) else {
            panic!("no RAM for {pages} DMA pages of a host virtio device");
        };
        let Some(ptr) = NonNull::new(start as *mut u8) else {
            panic!("frame allocator returned address 0");
        };
        (start, ptr)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        // Frames are never freed (the devices live for the whole run); 0 = success.
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        // Only the PCI transport calls this, and stubvirt drives no PCI device.
        panic!("mmio_phys_to_virt({paddr:#x}): no PCI transport in stubvirt")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let va = buffer.as_ptr().cast::<u8>() as u64;
        // Grant-window pages are not identity mapped: handing one to a device would make
        // it DMA to the wrong frame. Our drivers only share heap, frames and the stack.
        assert!(
            mem::is_identity_mapped(va, buffer.len()),
            "buffer {va:#x} shared with a host device is not identity mapped"
        );
        va
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {
        // Coherent DMA (QEMU virt, dom0's 1:1 map): nothing to copy back or flush.
    }
}

static CLAIMED: AtomicBool = AtomicBool::new(false);

/// A transport, with the window's interrupt, for each host virtio-mmio window that
/// answers with a valid header (an empty QEMU slot has device id 0 and is left out).
/// Returns an empty list on the second call: each window must have exactly one owner.
pub fn host_transports(boot: &BootInfo) -> alloc::vec::Vec<(MmioTransport<'static>, Option<u32>)> {
    let mut found = alloc::vec::Vec::new();
    if CLAIMED.swap(true, Ordering::AcqRel) {
        return found;
    }
    for window in &boot.host_virtio {
        let (Ok(size), Some(header)) = (
            usize::try_from(window.len),
            NonNull::new(window.start as *mut VirtIOHeader),
        ) else {
            continue;
        };
        if window.start % 4 != 0 || !below_device_limit(window.start, size) {
            continue;
        }
        // SAFETY: the window comes from the device tree's `virtio,mmio` node; the boot
        // identity map covers it as device memory (the first GiB); CLAIMED makes this the
        // only transport ever created for it, and it lives for the rest of the run.
        if let Ok(transport) = unsafe { MmioTransport::new(header, size) } {
            found.push((transport, window.intid));
        }
    }
    found
}

/// Whether `[start, start + len)` lies in the boot map's device range (the first GiB,
/// mapped Device-nGnRE on arm64), where the register windows of QEMU's virt machine are.
fn below_device_limit(start: u64, len: usize) -> bool {
    const DEVICE_LIMIT: u64 = 1 << 30;
    start
        .checked_add(len as u64)
        .is_some_and(|end| end <= DEVICE_LIMIT)
}
