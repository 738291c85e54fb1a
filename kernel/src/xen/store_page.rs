//! The xenstore page and event channel Xen gives a domain that a toolstack created
//! (`HVM_PARAM_STORE_PFN`, `HVM_PARAM_STORE_EVTCHN`): the image's side of
//! [`crate::xenstore::StoreChannel`]. Dom0less domains without `xen,enhanced` have none.

use super::abi::event_channel::Port;
use super::abi::hvm::{XenHvmParam, HVMOP_GET_PARAM, HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN};
use super::abi::xenstore::XenstoreDomainInterface;
use super::abi::{op, DOMID_SELF};
use super::hypercall::{with_arg, XenError};
use super::{evtchn, sched};
use crate::arch::{Arch, Current, PAGE_SIZE};
use crate::xenstore::StoreChannel;
use core::sync::atomic::{fence, Ordering};

/// One of this domain's HVM parameters.
pub fn hvm_param(index: u32) -> Result<u64, XenError> {
    let mut arg = XenHvmParam {
        domid: DOMID_SELF,
        pad: 0,
        index,
        value: 0,
    };
    // SAFETY: xen_hvm_param holds no addresses; Xen writes `value`.
    unsafe { with_arg(op::HVM_OP, HVMOP_GET_PARAM, &mut arg) }?;
    Ok(arg.value)
}

pub struct StorePage {
    /// The page's address: guest-physical, identity mapped (the boot page tables map
    /// everything below `Arch::UNMAPPED_VA`, Xen's magic pages included).
    base: usize,
    port: Port,
}

impl StorePage {
    /// The page Xen set up for this domain, or `None` when it has no xenstore.
    pub fn from_params() -> Result<Option<Self>, XenError> {
        let pfn = hvm_param(HVM_PARAM_STORE_PFN)?;
        let port = hvm_param(HVM_PARAM_STORE_EVTCHN)?;
        if pfn == 0 {
            return Ok(None);
        }
        let base = usize::try_from(pfn)
            .ok()
            .and_then(|pfn| pfn.checked_mul(PAGE_SIZE))
            .filter(|&base| base < Current::UNMAPPED_VA)
            .ok_or(XenError(super::abi::errno::EINVAL))?;
        let port = Port::try_from(port).map_err(|_| XenError(super::abi::errno::EINVAL))?;
        // Polled with the serve loop's other channels, never delivered as an upcall.
        evtchn::mask(port);
        Ok(Some(Self { base, port }))
    }

    pub fn port(&self) -> Port {
        self.port
    }

    /// The address of `len` bytes at `at` in the page, if they are inside it.
    fn span(&self, at: usize, len: usize) -> Option<usize> {
        let end = at.checked_add(len)?;
        (end <= core::mem::size_of::<XenstoreDomainInterface>()).then_some(self.base + at)
    }
}

impl StoreChannel for StorePage {
    fn index(&self, at: usize) -> u32 {
        let Some(address) = self.span(at, 4).filter(|a| a % 4 == 0) else {
            return 0;
        };
        // SAFETY: an aligned u32 inside the mapped store page; xenstored writes it
        // concurrently, so it is read volatile, once.
        let value = unsafe { core::ptr::read_volatile(address as *const u32) };
        // The ring bytes xenstored wrote before this index are read after it.
        fence(Ordering::Acquire);
        value
    }

    fn set_index(&mut self, at: usize, value: u32) {
        let Some(address) = self.span(at, 4).filter(|a| a % 4 == 0) else {
            return;
        };
        // The ring bytes written before are visible to xenstored before the index.
        fence(Ordering::Release);
        // SAFETY: an aligned u32 inside the mapped store page, which only this vcpu of
        // this domain writes on the client's side.
        unsafe { core::ptr::write_volatile(address as *mut u32, value) };
    }

    fn read(&self, at: usize, out: &mut [u8]) {
        let Some(address) = self.span(at, out.len()) else {
            return;
        };
        for (n, byte) in out.iter_mut().enumerate() {
            // SAFETY: inside the mapped store page (checked above); byte reads of memory
            // xenstored may write, volatile so each is read once.
            *byte = unsafe { core::ptr::read_volatile((address + n) as *const u8) };
        }
    }

    fn write(&mut self, at: usize, bytes: &[u8]) {
        let Some(address) = self.span(at, bytes.len()) else {
            return;
        };
        for (n, byte) in bytes.iter().enumerate() {
            // SAFETY: inside the mapped store page (checked above), in the request ring
            // part that xenstored does not read until the producer index moves.
            unsafe { core::ptr::write_volatile((address + n) as *mut u8, *byte) };
        }
    }

    fn notify(&mut self) {
        if let Err(e) = evtchn::send(self.port) {
            log::warn!("xenstore: EVTCHNOP_send: {e}");
        }
    }

    fn now_ms(&self) -> u64 {
        evtchn::system_time_ns() / 1_000_000
    }

    fn wait(&mut self, until_ms: u64) {
        let mut ports = [self.port];
        if let Err(e) = sched::poll(&mut ports, until_ms.saturating_mul(1_000_000)) {
            log::warn!("xenstore: SCHEDOP_poll: {e}");
        }
        // Cleared after waking; the client looks at the rings again before waiting.
        evtchn::clear_pending(self.port);
    }
}
