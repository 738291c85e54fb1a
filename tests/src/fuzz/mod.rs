//! Fuzz target bodies. `devices/fuzz` (cargo-fuzz, libFuzzer) calls these; the stable
//! test suite replays the saved corpus and regressions through them, and a few hundred
//! generated inputs, so `cargo xtask test` checks them without a nightly toolchain.
//!
//! Every target has oracles beyond "no panic": accesses only through granted pages with
//! the right permission (the simulated grant table), counters consistent (every mapping
//! released once idle or reset), no request completed twice, and a well-formed request
//! after the garbage still succeeding.

pub mod blk_request;
pub mod grant_decode;
pub mod ioreq_slots;
pub mod mmio_sequence;
pub mod net_backpressure;
pub mod net_frames;
pub mod net_gso;
mod net_pair;
pub mod ring_blk;
pub mod ring_net;

/// A target body: takes libFuzzer's bytes, panics on a broken oracle.
pub type Target = fn(&[u8]);

/// Every target, by the name cargo-fuzz knows it under.
pub const TARGETS: [(&str, Target); 8] = [
    ("mmio_sequence", mmio_sequence::run),
    ("ring_blk", ring_blk::run),
    ("ring_net", ring_net::run),
    ("blk_request", blk_request::run),
    ("net_frames", net_frames::run),
    ("ioreq_slots", ioreq_slots::run),
    ("grant_decode", grant_decode::run),
    ("net_backpressure", net_backpressure::run),
];

/// Half the inputs (those of odd length, so no input byte is spent on it) run with the
/// kernel's default route, request buffers by grant copy; the others map them.
pub fn copy_route(data: &[u8]) -> bool {
    data.len() % 2 == 1
}

/// Sets `domains` to the route [`copy_route`] picks for `data`.
pub fn pick_route(
    machine: &crate::scenario::Shared,
    domains: &[devices::backend::DomainId],
    data: &[u8],
) {
    if copy_route(data) {
        for &domain in domains {
            machine.borrow_mut().frontends.copy_buffers(domain);
        }
    }
}

/// A fuzzer-chosen DMA address: mostly inside the frontend's granted scratch pages (so
/// the device gets past decoding), sometimes anything at all.
pub fn address(
    u: &mut arbitrary::Unstructured,
    granted: &crate::rings::Granted,
    pages: usize,
) -> u64 {
    match u.int_in_range(0..=7u8).unwrap_or(0) {
        0 => u.arbitrary().unwrap_or(0),
        1 => devices::grant::GrantAddress::encode(
            devices::grant::GrantRef(u.arbitrary().unwrap_or(0)),
            0,
        ),
        _ => {
            let offset = u.int_in_range(0..=pages * 4096 - 1).unwrap_or(0);
            granted.dma(offset)
        }
    }
}
