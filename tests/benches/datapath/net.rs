//! The net data path: frames from A through the switch to B (plain frames, and 64 KiB
//! GSO frames to each kind of receiver), and its table.

use crate::common;
use crate::gso_rig;
use criterion::{Criterion, Throughput};
use devices::queue::{DESC_F_NEXT, DESC_F_WRITE};
use std::time::Instant;
use stubvirt_tests::net_fixture::{RawNet, MAC_A, MAC_B, RX_AREA, TX_AREA};

/// Frames A sends per notification.
const FRAMES: u16 = 8;
/// The plain frames' lengths.
const NET_SIZES: [usize; 2] = [64, 1514];

fn net_round(a: &mut RawNet, b: &mut RawNet, frame: &[u8], frames: u16) {
    // B posts one 2 KiB rx buffer per frame, A sends the frames, each a
    // header + frame chain; one notification each side.
    let rx_base = b.rx.used_idx();
    for k in 0..frames {
        let index = b.posted % 16;
        b.rx.set_desc(
            index,
            b.mem.dma(RX_AREA + 2048 * usize::from(index % 16)),
            2048,
            DESC_F_WRITE,
            0,
        );
        b.rx.push(index);
        b.posted = b.posted.wrapping_add(1);
        let _ = k;
    }
    b.raw.notify(0);
    for j in 0..frames {
        let at = TX_AREA + 4096 * usize::from(j);
        a.mem.write(at + 64, frame);
        a.tx.set_desc(2 * j, a.mem.dma(at), 12, DESC_F_NEXT, 2 * j + 1);
        a.tx.set_desc(2 * j + 1, a.mem.dma(at + 64), frame.len() as u32, 0, 0);
        a.tx.push(2 * j);
    }
    a.raw.notify(1);
    let received = b.rx.used_idx().wrapping_sub(rx_base);
    assert_eq!(received, frames, "every frame delivered");
}

fn ethernet_frame(len: usize) -> Vec<u8> {
    let mut frame = vec![0u8; len];
    frame[..6].copy_from_slice(&MAC_B);
    frame[6..12].copy_from_slice(&MAC_A);
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    frame
}

/// The "net" group; returns the length of the GSO frames sent, for the table.
pub fn bench(criterion: &mut Criterion) -> usize {
    let mut group = criterion.benchmark_group("net");
    for len in NET_SIZES {
        group.throughput(Throughput::Elements(u64::from(FRAMES)));
        let (_machine, mut a, mut b) = RawNet::pair(0, 0);
        let frame = ethernet_frame(len);
        net_round(&mut a, &mut b, &frame, FRAMES);
        group.bench_function(format!("frame_{len}"), |bench| {
            bench.iter_custom(|rounds| {
                let start = Instant::now();
                for _ in 0..rounds {
                    net_round(&mut a, &mut b, &frame, FRAMES);
                }
                start.elapsed()
            })
        });
        drop((a, b));
    }
    let mut gso_frame_len = 0;
    for receiver in gso_rig::RECEIVERS {
        group.throughput(Throughput::Elements(u64::from(gso_rig::FRAMES)));
        let mut rig = gso_rig::GsoRig::new(receiver);
        gso_frame_len = rig.frame_len();
        rig.round();
        group.bench_function(receiver.name, |bench| {
            bench.iter_custom(|rounds| {
                let start = Instant::now();
                for _ in 0..rounds {
                    rig.round();
                }
                start.elapsed()
            })
        });
    }
    group.finish();
    gso_frame_len
}

/// The "net" table, from the medians of the "net" group.
pub fn table(gso_frame_len: usize) {
    let mut rows = Vec::new();
    for len in NET_SIZES {
        let ns = common::median_ns("net", &format!("frame_{len}"));
        let fps = ns.map(|ns| f64::from(FRAMES) * 1e9 / ns);
        rows.push(vec![
            format!("{len} B"),
            fps.map_or("-".into(), common::si),
            fps.map_or("-".into(), |f| format!("{:.2}", f * len as f64 * 8.0 / 1e9)),
        ]);
    }
    let gso_rows = [
        "64 KiB GSO, receiver with GUEST_TSO4 (passed whole, MRG_RXBUF 4 KiB buffers)",
        "64 KiB GSO, receiver without TSO (46 segments, partial checksums: GUEST_CSUM)",
        "64 KiB GSO, receiver without TSO or GUEST_CSUM (46 segments, checksums completed)",
    ];
    for (receiver, label) in gso_rig::RECEIVERS.iter().zip(gso_rows) {
        let ns = common::median_ns("net", receiver.name);
        let fps = ns.map(|ns| f64::from(gso_rig::FRAMES) * 1e9 / ns);
        rows.push(vec![
            label.into(),
            fps.map_or("-".into(), common::si),
            fps.map_or("-".into(), |f| {
                format!("{:.2}", f * gso_frame_len as f64 * 8.0 / 1e9)
            }),
        ]);
    }
    common::print_table(
        "net",
        &format!(
            "Net: frames through the switch between two simulated frontends ({FRAMES} frames per notification; 64 KiB GSO frames of {gso_frame_len} bytes {} per notification)",
            gso_rig::FRAMES
        ),
        &["frame", "frames/s", "Gbit/s"],
        &rows,
    );
}
