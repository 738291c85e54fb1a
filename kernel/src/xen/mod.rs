//! Xen: the ABI (host-testable) and, in the image, hypercalls and safe wrappers.

pub mod abi;

#[cfg(feature = "image")]
#[allow(unsafe_code)]
pub mod console;
#[cfg(feature = "image")]
#[allow(unsafe_code)]
pub mod dm_op;
#[cfg(feature = "image")]
#[allow(unsafe_code)]
pub mod domain;
#[cfg(feature = "image")]
#[allow(unsafe_code)]
pub mod domain_control;
#[cfg(feature = "image")]
#[allow(unsafe_code)]
pub mod evtchn;
#[cfg(feature = "image")]
#[allow(unsafe_code)]
pub mod flask;
#[cfg(feature = "image")]
#[allow(unsafe_code)]
pub mod grant;
#[cfg(feature = "image")]
pub mod grant_copier;
#[cfg(feature = "image")]
#[allow(unsafe_code)]
pub mod guest_memory;
#[cfg(feature = "image")]
#[allow(unsafe_code)]
pub mod hypercall;
#[cfg(feature = "image")]
#[allow(unsafe_code)]
pub mod ioreq_page;
#[cfg(feature = "image")]
#[allow(unsafe_code)]
pub mod memory;
#[cfg(feature = "image")]
#[allow(unsafe_code)]
pub mod sched;
#[allow(unsafe_code)]
pub mod shared;
#[cfg(feature = "image")]
#[allow(unsafe_code)]
pub mod store_page;
#[cfg(feature = "image")]
#[allow(unsafe_code)]
pub mod sysctl;
#[cfg(feature = "image")]
pub mod vcpu_channel;
#[cfg(feature = "image")]
pub mod window;
