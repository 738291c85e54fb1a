//! The GSO shape of the `net_frames` target: a TCP/IPv4 or IPv6 GSO frame from a driver
//! with HOST_TSO4/6, sometimes with one header byte spoiled, to a receiver with or
//! without GUEST_TSO4/6, GUEST_CSUM and MRG_RXBUF. Oracle: an unspoiled frame is taken
//! and arrives whole with its header, or in segments that pass the reference check of
//! [`crate::tcp_packets`]; a spoiled one is taken or refused and counted, its tx chain
//! completed either way, and whatever arrives fits a 64 KiB GSO frame; one whose
//! gso_size is below [`MIN_GSO_SIZE`] is refused.

use super::net_pair::Pair;
use crate::net_fixture::{NetLayout, MAC_A, MAC_B};
use crate::scenario::Rng;
use crate::tcp_packets::{complete_partial, GsoFrame, Ip};
use arbitrary::Unstructured;
use devices::features::net as nf;
use devices::net::frame::NET_HDR_SIZE;
use devices::net::gso::{MAX_GSO_FRAME, MIN_GSO_SIZE};

/// Segments one frame may be cut into here: keeps an input's work bounded.
const MAX_SEGMENTS: usize = 48;

pub fn round(u: &mut Unstructured, data: &[u8]) {
    let ip = if u.arbitrary().unwrap_or(false) {
        Ip::V6
    } else {
        Ip::V4
    };
    let offloads = [
        0,
        nf::GUEST_CSUM,
        nf::GUEST_CSUM | nf::GUEST_TSO4,
        nf::GUEST_CSUM | nf::GUEST_TSO6,
        nf::GUEST_CSUM | nf::GUEST_TSO4 | nf::GUEST_TSO6,
    ];
    let mut receiver = *u.choose(&offloads).unwrap_or(&0);
    if u.arbitrary().unwrap_or(false) {
        receiver |= nf::MRG_RXBUF;
    }
    let sender = nf::CSUM | nf::HOST_TSO4 | nf::HOST_TSO6;
    let mut pair = Pair::take(NetLayout::GSO, super::copy_route(data), sender, receiver);
    let max_payload: usize = match ip {
        Ip::V4 => 65483,
        Ip::V6 => 65464,
    };
    let max_mss: u16 = match ip {
        Ip::V4 => 1448,
        Ip::V6 => 1428,
    };
    let len = u.int_in_range(1..=max_payload).unwrap_or(1000);
    let least_mss = len.div_ceil(MAX_SEGMENTS).min(usize::from(max_mss)) as u16;
    // One frame in eight asks for segments smaller than the device takes: refused.
    let tiny = u.ratio(1, 8).unwrap_or(false);
    let mss = if tiny {
        u.int_in_range(1..=MIN_GSO_SIZE - 1).unwrap_or(1)
    } else {
        u.int_in_range(least_mss.max(MIN_GSO_SIZE)..=max_mss)
            .unwrap_or(max_mss)
    };
    let mut payload = vec![0; len];
    Rng::new(u.arbitrary().unwrap_or(1)).fill(&mut payload);
    let gso = GsoFrame::new(ip, MAC_B, MAC_A, &payload, mss);
    let (mut header, mut frame) = (gso.header, gso.frame.clone());
    let spoiled = u.ratio(1, 3).unwrap_or(false);
    if spoiled {
        // One byte of the virtio header or of the packet headers.
        let at = u.int_in_range(0..=NET_HDR_SIZE + gso.l4 + 20).unwrap_or(0);
        let flip = u.int_in_range(1..=255u8).unwrap_or(1);
        match at.checked_sub(NET_HDR_SIZE) {
            None => header[at] ^= flip,
            Some(at) => frame[at] ^= flip,
        }
    }
    pair.a.send(header, &frame);
    assert_eq!(pair.a.tx.used_idx(), 1, "the tx chain is completed");
    let taken = pair.counted(0, |c| c.frames_tx) == 1;
    assert_eq!(pair.counted(0, |c| c.request_errors), u64::from(!taken));
    if tiny && !spoiled {
        assert!(!taken, "gso_size {mss} is refused");
    }
    assert!(taken || spoiled || tiny, "a well-formed GSO frame is taken");
    let whole = match ip {
        Ip::V4 => receiver & nf::GUEST_TSO4 != 0,
        Ip::V6 => receiver & nf::GUEST_TSO6 != 0,
    };
    let merged = receiver & nf::MRG_RXBUF != 0;
    let buffer = if whole && !merged { 65562 } else { 2048 };
    let received = pair.b.drain_frames(buffer, merged);
    for got in &received {
        assert!(got.len() <= NET_HDR_SIZE + MAX_GSO_FRAME, "frame too long");
    }
    if spoiled || tiny {
        assert!(taken || received.is_empty(), "a refused frame goes nowhere");
    } else if whole {
        assert_eq!(received.len(), 1, "one frame");
        assert_eq!(&received[0][..10], &header[..10], "GSO header passed on");
        assert!(received[0][NET_HDR_SIZE..] == frame[..], "frame byte-exact");
    } else {
        let segments: Vec<Vec<u8>> = received
            .into_iter()
            .map(|got| {
                let mut segment = got[NET_HDR_SIZE..].to_vec();
                if got[0] & 1 != 0 {
                    assert_ne!(receiver & nf::GUEST_CSUM, 0, "partial only with GUEST_CSUM");
                    complete_partial(&mut segment, gso.l4, 16);
                }
                segment
            })
            .collect();
        gso.check_segments(&segments);
    }
    pair.finish();
}
