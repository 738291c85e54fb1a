//! The Linux frontend of the end-to-end runs: its kernel, its programs and its initramfs.

pub mod initramfs;
pub mod kernel;
pub mod programs;
