//! The block data path's throughput over the copy and mapped routes, beside memcpy of
//! the same sizes (cache-hot, over the disk's footprint, page by page), and its table.

use crate::blk_rig::{BlkRig, DISK_BYTES};
use crate::common;
use crate::workload::{blk_workloads, route_name, T_IN};
use criterion::{Criterion, Throughput};
use devices::grant::PAGE_SIZE;
use std::hint::black_box;

/// Request buffers the streaming memcpy reference cycles through (the deepest queue).
const STREAM_SLOTS: usize = 32;

/// memcpy MB/s of one size: cache-hot, and over the disk's footprint each way, whole
/// and page by page.
struct MemcpyRates {
    bytes: usize,
    hot: Option<f64>,
    from_disk: Option<f64>,
    to_disk: Option<f64>,
    pages_from_disk: Option<f64>,
    pages_to_disk: Option<f64>,
}

/// The "blk" group: every workload over both routes, then the memcpy references.
pub fn bench(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("blk");
    for workload in blk_workloads() {
        for copy in [true, false] {
            let per_round = (workload.depth * workload.bytes) as u64;
            group.throughput(Throughput::Bytes(per_round));
            let mut rig = BlkRig::new(workload.depth * workload.bytes, copy);
            let mut position = 0;
            let _ = rig.round(&workload, &mut position);
            rig.check_status(workload.depth * workload.chains().len());
            group.bench_function(route_name(&workload, copy), |b| {
                b.iter_custom(|rounds| {
                    (0..rounds)
                        .map(|_| rig.round(&workload, &mut position))
                        .sum()
                })
            });
        }
    }
    for bytes in [4096usize, 64 << 10, 1 << 20] {
        group.throughput(Throughput::Bytes(bytes as u64));
        let src = vec![0x5au8; bytes];
        let mut dst = vec![0u8; bytes];
        group.bench_function(format!("memcpy_{}K", bytes >> 10), |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&src));
                black_box(&dst);
            })
        });
        // The same copies over the data path's memory footprint: sequential blocks of
        // the 64 MiB disk into 32 request buffers in turn (QD 32), out of cache as the
        // RAM disk's are. The floor for a storage copy, where the hot copy above is not.
        // Reads copy disk -> buffers, writes buffers -> disk.
        // The page-by-page variant copies each 4 KiB page by itself, as a grant copy
        // moves at most one page per operation: the floor for a grant-based backend.
        let mut disk = vec![0x5au8; DISK_BYTES as usize];
        let mut buffers = vec![0u8; STREAM_SLOTS * bytes];
        for (to_disk, by_page) in [(false, false), (true, false), (false, true), (true, true)] {
            let (mut at, mut slot) = (0usize, 0usize);
            let name = match (to_disk, by_page) {
                (false, false) => "memcpy_stream",
                (true, false) => "memcpy_stream_w",
                (false, true) => "memcpy_pages",
                (true, true) => "memcpy_pages_w",
            };
            let piece = if by_page { PAGE_SIZE } else { bytes };
            group.bench_function(format!("{name}_{}K", bytes >> 10), |b| {
                b.iter(|| {
                    let buffer = slot * bytes;
                    for done in (0..bytes).step_by(piece) {
                        let (disk_at, buffer_at) = (at + done, buffer + done);
                        if to_disk {
                            disk[disk_at..disk_at + piece]
                                .copy_from_slice(&buffers[buffer_at..buffer_at + piece]);
                        } else {
                            buffers[buffer_at..buffer_at + piece]
                                .copy_from_slice(&disk[disk_at..disk_at + piece]);
                        }
                        black_box((&disk, &buffers));
                    }
                    at = (at + bytes) % DISK_BYTES as usize;
                    slot = (slot + 1) % STREAM_SLOTS;
                })
            });
        }
    }
    group.finish();
}

/// The "blk" table, from the medians of the "blk" group.
pub fn table() {
    let memcpy_mbs = |name: &str, bytes: usize| {
        common::median_ns("blk", &format!("{name}_{}K", bytes >> 10))
            .map(|ns| bytes as f64 * 1e3 / ns)
    };
    let memcpy: Vec<MemcpyRates> = [4096usize, 64 << 10, 1 << 20]
        .iter()
        .map(|&bytes| MemcpyRates {
            bytes,
            hot: memcpy_mbs("memcpy", bytes),
            from_disk: memcpy_mbs("memcpy_stream", bytes),
            to_disk: memcpy_mbs("memcpy_stream_w", bytes),
            pages_from_disk: memcpy_mbs("memcpy_pages", bytes),
            pages_to_disk: memcpy_mbs("memcpy_pages_w", bytes),
        })
        .collect();
    let mut rows = Vec::new();
    for workload in blk_workloads() {
        let per_round = (workload.depth * workload.bytes) as f64;
        let rate = |copy: bool| {
            common::median_ns("blk", &route_name(&workload, copy))
                .map(|ns| (per_round * 1e3 / ns, workload.depth as f64 * 1e9 / ns))
        };
        let (copied, mapped) = (rate(true), rate(false));
        let mbs = copied.map(|(mbs, _)| mbs);
        let mapped_mbs = mapped.map(|(mbs, _)| mbs);
        let iops = copied.map(|(_, iops)| iops);
        let (hot, stream, by_page) =
            memcpy
                .iter()
                .find(|m| m.bytes == workload.bytes)
                .map_or((None, None, None), |m| {
                    if workload.kind == T_IN {
                        (m.hot, m.from_disk, m.pages_from_disk)
                    } else {
                        (m.hot, m.to_disk, m.pages_to_disk)
                    }
                });
        let share = |route: Option<f64>, copy: Option<f64>| match (route, copy) {
            (Some(a), Some(c)) => format!("{:.0}%", 100.0 * a / c),
            _ => "-".into(),
        };
        let mb = |m: Option<f64>| m.map_or("-".into(), |m| format!("{m:.0}"));
        rows.push(vec![
            workload.name(),
            iops.map_or("-".into(), common::si),
            mb(mbs),
            mb(mapped_mbs),
            mb(hot),
            mb(stream),
            mb(by_page),
            format!(
                "{} / {} / {}",
                share(mbs, hot),
                share(mbs, stream),
                share(mbs, by_page)
            ),
            format!(
                "{} / {} / {}",
                share(mapped_mbs, hot),
                share(mapped_mbs, stream),
                share(mapped_mbs, by_page)
            ),
        ]);
    }
    common::print_table(
        "blk",
        "Block data path through the simulated grant path (RAM disk; 1 MiB = 254 + 2 segment requests; copy route = kernel default)",
        &[
            "workload",
            "IOPS (copy)",
            "MB/s copy route",
            "MB/s mapped route",
            "memcpy MB/s cache-hot",
            "memcpy MB/s disk footprint (same direction)",
            "the same page by page",
            "copy route of hot / footprint / page by page",
            "mapped route of hot / footprint / page by page",
        ],
        &rows,
    );
}
