//! The block and net data paths through the simulated Xen, the hypercalls and exits
//! they cost per request, and the devices' memory footprint.
//!
//! Frontends are hand-built rings (`stubvirt_tests::rings`). The simulation is
//! synchronous: a notification is served completely before the driver continues, so
//! "queue depth 32" means 32 requests made available together and announced with one
//! notification (what Linux's blk-mq does when it plugs a batch).

mod common;
mod gso_rig;

use criterion::Throughput;
use devices::backend::Backend;
use devices::backend::{DomainId, Frontends};
use devices::blk::backend::RamDisk;
use devices::blk::BlkOptions;
use devices::copy_route::CopyRoute;
use devices::grant::PAGE_SIZE;
use devices::ioreq::{self, Ioreq, IOREQ_TYPE_COPY, IOREQ_WRITE, STATE_IOREQ_READY};
use devices::memory::{AccessError, Barrier, GuestMemory, MapError, MapRequest, MappedPage};
use devices::mmio::reg;
use devices::net::NetOptions;
use devices::queue::{DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use stubvirt_tests::net_fixture::{RawNet, MAC_A, MAC_B, RX_AREA, TX_AREA};
use stubvirt_tests::rings::{Granted, RawDriver, RawQueue};
use stubvirt_tests::scenario::{self, Shared, FRONTEND, MAX_FRAME, NET_PORTS};
use stubvirt_tests::world::{self, GrantedMemory, HypercallStats, SimCopier};

/// Counts heap bytes live and allocations made, for the footprint table.
struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Set while the simulated Xen runs, whose allocations are not the backend's.
static PAUSED: AtomicBool = AtomicBool::new(false);

/// Runs `f` with the allocation count paused.
fn uncounted<R>(f: impl FnOnce() -> R) -> R {
    PAUSED.store(true, Ordering::Relaxed);
    let r = f();
    PAUSED.store(false, Ordering::Relaxed);
    r
}

/// The simulated Xen's memory with its allocations left out of the count.
struct UncountedMemory(GrantedMemory);

impl GuestMemory for UncountedMemory {
    type Rings = Self;

    fn rings(&self) -> &Self {
        self
    }

    fn rings_mut(&mut self) -> &mut Self {
        self
    }

    fn map_batch(&mut self, requests: &[MapRequest], results: &mut [Result<MappedPage, MapError>]) {
        uncounted(|| self.0.map_batch(requests, results))
    }
    fn unmap_batch(&mut self, pages: &[MappedPage]) -> usize {
        uncounted(|| self.0.unmap_batch(pages))
    }
    fn read(&self, page: MappedPage, offset: usize, dst: &mut [u8]) -> Result<(), AccessError> {
        uncounted(|| self.0.read(page, offset, dst))
    }
    fn write(&mut self, page: MappedPage, offset: usize, src: &[u8]) -> Result<(), AccessError> {
        uncounted(|| self.0.write(page, offset, src))
    }
    fn barrier(&self, kind: Barrier) {
        uncounted(|| self.0.barrier(kind))
    }
}

impl Frontends for UncountedMemory {
    type Memory = Self;

    fn memory(&mut self, domain: DomainId) -> Option<&mut Self> {
        (domain == self.0.frontend).then_some(self)
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        if !PAUSED.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const QUEUE_SIZE: u16 = 256;
const DISK_BYTES: u64 = 64 << 20;
/// Request buffers the streaming memcpy reference cycles through (the deepest queue).
const STREAM_SLOTS: usize = 32;
/// Linux's split of a large request: SIZE_MAX (4 KiB) segments, at most SEG_MAX (254)
/// per request, so 1 MiB becomes 1016 KiB + 8 KiB.
const SEG_MAX: usize = 254;
const MAX_CHAINS: usize = 64;
const HEADER_PAGE: usize = 0;
const STATUS_PAGE: usize = 1;
const TABLE_PAGE: usize = 2;
const DATA_PAGE: usize = TABLE_PAGE + MAX_CHAINS;

/// One block device with one hand-driven queue of 256 entries, EVENT_IDX and indirect.
struct BlkRig {
    machine: Shared,
    raw: RawDriver,
    queue: RawQueue,
    mem: Granted,
    irq: u32,
    /// used.idx the driver has reaped up to.
    reaped: u16,
    /// avail.idx at the last notification.
    notified_at: u16,
    interrupts_seen: u64,
}

/// A workload: request size, queue depth (in requests), read or write, random or
/// sequential, direct descriptors or indirect tables (Linux uses indirect).
#[derive(Clone, Copy)]
struct Workload {
    bytes: usize,
    depth: usize,
    kind: u32,
    random: bool,
    indirect: bool,
}

impl Workload {
    /// Chains per request: segments split as Linux would.
    fn chains(&self) -> Vec<usize> {
        let mut pages = self.bytes / PAGE_SIZE;
        let mut out = Vec::new();
        while pages > 0 {
            let n = pages.min(SEG_MAX);
            out.push(n);
            pages -= n;
        }
        out
    }

    fn name(&self) -> String {
        let size = if self.bytes >= 1 << 20 {
            format!("{}M", self.bytes >> 20)
        } else {
            format!("{}K", self.bytes >> 10)
        };
        format!(
            "{}{}_{}_qd{}{}",
            if self.random { "rand" } else { "seq" },
            if self.kind == T_IN { "read" } else { "write" },
            size,
            self.depth,
            if self.indirect { "" } else { "_direct" }
        )
    }
}

impl BlkRig {
    /// A rig whose request buffers are reached by grant copy (`copy`, the kernel's
    /// default) or mapped.
    fn new(data_bytes: usize, copy: bool) -> Self {
        let (machine, raw, queue) =
            stubvirt_tests::rings::hand_driven_disk(DISK_BYTES / 512, "bench", QUEUE_SIZE);
        let (_, irq) = scenario::window(0);
        let mem = Granted::new(FRONTEND, DATA_PAGE + data_bytes / PAGE_SIZE, false);
        if copy {
            machine.borrow_mut().frontends.copy_buffers(FRONTEND);
        }
        Self {
            machine,
            raw,
            queue,
            mem,
            irq,
            reaped: 0,
            notified_at: 0,
            interrupts_seen: 0,
        }
    }

    /// Lays out chain `slot` (header, `pages` data pages at `data_page`, status) and
    /// returns its head; direct chains use descriptors from `next_desc`.
    fn place(
        &mut self,
        slot: usize,
        (kind, sector): (u32, u64),
        (data_page, pages): (usize, usize),
        indirect: bool,
        next_desc: &mut u16,
    ) -> u16 {
        let mut header = [0u8; 16];
        header[..4].copy_from_slice(&kind.to_le_bytes());
        header[8..].copy_from_slice(&sector.to_le_bytes());
        self.mem.write(HEADER_PAGE * PAGE_SIZE + 16 * slot, &header);
        let data_flags = if kind == T_IN { DESC_F_WRITE } else { 0 };
        let mut descs = vec![(
            self.mem.dma(HEADER_PAGE * PAGE_SIZE + 16 * slot),
            16u32,
            0u16,
        )];
        for p in 0..pages {
            descs.push((
                self.mem.dma((data_page + p) * PAGE_SIZE),
                PAGE_SIZE as u32,
                data_flags,
            ));
        }
        descs.push((
            self.mem.dma(STATUS_PAGE * PAGE_SIZE + slot),
            1,
            DESC_F_WRITE,
        ));
        let count = descs.len();
        let head = *next_desc;
        if indirect {
            let mut table = Vec::with_capacity(16 * count);
            for (k, &(addr, len, flags)) in descs.iter().enumerate() {
                let last = k + 1 == count;
                table.extend_from_slice(&addr.to_le_bytes());
                table.extend_from_slice(&len.to_le_bytes());
                table.extend_from_slice(
                    &(if last { flags } else { flags | DESC_F_NEXT }).to_le_bytes(),
                );
                table.extend_from_slice(&(if last { 0u16 } else { k as u16 + 1 }).to_le_bytes());
            }
            let at = (TABLE_PAGE + slot) * PAGE_SIZE;
            self.mem.write(at, &table);
            self.queue.set_desc(
                head,
                self.mem.dma(at),
                table.len() as u32,
                DESC_F_INDIRECT,
                0,
            );
            *next_desc += 1;
        } else {
            for (k, &(addr, len, flags)) in descs.iter().enumerate() {
                let last = k + 1 == count;
                let index = head + k as u16;
                self.queue.set_desc(
                    index,
                    addr,
                    len,
                    if last { flags } else { flags | DESC_F_NEXT },
                    index + 1,
                );
            }
            *next_desc += count as u16;
        }
        head
    }

    /// One batch of `workload.depth` requests: place, notify if EVENT_IDX asks for it,
    /// reap; an interrupt costs the driver INTERRUPT_STATUS read + INTERRUPT_ACK write.
    /// Returns the time spent in exits (the backend's work, and all of it: the
    /// simulation serves a notification completely inside the trap); the driver's ring
    /// writes are left out.
    fn round(&mut self, workload: &Workload, position: &mut u64) -> Duration {
        let chains = workload.chains();
        let mut next_desc = 0u16;
        let mut slot = 0;
        let request_sectors = (workload.bytes / 512) as u64;
        let disk_requests = DISK_BYTES / workload.bytes as u64;
        for r in 0..workload.depth {
            let first_sector = if workload.random {
                // A multiplicative hash of the position: spread, deterministic.
                (position.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20) % disk_requests
                    * request_sectors
            } else {
                *position % disk_requests * request_sectors
            };
            *position += 1;
            let mut sector = first_sector;
            let mut data_page = DATA_PAGE + r * workload.bytes / PAGE_SIZE;
            for &pages in &chains {
                let head = self.place(
                    slot,
                    (workload.kind, sector),
                    (data_page, pages),
                    workload.indirect,
                    &mut next_desc,
                );
                self.queue.push(head);
                slot += 1;
                sector += (pages * PAGE_SIZE / 512) as u64;
                data_page += pages;
            }
        }
        let new = self.queue_avail_idx();
        let event = self.queue.avail_event();
        // vring_need_event(avail_event, new, old)
        let start = Instant::now();
        if new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(self.notified_at) {
            self.raw.notify(0);
        }
        let mut in_exits = start.elapsed();
        self.notified_at = new;
        let used = self.queue.used_idx();
        assert_eq!(used, new, "every request completed");
        self.reaped = used;
        // Ask for an interrupt at the next completion (Linux: used_event = last seen).
        self.queue.set_used_event(used);
        let interrupts = self.machine.borrow().interrupts_for(FRONTEND, self.irq);
        if interrupts != self.interrupts_seen {
            self.interrupts_seen = interrupts;
            let start = Instant::now();
            let status = self.raw.read(reg::INTERRUPT_STATUS);
            self.raw.write(reg::INTERRUPT_ACK, status);
            in_exits += start.elapsed();
        }
        in_exits
    }

    fn queue_avail_idx(&self) -> u16 {
        self.queue.avail.read_u16(2)
    }

    fn check_status(&self, chains: usize) {
        for slot in 0..chains {
            assert_eq!(
                self.mem.read(STATUS_PAGE * PAGE_SIZE + slot, 1)[0],
                0,
                "request {slot} OK"
            );
        }
    }
}

impl Drop for BlkRig {
    fn drop(&mut self) {
        self.raw.write(reg::STATUS, 0);
    }
}

/// What one request costs in hypercalls, exits and interrupts, over `rounds` batches.
struct PerRequest {
    map_batches: f64,
    unmap_batches: f64,
    pages_mapped: f64,
    copy_calls: f64,
    pages_copied: f64,
    exits: f64,
    interrupts: f64,
}

/// Counts `workload` with request buffers mapped, or copied (`copy`: the kernel's
/// default route; rings and indirect tables are still mapped).
fn count(workload: &Workload, rounds: u64, copy: bool) -> PerRequest {
    let mut rig = BlkRig::new(workload.depth * workload.bytes, copy);
    let mut position = 0;
    let _ = rig.round(workload, &mut position); // warm: first notification, first interrupt
    let stats_before: HypercallStats = world::with(|w| w.stats);
    let exits_before = rig.machine.borrow().ioreq_stats.ioreqs;
    let irq_before = rig.machine.borrow().interrupts_for(FRONTEND, rig.irq);
    for _ in 0..rounds {
        let _ = rig.round(workload, &mut position);
    }
    rig.check_status(workload.depth * workload.chains().len());
    let stats = world::with(|w| w.stats);
    let requests = (rounds as usize * workload.depth) as f64;
    let m = rig.machine.borrow();
    PerRequest {
        map_batches: (stats.map_batches - stats_before.map_batches) as f64 / requests,
        unmap_batches: (stats.unmap_batches - stats_before.unmap_batches) as f64 / requests,
        pages_mapped: (stats.map_entries - stats_before.map_entries) as f64 / requests,
        copy_calls: (stats.copy_calls - stats_before.copy_calls) as f64 / requests,
        pages_copied: (stats.copies - stats_before.copies) as f64 / requests,
        exits: (m.ioreq_stats.ioreqs - exits_before) as f64 / requests,
        interrupts: (m.interrupts_for(FRONTEND, rig.irq) - irq_before) as f64 / requests,
    }
}

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

/// The bench id of `workload` over the copy route (the kernel's default) or mapped.
fn route_name(workload: &Workload, copy: bool) -> String {
    format!(
        "{}_{}",
        workload.name(),
        if copy { "copy" } else { "mapped" }
    )
}

fn blk_workloads() -> Vec<Workload> {
    let mut out = Vec::new();
    for depth in [1, 32] {
        for kind in [T_IN, T_OUT] {
            out.push(Workload {
                bytes: 4096,
                depth,
                kind,
                random: true,
                indirect: true,
            });
        }
        for bytes in [64 << 10, 1 << 20] {
            for kind in [T_IN, T_OUT] {
                out.push(Workload {
                    bytes,
                    depth,
                    kind,
                    random: false,
                    indirect: true,
                });
            }
        }
    }
    out
}

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

fn main() {
    let mut criterion = common::criterion();

    // Block data path, plus memcpy of the same sizes.
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

    // Net: A -> switch -> B, 8 frames per notification.
    const FRAMES: u16 = 8;
    let mut group = criterion.benchmark_group("net");
    let net_sizes = [64usize, 1514];
    for len in net_sizes {
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
    criterion.final_summary();

    // Tables.
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

    let mut rows = Vec::new();
    let mut counted = blk_workloads();
    counted.push(Workload {
        bytes: 4096,
        depth: 1,
        kind: T_IN,
        random: true,
        indirect: false,
    });
    counted.push(Workload {
        bytes: 4096,
        depth: 32,
        kind: T_IN,
        random: true,
        indirect: false,
    });
    counted.push(Workload {
        bytes: 64 << 10,
        depth: 1,
        kind: T_IN,
        random: false,
        indirect: false,
    });
    counted.push(Workload {
        bytes: 64 << 10,
        depth: 8,
        kind: T_IN,
        random: false,
        indirect: false,
    });
    let mut copied_rows = Vec::new();
    for workload in counted {
        let copied = count(&workload, 20, true);
        copied_rows.push(vec![
            workload.name(),
            format!("{:.3}", copied.map_batches),
            format!("{:.3}", copied.unmap_batches),
            format!("{:.1}", copied.pages_mapped),
            format!("{:.3}", copied.copy_calls),
            format!("{:.1}", copied.pages_copied),
        ]);
        let per = count(&workload, 20, false);
        let chains = workload.chains().len();
        rows.push(vec![
            workload.name(),
            format!("{chains}"),
            format!("{:.3}", per.map_batches),
            format!("{:.3}", per.unmap_batches),
            format!("{:.1}", per.pages_mapped),
            format!("{:.3}", per.exits),
            format!("{:.3}", per.interrupts),
        ]);
    }
    common::print_table(
        "blk-exits",
        "Hypercalls and exits per request (simulated Xen counts; EVENT_IDX on)",
        &[
            "workload",
            "chains/request",
            "map batches",
            "unmap batches",
            "pages mapped",
            "ioreq exits",
            "interrupts",
        ],
        &rows,
    );
    common::print_table(
        "blk-exits-copy",
        "The same with request buffers by GNTTABOP_copy (the kernel's default; exits and interrupts unchanged)",
        &[
            "workload",
            "map batches",
            "unmap batches",
            "pages mapped",
            "copy hypercalls",
            "page pieces copied",
        ],
        &copied_rows,
    );

    let mut rows = Vec::new();
    for len in net_sizes {
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

    footprint();
}

/// Heap allocated by building a backend with one RAM disk and one net device, and by a
/// frontend's copy route, the structs' own sizes, and allocations made while serving
/// I/O. (The images' sizes are `cargo xtask bench`'s own table, from a fresh build.)
fn footprint() {
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let mut backend = Backend::new(NET_PORTS, MAX_FRAME);
    let after_backend = LIVE_BYTES.load(Ordering::Relaxed);
    let disk = Box::new(RamDisk::new(1, "tiny"));
    let with_disk = LIVE_BYTES.load(Ordering::Relaxed);
    backend.add_blk(FRONTEND, 0x0200_0000, 33, disk, BlkOptions::default());
    let after_blk = LIVE_BYTES.load(Ordering::Relaxed);
    let _ = backend.add_net(
        FRONTEND,
        0x0200_0200,
        34,
        NetOptions {
            mac: MAC_A,
            mtu: 1500,
        },
    );
    let after_net = LIVE_BYTES.load(Ordering::Relaxed);
    let devices_heap = (after_blk - with_disk) + (after_net - after_blk);
    // The kernel's default route, one per frontend: its token table and the scratch of
    // the pages passed through, for as many buffer pages as may be outstanding at once
    // (`MAX_COPIED_PAGES`). The memory and copier it wraps are handles that allocate
    // nothing, so this is the kernel's figure too.
    let before_route = LIVE_BYTES.load(Ordering::Relaxed);
    let route = CopyRoute::new(
        GrantedMemory { frontend: FRONTEND },
        SimCopier { frontend: FRONTEND },
    );
    let copy_route_heap = LIVE_BYTES.load(Ordering::Relaxed) - before_route;
    drop(route);
    let total = (after_backend - before) + devices_heap + std::mem::size_of::<Backend>();
    drop(backend);

    // Allocations while serving a warm QD32 batch of 4 KiB reads: the notification and
    // the backend's loop, with the simulated Xen's own bookkeeping (its grant and
    // mapping maps allocate) left out by pausing the count inside guest-memory calls.
    let workload = Workload {
        bytes: 4096,
        depth: 32,
        kind: T_IN,
        random: true,
        indirect: true,
    };
    let mut rig = BlkRig::new(workload.depth * workload.bytes, false);
    let mut position = 0;
    let _ = rig.round(&workload, &mut position);
    let mut next_desc = 0;
    for slot in 0..32 {
        let head = rig.place(
            slot,
            (T_IN, slot as u64 * 8),
            (DATA_PAGE + slot, 1),
            true,
            &mut next_desc,
        );
        rig.queue.push(head);
    }
    let (base, _) = scenario::window(0);
    let notify = Ioreq {
        addr: base + reg::QUEUE_NOTIFY,
        data: 0,
        count: 1,
        size: 4,
        state: STATE_IOREQ_READY,
        data_is_ptr: false,
        dir: IOREQ_WRITE,
        df: false,
        kind: IOREQ_TYPE_COPY,
    };
    let mut frontends = UncountedMemory(GrantedMemory { frontend: FRONTEND });
    let io_allocations = {
        let mut m = rig.machine.borrow_mut();
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let _ = ioreq::serve(&mut m.backend, &mut frontends, FRONTEND, &notify);
        while m.backend.run(&mut frontends, 0, &mut |_| true) {}
        ALLOCATIONS.load(Ordering::Relaxed) - before
    };
    let served = rig.queue.used_idx().wrapping_sub(rig.reaped);
    assert_eq!(served, 32, "the batch was served");
    rig.reaped = rig.queue.used_idx();

    let rows = vec![
        vec![
            "Backend (switch: 4 ports, 264 frames of 1518 B and 8 GSO frames of 65550 B), heap"
                .into(),
            format!("{}", after_backend - before),
        ],
        vec![
            "virtio-blk device (RAM disk storage excluded), heap".into(),
            format!("{}", after_blk - with_disk),
        ],
        vec![
            "virtio-net device, heap".into(),
            format!("{}", after_net - after_blk),
        ],
        vec![
            "size_of::<ChainBatch>() (per-device batch scratch, inside the device heap above)"
                .into(),
            format!(
                "{}",
                std::mem::size_of::<devices::queue::chain::ChainBatch>()
            ),
        ],
        vec![
            "size_of::<blk::Gather>() (per blk device: a batch's gathered data copies, inside the device heap above)"
                .into(),
            format!("{}", std::mem::size_of::<devices::blk::Gather>()),
        ],
        vec![
            "CopyRoute per frontend (the kernel's default route: token table and scratch), heap"
                .into(),
            format!("{copy_route_heap}"),
        ],
        vec![
            "size_of::<Backend>()".into(),
            format!("{}", std::mem::size_of::<Backend>()),
        ],
        vec![
            "total at construction (two devices, idle)".into(),
            format!("{total}"),
        ],
        vec![
            "heap allocations by the backend serving 32 x 4 KiB reads (simulated Xen excluded)"
                .into(),
            format!("{io_allocations}"),
        ],
    ];
    common::print_table("footprint", "Footprint (bytes)", &["what", "bytes"], &rows);
    let _ = Duration::ZERO;
}
