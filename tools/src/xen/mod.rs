//! Xen beyond one image's build: a user's Xen source, the FLASK policy built from it,
//! what Xen let stubvirt do, and the public headers the ABI test compiles against.

pub mod abi_headers;
pub mod flask_policy;
pub mod privilege_checks;
pub mod source;
