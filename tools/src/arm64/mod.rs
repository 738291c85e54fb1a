//! The arm64 image: its toolchain and build, Xen 4.17.5 for it, the system device tree
//! QEMU boots, and its tests (plain QEMU, under Xen as dom0 and domU, serve mode).

pub mod boot;
pub mod image;
pub mod qemu;
pub mod serve;
pub mod serve_frontends;
pub mod sysdt;
pub mod test;
pub mod toolchain;
pub mod xen;
