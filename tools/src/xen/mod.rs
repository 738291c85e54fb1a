//! Xen itself: a user's Xen source, its FLASK policy, what it let stubvirt do, its headers.

pub mod abi_headers;
pub mod flask_policy;
pub mod privilege_checks;
pub mod source;
