//! stubvirt: a `no_std` unikernel serving virtio devices to Xen guests over grants.
//!
//! Host-testable parts (the Xen ABI and its layout table, the command-line parser) build
//! everywhere; the rest needs the `image` feature and a bare-metal link (see Cargo.toml).
#![cfg_attr(not(test), no_std)]
// `unsafe` is allowed only in the modules that touch hardware, memory or Xen directly,
// each named below with `#[allow(unsafe_code)]`; every block there has a `// SAFETY:`
// comment (workspace lints).
#![deny(unsafe_code)]

pub mod cmdline;
pub mod devtree_nodes;
pub mod memmap;
pub mod xen;
pub mod xenstore;

#[cfg(feature = "image")]
extern crate alloc;

#[cfg(feature = "image")]
#[allow(unsafe_code)]
pub mod arch;
#[cfg(feature = "image")]
mod console;
#[cfg(feature = "image")]
#[allow(unsafe_code)]
mod dma;
#[cfg(feature = "image")]
mod kmain;
#[cfg(feature = "image")]
#[allow(unsafe_code)]
mod mem;
#[cfg(feature = "image")]
mod panic;
// The C-runtime symbols rustup's precompiled x86_64 `core`/`alloc` need (arm64 builds
// them with `-Zbuild-std`, whose compiler-builtins provide the mem functions).
#[cfg(all(feature = "test-modes", target_arch = "aarch64"))]
mod frontend_test;
#[cfg(all(feature = "test-modes", target_arch = "aarch64"))]
mod grant_bench;
#[cfg(feature = "image")]
#[allow(unsafe_code)]
mod host_disk;
#[cfg(feature = "image")]
mod hostdev;
#[cfg(feature = "image")]
#[allow(unsafe_code)]
mod nic_queues;
#[cfg(all(feature = "image", target_arch = "x86_64"))]
#[allow(unsafe_code)]
mod rt;
#[cfg(feature = "image")]
mod selftest;
#[cfg(feature = "image")]
mod serve;
#[cfg(feature = "image")]
mod uplink;

#[cfg(feature = "image")]
pub use kmain::kernel_main;
