//! TCP segmentation offload through the switch (virtio 1.2 section 5.1.6): 64 KiB GSO
//! frames to a peer with GUEST_TSO4 arrive whole with their header; to a peer without
//! it (a `virtio-drivers` frontend, a hand-driven one with or without GUEST_CSUM) and to
//! the uplink they arrive cut into MSS segments, checked against an independent
//! reference; malformed GSO headers are dropped and counted; FEATURES_OK is refused for
//! a TSO bit without the checksum offload it needs.

mod delivery;
mod gso_buffers;
mod malformed;

use devices::features::net as nf;
use stubvirt_tests::scenario::{self, Rng};
use stubvirt_tests::tcp_packets::{GsoFrame, Ip};

/// TCP payload of the largest GSO packet: IPv4 total length 65535 (20 + 32 + 65483);
/// IPv6 64 KiB of IP packet (40 + 32 + 65464).
const MAX_PAYLOAD_V4: usize = 65483;
const MAX_PAYLOAD_V6: usize = 65464;
/// The MSS of MTU 1500 with 32 bytes of TCP header.
const MSS_V4: u16 = 1448;
pub const MSS_V6: u16 = 1428;
pub const HOST_TSO: u64 = nf::CSUM | nf::HOST_TSO4 | nf::HOST_TSO6;

pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0; len];
    Rng::new(seed).fill(&mut bytes);
    bytes
}

pub fn max_frame(ip: Ip, dst: [u8; 6], src: [u8; 6]) -> GsoFrame {
    match ip {
        Ip::V4 => GsoFrame::new(ip, dst, src, &payload(MAX_PAYLOAD_V4, 1), MSS_V4),
        Ip::V6 => GsoFrame::new(ip, dst, src, &payload(MAX_PAYLOAD_V6, 2), MSS_V6),
    }
}

pub fn counters(machine: &scenario::Shared, device: usize) -> devices::counters::Counters {
    machine.borrow().backend.counters(device).unwrap()
}

/// The frames a driver without GUEST_CSUM received, without their virtio header.
pub fn segments(frames: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    frames.into_iter().map(|f| f[12..].to_vec()).collect()
}
