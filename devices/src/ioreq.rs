//! What Xen hands the backend for a trapped access (`struct ioreq`, `public/hvm/ioreq.h`),
//! as plain values, and how one is checked and answered. The kernel copies a slot of the
//! shared ioreq page into [`Ioreq`]; the tests build them like Xen would.

use crate::backend::{Backend, BackendError, DomainId, Frontends, MmioRequest};

pub const STATE_IOREQ_NONE: u8 = 0;
pub const STATE_IOREQ_READY: u8 = 1;
pub const STATE_IOREQ_INPROCESS: u8 = 2;
pub const STATE_IORESP_READY: u8 = 3;
pub const IOREQ_TYPE_PIO: u8 = 0;
pub const IOREQ_TYPE_COPY: u8 = 1;
pub const IOREQ_TYPE_INVALIDATE: u8 = 8;
pub const IOREQ_READ: u8 = 1;
pub const IOREQ_WRITE: u8 = 0;

/// One vcpu's ioreq slot, field by field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ioreq {
    pub addr: u64,
    pub data: u64,
    pub count: u32,
    pub size: u32,
    pub state: u8,
    pub data_is_ptr: bool,
    pub dir: u8,
    pub df: bool,
    pub kind: u8,
}

/// Why a ready slot was not a register access stubvirt serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoreqError {
    /// Port I/O, or a type other than MMIO copy and invalidate.
    UnsupportedType(u8),
    /// `data_is_ptr`: a string/rep access through guest memory. A virtio-mmio driver
    /// never makes one, and serving it would need foreign mappings.
    DataIsPointer,
    /// A repeat count other than 1.
    Repeated(u32),
    /// A width other than 1, 2, 4 or 8 bytes.
    BadSize(u32),
    Backend(BackendError),
}

/// What to write back into the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoreqAnswer {
    /// The slot's new `data` (the value read; unchanged for writes).
    pub data: u64,
    pub error: Option<IoreqError>,
}

impl Ioreq {
    /// Checks a slot in state READY and turns it into a register access.
    pub fn to_request(&self, frontend: DomainId) -> Result<MmioRequest, IoreqError> {
        if self.kind != IOREQ_TYPE_COPY {
            return Err(IoreqError::UnsupportedType(self.kind));
        }
        if self.data_is_ptr {
            return Err(IoreqError::DataIsPointer);
        }
        if self.count != 1 {
            return Err(IoreqError::Repeated(self.count));
        }
        let size = match self.size {
            1 | 2 | 4 | 8 => self.size as u8,
            other => return Err(IoreqError::BadSize(other)),
        };
        let write = self.dir == IOREQ_WRITE;
        let data = if write {
            self.data & width_mask(size)
        } else {
            0
        };
        Ok(MmioRequest {
            frontend,
            addr: self.addr,
            size,
            write,
            data,
        })
    }
}

/// The bits of an access `size` bytes wide (1, 2, 4 or 8; `to_request` refuses others).
fn width_mask(size: u8) -> u64 {
    match size {
        1 => u64::from(u8::MAX),
        2 => u64::from(u16::MAX),
        4 => u64::from(u32::MAX),
        _ => u64::MAX,
    }
}

/// Serves one ready slot. Every slot gets an answer, so a faulty access never leaves the
/// frontend vcpu waiting: an invalidate or refused access completes with data 0 (reads)
/// or no effect (writes).
pub fn serve<F: Frontends + ?Sized>(
    backend: &mut Backend,
    frontends: &mut F,
    frontend: DomainId,
    slot: &Ioreq,
) -> IoreqAnswer {
    if slot.kind == IOREQ_TYPE_INVALIDATE {
        // Invalidate asks to drop cached mappings of the frontend's memory; stubvirt keeps
        // no foreign mappings, and grant mappings are dropped per request already.
        return IoreqAnswer {
            data: slot.data,
            error: None,
        };
    }
    let read_default = if slot.dir == IOREQ_READ { 0 } else { slot.data };
    let request = match slot.to_request(frontend) {
        Ok(request) => request,
        Err(error) => {
            return IoreqAnswer {
                data: read_default,
                error: Some(error),
            }
        }
    };
    match backend.mmio(&request, frontends) {
        Ok(value) if !request.write => IoreqAnswer {
            data: value & width_mask(request.size),
            error: None,
        },
        Ok(_) => IoreqAnswer {
            data: slot.data,
            error: None,
        },
        Err(error) => IoreqAnswer {
            data: read_default,
            error: Some(IoreqError::Backend(error)),
        },
    }
}
