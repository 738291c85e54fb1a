//! The arm64 image: its toolchain and build, its Xen, and its boots under QEMU and Xen.

pub mod boot;
pub mod image;
pub mod qemu;
pub mod serve;
pub mod serve_frontends;
pub mod sysdt;
pub mod test;
pub mod toolchain;
pub mod xen;
