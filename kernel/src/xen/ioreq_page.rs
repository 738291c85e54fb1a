//! The shared ioreq page of an IOREQ server (`struct shared_iopage`: one 32-byte
//! `struct ioreq` per frontend vcpu), placed in our grant window with
//! `XENMEM_acquire_resource` and read and written here with volatile accesses: Xen and the
//! frontend vcpus change it concurrently.

use super::abi::dm_op::{IoServId, IORESP_STATE_READY};
use super::abi::memory::XENMEM_RESOURCE_IOREQ_SERVER;
use super::abi::DomainId;
use super::hypercall::XenError;
use super::{memory, window};
use crate::arch::{Arch, Current, PAGE_SIZE};
use alloc::rc::Rc;
use core::sync::atomic::{fence, Ordering};
use devices::ioreq::{Ioreq, STATE_IOREQ_READY};

/// Bytes of one `struct ioreq`.
const SLOT_BYTES: usize = 32;
/// Slots in one page: the most vcpus one ioreq page serves.
pub const MAX_VCPUS: usize = PAGE_SIZE / SLOT_BYTES;
// Offsets in `struct ioreq` (layout-checked as `abi::dm_op::Ioreq`).
const ADDR: usize = 0;
const DATA: usize = 8;
const COUNT: usize = 16;
const SIZE: usize = 20;
const VP_EPORT: usize = 24;
const BITS: usize = 30;
const TYPE: usize = 31;
const _: () = {
    use super::abi::dm_op::Ioreq as Raw;
    use core::mem::{offset_of, size_of};
    assert!(size_of::<Raw>() == SLOT_BYTES);
    assert!(offset_of!(Raw, addr) == ADDR && offset_of!(Raw, data) == DATA);
    assert!(offset_of!(Raw, count) == COUNT && offset_of!(Raw, size) == SIZE);
    assert!(offset_of!(Raw, vp_eport) == VP_EPORT);
    assert!(offset_of!(Raw, bits) == BITS && offset_of!(Raw, type_) == TYPE);
};

/// Ioreq page 0 of a server, mapped in a window slot for as long as the page or any of
/// its [`IoreqSlot`]s lives: the last one dropped unmaps it and gives the frame back to
/// Xen (the page belongs to the frontend: our physmap entry keeps it from being freed).
pub struct IoreqPage {
    mapping: Rc<WindowMapping>,
}

/// The page's place in our window: dropped, it is unmapped and removed from our physmap.
struct WindowMapping {
    slot: usize,
    va: usize,
}

impl Drop for WindowMapping {
    fn drop(&mut self) {
        // SAFETY: every reference into the page is an `IoreqSlot` holding this mapping;
        // the last one is gone, so nothing reads or writes the page any more.
        unsafe { Current::unmap_window_pages(core::iter::once(self.slot)) };
        let gfn = window::gpa(self.slot) / PAGE_SIZE as u64;
        // SAFETY: the page is no longer mapped by our page tables (just above).
        match unsafe { memory::remove_from_physmap(gfn) } {
            Ok(()) => window::free(self.slot),
            // Xen still has something at the frame: the slot is not reused.
            Err(e) => log::error!("ioreq page: XENMEM_remove_from_physmap({gfn:#x}): {e}"),
        }
    }
}

impl IoreqPage {
    /// Acquires ioreq page 0 of server `id` for `domid` into a free window frame and maps
    /// it writable.
    pub fn acquire(domid: DomainId, id: IoServId) -> Result<Self, XenError> {
        let slot = window::alloc().ok_or(XenError(super::abi::errno::EFAULT))?;
        let gpa = window::gpa(slot);
        let mut gfns = [gpa / PAGE_SIZE as u64];
        // SAFETY: gfns[0] is a window frame we just reserved (not RAM); Xen places the
        // ioreq page there. Frame 1 of the resource is ioreq page 0.
        let placed = unsafe {
            memory::acquire_resource(
                domid,
                XENMEM_RESOURCE_IOREQ_SERVER,
                u32::from(id),
                1,
                &mut gfns,
            )
        };
        if let Err(e) = placed {
            window::free(slot);
            return Err(e);
        }
        // SAFETY: Xen has placed the ioreq page at `gpa`; the slot is ours and unmapped.
        unsafe { Current::map_window_page(slot, gpa, true) };
        Ok(Self {
            mapping: Rc::new(WindowMapping {
                slot,
                va: Current::window_va(slot),
            }),
        })
    }

    /// Vcpu `vcpu`'s slot (`None` past the page).
    pub fn slot(&self, vcpu: usize) -> Option<IoreqSlot> {
        (vcpu < MAX_VCPUS).then(|| IoreqSlot {
            va: self.mapping.va + vcpu * SLOT_BYTES,
            _page: self.mapping.clone(),
        })
    }
}

/// One vcpu's `struct ioreq` in a mapped [`IoreqPage`], which stays mapped while this
/// lives.
pub struct IoreqSlot {
    va: usize,
    _page: Rc<WindowMapping>,
}

impl IoreqSlot {
    fn byte(&self, offset: usize) -> u8 {
        // SAFETY: the page is mapped while `_page` lives; offset < SLOT_BYTES keeps the
        // access inside this vcpu's slot.
        unsafe { core::ptr::read_volatile((self.va + offset % SLOT_BYTES) as *const u8) }
    }

    fn u32_at(&self, offset: usize) -> u32 {
        // SAFETY: as in `byte`; the mask keeps a 4-byte aligned field inside the slot.
        unsafe { core::ptr::read_volatile((self.va + (offset & 0x1c)) as *const u32) }
    }

    fn u64_at(&self, offset: usize) -> u64 {
        // SAFETY: as in `byte`; the mask keeps an 8-byte aligned field inside the slot.
        unsafe { core::ptr::read_volatile((self.va + (offset & 0x18)) as *const u64) }
    }

    /// The event channel (unbound, for us to bind) Xen signals this vcpu's ioreqs on.
    pub fn vp_eport(&self) -> u32 {
        self.u32_at(VP_EPORT)
    }

    /// A copy of the slot if it is in state IOREQ_READY (the fields are read after the
    /// state, with a barrier between).
    pub fn take_ready(&self) -> Option<Ioreq> {
        let bits = self.byte(BITS);
        if bits & 0xf != STATE_IOREQ_READY {
            return None;
        }
        fence(Ordering::Acquire);
        Some(Ioreq {
            addr: self.u64_at(ADDR),
            data: self.u64_at(DATA),
            count: self.u32_at(COUNT),
            size: self.u32_at(SIZE),
            state: bits & 0xf,
            data_is_ptr: bits & (1 << 4) != 0,
            dir: (bits >> 5) & 1,
            df: bits & (1 << 6) != 0,
            kind: self.byte(TYPE),
        })
    }

    /// Writes the answer's data, then (after a barrier) state IORESP_READY.
    pub fn complete(&self, data: u64) {
        let bits = self.byte(BITS);
        // SAFETY: as in `u64_at` (data, 8-byte aligned) and `byte` (the state byte).
        unsafe {
            core::ptr::write_volatile((self.va + DATA) as *mut u64, data);
            fence(Ordering::Release);
            core::ptr::write_volatile(
                (self.va + BITS) as *mut u8,
                (bits & !0xf) | IORESP_STATE_READY,
            );
        }
        fence(Ordering::SeqCst);
    }
}
