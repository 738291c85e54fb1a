//! The x86_64 image: its build, Debian's Xen for it, and its boot tests.

pub mod boot;
pub mod image;
pub mod xen;
