//! stubvirt's virtio device models.
//!
//! Pure logic, no `unsafe`, no Xen: devices reach guest memory only through
//! [`memory::GuestMemory`], which the kernel implements with grant mappings and the host
//! tests implement with a simulated grant table.
#![no_std]
#![forbid(unsafe_code)]
// Guest-controlled values flow through the arithmetic here: every operation says what it
// does at the edge (checked_, wrapping_ or saturating_; docs/robustness.md, "Integer
// overflow"). Tests compute their expectations freely.
#![deny(clippy::arithmetic_side_effects)]
#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]

extern crate alloc;

pub mod backend;
pub mod blk;
pub mod buffer_route;
pub mod copy_route;
pub mod counters;
pub mod device;
pub mod features;
pub mod grant;
pub mod ioreq;
pub mod ioreq_loop;
pub mod mapping;
pub mod memory;
pub mod mmio;
pub mod net;
pub mod queue;
#[cfg(any(test, feature = "test-utils"))]
pub mod test_utils;
pub mod topology;
