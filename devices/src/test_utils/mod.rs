//! Test doubles for the device models, in the manner of rust-vmm's virtio-queue `mock`:
//! an in-memory [`GuestMemory`] addressed by grant DMA addresses ([`TestMemory`]), a
//! split ring built in it ([`TestQueue`]), and the register writes of a driver bringing
//! an [`crate::mmio::MmioDevice`] up ([`driver`]).
//!
//! Compiled for this crate's unit tests, and for other crates with the `test-utils`
//! feature (never in the images). A misused helper panics: that fails the test that
//! misused it, which is all a test double owes.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::unwrap_used
)]

mod copier;
pub mod driver;
mod memory;
mod ring;

pub use copier::TestCopier;
pub use memory::{dma, TestMemory, FIRST_GREF};
pub use ring::{Buffer, TestQueue};

#[cfg(test)]
mod tests;
