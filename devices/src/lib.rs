//! stubvirt's virtio device models.
//!
//! Pure logic, no `unsafe`, no Xen: devices reach guest memory only through
//! [`memory::GuestMemory`], which the kernel implements with grant mappings and the host
//! tests implement with a simulated grant table.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod grant;
pub mod memory;
