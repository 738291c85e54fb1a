//! Xen: the ABI (host-testable) and, in the image, hypercalls and safe wrappers.

pub mod abi;

#[cfg(feature = "image")]
pub mod console;
#[cfg(feature = "image")]
pub mod dm_op;
#[cfg(feature = "image")]
pub mod domain;
#[cfg(feature = "image")]
pub mod evtchn;
#[cfg(feature = "image")]
pub mod grant;
#[cfg(feature = "image")]
pub mod grant_copier;
#[cfg(feature = "image")]
pub mod guest_memory;
#[cfg(feature = "image")]
pub mod hypercall;
#[cfg(feature = "image")]
pub mod ioreq_page;
#[cfg(feature = "image")]
pub mod memory;
#[cfg(feature = "image")]
pub mod sched;
pub mod shared;
#[cfg(feature = "image")]
pub mod vcpu_channel;
#[cfg(feature = "image")]
pub mod window;
