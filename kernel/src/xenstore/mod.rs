//! A xenstore client for a domain that a toolstack (`xl`) creates: the wire protocol over
//! the page and event channel Xen gives the domain (`HVM_PARAM_STORE_PFN`/`_EVTCHN`).
//! Pure logic over [`StoreChannel`], host-tested against a simulated xenstored; the image
//! provides the page and the event channel.

pub mod client;
pub mod discovery;
#[cfg(test)]
mod discovery_tests;
pub mod ring;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

pub use client::{Client, Error, StoreError};
pub use ring::{Broken, StoreChannel};
