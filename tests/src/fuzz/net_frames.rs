//! Target 4: virtio-net headers and frames through the switch, with fuzzer-chosen rx
//! buffer sizes and MRG_RXBUF on or off. Oracle: every legal frame is delivered
//! byte-exact with its offload fields, or waits for buffers and then arrives whole, or
//! is dropped and counted; never truncated. Illegal frames are refused at tx and counted.
//! A port receives only what is addressed to it (its MAC, broadcast, multicast), and only
//! from a sender using its own MAC.
//! One round in four is a GSO frame instead ([`super::net_gso`]).

use super::net_pair::Pair;
use crate::net_fixture::{NetLayout, MAC_A, MAC_B};
use arbitrary::Unstructured;
use devices::features::net as nf;

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    while !u.is_empty() {
        if u.ratio(1, 4).unwrap_or(false) {
            super::net_gso::round(&mut u, data);
            continue;
        }
        let merge = if u.arbitrary().unwrap_or(false) {
            nf::MRG_RXBUF
        } else {
            0
        };
        // With EVENT_IDX, b kicks only when the device asked: a frame left waiting must
        // have asked for the next buffer, or it is never delivered here.
        let event_idx = if u.arbitrary().unwrap_or(false) {
            devices::features::EVENT_IDX
        } else {
            0
        };
        let mut pair = Pair::take(
            NetLayout::SMALL,
            super::copy_route(data),
            nf::CSUM,
            nf::GUEST_CSUM | merge | event_idx,
        );
        let buffers = u.int_in_range(1..=4usize).unwrap_or(1);
        for i in 0..buffers {
            let len = u.int_in_range(12..=2048u32).unwrap_or(1600);
            pair.b.post_rx(i * 2048, len);
        }
        let len = u.int_in_range(0..=1600usize).unwrap_or(60);
        let mut frame: Vec<u8> = (0..len).map(|_| u.arbitrary().unwrap_or(0)).collect();
        let (destination, source) = addresses(&mut u);
        if frame.len() >= 12 {
            frame[..6].copy_from_slice(&destination);
            frame[6..12].copy_from_slice(&source);
        }
        // Any flags, DATA_VALID and RSC_INFO included: only NEEDS_CSUM may pass on.
        let mut header: [u8; 12] = u.arbitrary().unwrap_or([0; 12]);
        header[1] = 0; // no GSO is offered
        header[10] = 0;
        header[11] = 0;
        pair.a.send(header, &frame);
        let legal = (14..=1518).contains(&frame.len());
        let for_b = legal && source == MAC_A && (destination == MAC_B || destination[0] & 1 != 0);
        assert_eq!(
            pair.counted(0, |c| c.frames_tx),
            u64::from(legal),
            "tx of {} bytes",
            frame.len()
        );
        assert_eq!(pair.counted(0, |c| c.request_errors), u64::from(!legal));
        assert_eq!(
            pair.port_counted(0, |s| s.dropped_spoofed),
            u64::from(legal && source != MAC_A),
            "a frame from another source MAC is dropped and counted"
        );
        if for_b && pair.b.rx.used_idx() == 0 && pair.counted(1, |c| c.rx_dropped_too_big) == 0 {
            // Waiting for buffers: two big ones let it through, whole.
            assert_ne!(merge, 0, "only a merged frame waits with buffers posted");
            pair.b.post_rx(8 * 2048, 2048);
            pair.b.post_rx(9 * 2048, 2048);
        }
        let delivered = pair.b.rx.used_idx();
        if for_b && pair.counted(1, |c| c.rx_dropped_too_big) == 0 {
            assert!(delivered >= 1, "a legal frame is delivered or counted");
            let received = pair.b.received(0, delivered);
            assert_eq!(
                &received[12..],
                &frame[..],
                "delivered byte-exact, not truncated"
            );
            assert_eq!(
                received[0],
                header[0] & 1,
                "NEEDS_CSUM passed through, every other flag dropped"
            );
            // csum_start/csum_offset pass through; hdr_len/gso_size mean nothing without GSO.
            assert_eq!(
                &received[6..10],
                &header[6..10],
                "checksum fields passed through"
            );
            assert_eq!(&received[1..6], &[0; 5], "no GSO reported");
            let num_buffers = u16::from_le_bytes([received[10], received[11]]);
            assert_eq!(
                num_buffers, delivered,
                "num_buffers counts the buffers used"
            );
        } else {
            assert_eq!(delivered, 0, "nothing partial, nothing addressed elsewhere");
        }
        pair.finish();
    }
}

/// Destination and source MACs: mostly A to B; sometimes broadcast, multicast, an unknown
/// unicast address (no learning port here: dropped), A itself, or a spoofed source.
fn addresses(u: &mut Unstructured) -> ([u8; 6], [u8; 6]) {
    let unknown = [0x02, 0, 0, 0, 9, 9];
    let destination = match u.int_in_range(0..=7u8).unwrap_or(0) {
        0 => [0xff; 6],
        1 => [0x01, 0x00, 0x5e, 0, 0, 1],
        2 => unknown,
        3 => MAC_A,
        _ => MAC_B,
    };
    let source = match u.int_in_range(0..=7u8).unwrap_or(0) {
        0 => MAC_B,
        1 => unknown,
        _ => MAC_A,
    };
    (destination, source)
}
