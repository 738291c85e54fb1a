//! Queue processing: stubvirt's split queue against rust-vmm's `virtio-queue`, over
//! identical ring contents, in the same process.
//!
//! Per chain both sides: pop the head from the avail ring, walk every descriptor
//! (following an indirect table where there is one), make each buffer addressable
//! (stubvirt: one grant map batch per pass for all chains' pages, unmapped before the
//! used entries are published; rust-vmm: `get_slice` address translation of each
//! descriptor over `GuestMemoryMmap`), read the 16-byte request header when there is a
//! readable part, write one status byte at the end of the writable part, add a used
//! entry. Per pass both publish used.idx, decide about the interrupt with EVENT_IDX and
//! re-arm avail_event. The driver's side (filling the avail ring) is outside the timing.
//!
//! Both queues are generic over their guest memory and are compiled here for one concrete
//! in-memory type each. The kernel compiles stubvirt's for `BufferRoute`, the enum of its
//! two buffer routes; the second stubvirt column holds the same memory in that enum, so
//! it shows what the route dispatch costs.

mod common;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Throughput};
use devices::buffer_route::BufferRoute;
use devices::copy_route::{GrantCopier, GrantPiece};
use devices::counters::Counters;
use devices::grant::{GrantAddress, GrantRef, PAGE_SIZE};
use devices::memory::{
    Access, AccessError, Barrier, DescriptorWords, GuestMemory, MapError, MapRequest, MappedPage,
};
use devices::queue::chain::ChainBatch;
use devices::queue::completion::{Completion, LastByte};
use devices::queue::serve::serve_pass;
use devices::queue::{QueueConfig, SplitQueue, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE};
use std::hint::black_box;
use std::time::{Duration, Instant};
use stubvirt_tests::rings::Granted;
use stubvirt_tests::world::{self, GrantedMemory};
use virtio_queue::{Queue, QueueOwnedT as _, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend as _, GuestMemoryMmap};

const QUEUE_SIZE: u16 = 256;
const DESC_PAGE: usize = 0;
const AVAIL_PAGE: usize = 1;
const USED_PAGE: usize = 2;
const HEADER_PAGE: usize = 3;
const STATUS_PAGE: usize = 4;
const INDIRECT_PAGE: usize = 5;
const MAX_CHAINS: usize = 64;
const DATA_PAGE: usize = INDIRECT_PAGE + MAX_CHAINS;
const MAX_DATA_SEGMENTS: usize = 16;
const TOTAL_PAGES: usize = DATA_PAGE + MAX_CHAINS * MAX_DATA_SEGMENTS;

/// A chain shape: how many 4 KiB data segments, with or without the blk header and
/// status descriptors, direct or through an indirect table.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    data_segments: usize,
    blk: bool,
    indirect: bool,
}

const SHAPES: [Shape; 5] = [
    Shape {
        name: "1desc",
        data_segments: 1,
        blk: false,
        indirect: false,
    },
    Shape {
        name: "blk_3desc",
        data_segments: 1,
        blk: true,
        indirect: false,
    },
    Shape {
        name: "blk_16seg",
        data_segments: 16,
        blk: true,
        indirect: false,
    },
    Shape {
        name: "blk_3desc_indirect",
        data_segments: 1,
        blk: true,
        indirect: true,
    },
    Shape {
        name: "blk_16seg_indirect",
        data_segments: 16,
        blk: true,
        indirect: true,
    },
];

impl Shape {
    fn descriptors(&self) -> usize {
        self.data_segments + if self.blk { 2 } else { 0 }
    }

    /// Chains made available per pass: as many as the descriptor table holds, at most 64.
    fn chains(&self) -> usize {
        if self.indirect {
            MAX_CHAINS
        } else {
            MAX_CHAINS.min(usize::from(QUEUE_SIZE) / self.descriptors())
        }
    }

    /// The descriptors of chain `i`: (page, offset, len, flags) with NEXT left to the layout.
    fn chain(&self, i: usize) -> Vec<(usize, usize, u32, u16)> {
        let mut descs = Vec::new();
        if self.blk {
            descs.push((HEADER_PAGE, 16 * i, 16, 0));
        }
        for s in 0..self.data_segments {
            descs.push((
                DATA_PAGE + i * MAX_DATA_SEGMENTS + s,
                0,
                PAGE_SIZE as u32,
                DESC_F_WRITE,
            ));
        }
        if self.blk {
            descs.push((STATUS_PAGE, i, 1, DESC_F_WRITE));
        }
        descs
    }
}

fn desc_bytes(addr: u64, len: u32, flags: u16, next: u16) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&addr.to_le_bytes());
    b[8..12].copy_from_slice(&len.to_le_bytes());
    b[12..14].copy_from_slice(&flags.to_le_bytes());
    b[14..].copy_from_slice(&next.to_le_bytes());
    b
}

/// The driver's side of one memory: how to name a byte and how to write bytes.
trait DriverView {
    fn addr(&self, page: usize, offset: usize) -> u64;
    fn put(&mut self, page: usize, offset: usize, bytes: &[u8]);
}

/// Lays out the descriptor table (and indirect tables); returns the chains' heads.
fn lay_out(view: &mut dyn DriverView, shape: Shape) -> Vec<u16> {
    let mut heads = Vec::new();
    let mut next_free = 0usize;
    for i in 0..shape.chains() {
        let descs = shape.chain(i);
        let count = descs.len();
        let (table_page, first) = if shape.indirect {
            let head = next_free as u16;
            let table = desc_bytes(
                view.addr(INDIRECT_PAGE + i, 0),
                16 * count as u32,
                DESC_F_INDIRECT,
                0,
            );
            view.put(DESC_PAGE, 16 * next_free, &table);
            next_free += 1;
            heads.push(head);
            (INDIRECT_PAGE + i, 0)
        } else {
            heads.push(next_free as u16);
            let first = next_free;
            next_free += count;
            (DESC_PAGE, first)
        };
        for (k, &(page, offset, len, flags)) in descs.iter().enumerate() {
            let last = k + 1 == count;
            let flags = if last { flags } else { flags | DESC_F_NEXT };
            let next = if last { 0 } else { (first + k + 1) as u16 };
            let bytes = desc_bytes(view.addr(page, offset), len, flags, next);
            view.put(table_page, 16 * (first + k), &bytes);
        }
    }
    heads
}

/// Makes every chain available once more and publishes avail.idx.
fn make_available(view: &mut dyn DriverView, heads: &[u16], avail_idx: &mut u16) {
    for &head in heads {
        let slot = usize::from(*avail_idx % QUEUE_SIZE);
        view.put(AVAIL_PAGE, 4 + 2 * slot, &head.to_le_bytes());
        *avail_idx = avail_idx.wrapping_add(1);
    }
    view.put(AVAIL_PAGE, 2, &avail_idx.to_le_bytes());
}

/// Guest memory that costs nothing beyond the copies: grant `n` is page `n` of one
/// buffer, mapping hands out the grant as the token. The floor of stubvirt's own costs.
struct FastMemory {
    bytes: Vec<u8>,
}

impl FastMemory {
    fn page(
        &self,
        page: MappedPage,
        offset: usize,
        len: usize,
    ) -> Result<std::ops::Range<usize>, AccessError> {
        if offset + len > PAGE_SIZE {
            return Err(AccessError::OutOfPage);
        }
        let start = page.token as usize * PAGE_SIZE + offset;
        Ok(start..start + len)
    }
}

impl GuestMemory for FastMemory {
    type Rings = Self;

    fn rings(&self) -> &Self {
        self
    }

    fn rings_mut(&mut self) -> &mut Self {
        self
    }

    fn map_batch(&mut self, requests: &[MapRequest], results: &mut [Result<MappedPage, MapError>]) {
        for (request, result) in requests.iter().zip(results.iter_mut()) {
            *result = if (request.gref.0 as usize) < TOTAL_PAGES {
                Ok(MappedPage {
                    token: u64::from(request.gref.0),
                    access: request.access,
                })
            } else {
                Err(MapError::BadGrantRef)
            };
        }
    }

    fn unmap_batch(&mut self, _pages: &[MappedPage]) -> usize {
        0
    }

    fn read(&self, page: MappedPage, offset: usize, dst: &mut [u8]) -> Result<(), AccessError> {
        let range = self.page(page, offset, dst.len())?;
        dst.copy_from_slice(&self.bytes[range]);
        Ok(())
    }

    fn write(&mut self, page: MappedPage, offset: usize, src: &[u8]) -> Result<(), AccessError> {
        if page.access == Access::ReadOnly {
            return Err(AccessError::ReadOnly);
        }
        let range = self.page(page, offset, src.len())?;
        self.bytes[range].copy_from_slice(src);
        Ok(())
    }

    fn read_descriptor(
        &self,
        page: MappedPage,
        offset: usize,
    ) -> Result<DescriptorWords, AccessError> {
        let range = self.page(page, offset, 16)?;
        let word = |at: usize| {
            self.bytes
                .get(at..at + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_le_bytes)
                .ok_or(AccessError::OutOfPage)
        };
        Ok([word(range.start)?, word(range.start + 8)?])
    }

    // One access per ring field, as the kernel's implementation does.
    fn read_u16(&self, page: MappedPage, offset: usize) -> Result<u16, AccessError> {
        let range = self.page(page, offset, 2)?;
        match self.bytes.get(range) {
            Some(&[lo, hi]) => Ok(u16::from_le_bytes([lo, hi])),
            _ => Err(AccessError::OutOfPage),
        }
    }

    fn write_u16(
        &mut self,
        page: MappedPage,
        offset: usize,
        value: u16,
    ) -> Result<(), AccessError> {
        if page.access == Access::ReadOnly {
            return Err(AccessError::ReadOnly);
        }
        let range = self.page(page, offset, 2)?;
        self.bytes[range].copy_from_slice(&value.to_le_bytes());
        Ok(())
    }

    fn barrier(&self, kind: Barrier) {
        let order = match kind {
            Barrier::Acquire => std::sync::atomic::Ordering::Acquire,
            Barrier::Release => std::sync::atomic::Ordering::Release,
            Barrier::Full => std::sync::atomic::Ordering::SeqCst,
        };
        std::sync::atomic::fence(order);
    }
}

impl DriverView for FastMemory {
    fn addr(&self, page: usize, offset: usize) -> u64 {
        GrantAddress::encode(GrantRef(page as u32), offset as u16)
    }
    fn put(&mut self, page: usize, offset: usize, bytes: &[u8]) {
        let start = page * PAGE_SIZE + offset;
        self.bytes[start..start + bytes.len()].copy_from_slice(bytes);
    }
}

/// The simulated Xen's frontend pages, granted to the backend.
struct SimDriver {
    pages: Granted,
}

impl DriverView for SimDriver {
    fn addr(&self, page: usize, offset: usize) -> u64 {
        self.pages.dma(page * PAGE_SIZE + offset)
    }
    fn put(&mut self, page: usize, offset: usize, bytes: &[u8]) {
        self.pages.write(page * PAGE_SIZE + offset, bytes);
    }
}

struct MmapDriver<'a> {
    mem: &'a GuestMemoryMmap,
}

impl DriverView for MmapDriver<'_> {
    fn addr(&self, page: usize, offset: usize) -> u64 {
        (page * PAGE_SIZE + offset) as u64
    }
    fn put(&mut self, page: usize, offset: usize, bytes: &[u8]) {
        self.mem
            .write_slice(bytes, GuestAddress(self.addr(page, offset)))
            .expect("inside guest memory");
    }
}

/// stubvirt's handler for the bench: header read, status byte left to the pass.
fn stubvirt_handle<M: GuestMemory + ?Sized>(
    chain: &ChainBatch,
    mem: &mut M,
    _: &mut Counters,
) -> Completion {
    if chain.readable_len() >= 16 {
        let mut header = [0u8; 16];
        let _ = chain.read(mem, 0, &mut header);
        black_box(header);
    }
    // The status byte as virtio-blk leaves it: written by the pass, after every chain.
    Completion {
        used_len: 1,
        last_byte: Some(LastByte {
            at: chain.writable_len().saturating_sub(1),
            value: 0,
            counts_if_lost: true,
        }),
        deferred: false,
    }
}

fn stubvirt_config(view: &dyn DriverView) -> QueueConfig {
    QueueConfig {
        size: QUEUE_SIZE,
        desc: view.addr(DESC_PAGE, 0),
        driver: view.addr(AVAIL_PAGE, 0),
        device: view.addr(USED_PAGE, 0),
    }
}

/// Times `rounds` passes of stubvirt's queue over `mem`, the driver refilling between them.
fn stubvirt_rounds<M: GuestMemory + DriverLike>(
    mem: &mut M,
    queue: &mut SplitQueue,
    chain: &mut ChainBatch,
    heads: &[u16],
    avail_idx: &mut u16,
    rounds: u64,
) -> Duration {
    let mut counters = Counters::default();
    let mut elapsed = Duration::ZERO;
    for _ in 0..rounds {
        mem.refill(heads, avail_idx);
        let start = Instant::now();
        let outcome = serve_pass(
            queue,
            chain,
            mem,
            &mut counters,
            heads.len() + 1,
            // Header read in the handler, as rust-vmm's side reads it.
            0,
            &mut stubvirt_handle::<M>,
        );
        elapsed += start.elapsed();
        assert_eq!(outcome.completed, heads.len(), "{outcome:?}");
    }
    elapsed
}

/// Benches stubvirt's queue over `mem` as `shape`/`id` (the ring laid out, the queue live).
fn bench_stubvirt<M: GuestMemory + DriverLike>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    (shape, id): (&str, &str),
    mem: &mut M,
    queue: &mut SplitQueue,
    chain: &mut ChainBatch,
    heads: &[u16],
    avail_idx: &mut u16,
) {
    group.bench_function(BenchmarkId::new(shape, id), |b| {
        b.iter_custom(|rounds| stubvirt_rounds(mem, queue, chain, heads, avail_idx, rounds))
    });
}

/// Refilling the avail ring from the driver's side of a memory.
trait DriverLike {
    fn refill(&mut self, heads: &[u16], avail_idx: &mut u16);
}

/// The copier of a route that never copies: the bench's free memory is the mapped route.
struct NoCopies;

impl GrantCopier for NoCopies {
    fn copy_from_grants(&self, _: &[GrantPiece], _: &mut [u8]) -> Result<(), AccessError> {
        Err(AccessError::Refused)
    }
    fn copy_to_grants(&self, _: &[GrantPiece], _: &[u8]) -> Result<(), AccessError> {
        Err(AccessError::Refused)
    }
}

/// [`FastMemory`] with the type the kernel compiles its devices for: a [`BufferRoute`].
type KernelShaped = BufferRoute<FastMemory, NoCopies>;

impl DriverLike for FastMemory {
    fn refill(&mut self, heads: &[u16], avail_idx: &mut u16) {
        make_available(self, heads, avail_idx);
    }
}

impl DriverLike for KernelShaped {
    fn refill(&mut self, heads: &[u16], avail_idx: &mut u16) {
        if let BufferRoute::Mapped(fast) = self {
            make_available(fast, heads, avail_idx);
        }
    }
}

/// The simulated Xen memory with the frontend's pages beside it.
struct SimPair {
    mem: GrantedMemory,
    driver: SimDriver,
}

impl GuestMemory for SimPair {
    type Rings = Self;

    fn rings(&self) -> &Self {
        self
    }

    fn rings_mut(&mut self) -> &mut Self {
        self
    }

    fn map_batch(&mut self, requests: &[MapRequest], results: &mut [Result<MappedPage, MapError>]) {
        self.mem.map_batch(requests, results)
    }
    fn unmap_batch(&mut self, pages: &[MappedPage]) -> usize {
        self.mem.unmap_batch(pages)
    }
    fn read(&self, page: MappedPage, offset: usize, dst: &mut [u8]) -> Result<(), AccessError> {
        self.mem.read(page, offset, dst)
    }
    fn write(&mut self, page: MappedPage, offset: usize, src: &[u8]) -> Result<(), AccessError> {
        self.mem.write(page, offset, src)
    }
    fn barrier(&self, kind: Barrier) {
        self.mem.barrier(kind)
    }
}

impl DriverLike for SimPair {
    fn refill(&mut self, heads: &[u16], avail_idx: &mut u16) {
        make_available(&mut self.driver, heads, avail_idx);
    }
}

fn rust_vmm_rounds(
    mem: &GuestMemoryMmap,
    queue: &mut Queue,
    heads: &[u16],
    avail_idx: &mut u16,
    rounds: u64,
) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut driver = MmapDriver { mem };
    for _ in 0..rounds {
        make_available(&mut driver, heads, avail_idx);
        let start = Instant::now();
        let mut completed = 0;
        loop {
            while let Some(chain) = queue.pop_descriptor_chain(mem) {
                let head = chain.head_index();
                let mut status = None;
                let mut first = true;
                for desc in chain {
                    let slice = mem
                        .get_slice(desc.addr(), desc.len() as usize)
                        .expect("descriptor inside guest memory");
                    black_box(slice.len());
                    if first && !desc.is_write_only() && desc.len() >= 16 {
                        let header: [u8; 16] = mem.read_obj(desc.addr()).expect("header");
                        black_box(header);
                    }
                    first = false;
                    if desc.is_write_only() {
                        status = Some(GuestAddress(desc.addr().0 + u64::from(desc.len()) - 1));
                    }
                }
                if let Some(at) = status {
                    mem.write_obj(0u8, at).expect("status byte");
                }
                queue.add_used(mem, head, 1).expect("used entry");
                completed += 1;
            }
            // Re-arm (avail_event) and re-check, as stubvirt does when it finds the ring empty.
            if !queue.enable_notification(mem).expect("avail_event") {
                break;
            }
        }
        black_box(queue.needs_notification(mem).expect("used_event"));
        elapsed += start.elapsed();
        assert_eq!(completed, heads.len());
    }
    elapsed
}

fn main() {
    let mut criterion = common::criterion();
    let mut group = criterion.benchmark_group("queue");
    for shape in SHAPES {
        let chains = shape.chains();
        group.throughput(Throughput::Elements(chains as u64));

        // stubvirt over the free in-memory GuestMemory: the queue compiled for it, as
        // rust-vmm's is for GuestMemoryMmap below.
        let mut fast = FastMemory {
            bytes: vec![0; TOTAL_PAGES * PAGE_SIZE],
        };
        let heads = lay_out(&mut fast, shape);
        let config = stubvirt_config(&fast);
        let mut counters = Counters::default();
        let mut queue =
            SplitQueue::activate(&mut fast, &config, QUEUE_SIZE, true, true, &mut counters)
                .expect("rings map");
        let mut chain = Box::new(ChainBatch::new());
        let mut avail_idx = 0u16;
        bench_stubvirt(
            &mut group,
            (shape.name, "stubvirt_fast"),
            &mut fast,
            &mut queue,
            &mut chain,
            &heads,
            &mut avail_idx,
        );

        // The same memory and queue, held as the kernel holds its memory: in a
        // BufferRoute, so every access pays the kernel's route dispatch.
        let mut routed: KernelShaped = BufferRoute::Mapped(fast);
        bench_stubvirt(
            &mut group,
            (shape.name, "stubvirt_routed"),
            &mut routed,
            &mut queue,
            &mut chain,
            &heads,
            &mut avail_idx,
        );

        // stubvirt over the simulated Xen (grant table, hypercall accounting).
        world::reset();
        let driver = SimDriver {
            pages: Granted::new(1, TOTAL_PAGES, false),
        };
        let mut sim = SimPair {
            mem: GrantedMemory { frontend: 1 },
            driver,
        };
        let heads = lay_out(&mut sim.driver, shape);
        let config = stubvirt_config(&sim.driver);
        let mut queue =
            SplitQueue::activate(&mut sim, &config, QUEUE_SIZE, true, true, &mut counters)
                .expect("rings map");
        let mut avail_idx = 0u16;
        bench_stubvirt(
            &mut group,
            (shape.name, "stubvirt_simxen"),
            &mut sim,
            &mut queue,
            &mut chain,
            &heads,
            &mut avail_idx,
        );
        queue.release(&mut sim, &mut counters);

        // rust-vmm virtio-queue over vm-memory's GuestMemoryMmap.
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), TOTAL_PAGES * PAGE_SIZE)])
            .expect("guest memory");
        let heads = lay_out(&mut MmapDriver { mem: &mem }, shape);
        let mut vq = Queue::new(QUEUE_SIZE).expect("queue");
        vq.set_size(QUEUE_SIZE);
        let addr = |page: usize| (page * PAGE_SIZE) as u64;
        vq.set_desc_table_address(Some(addr(DESC_PAGE) as u32), Some(0));
        vq.set_avail_ring_address(Some(addr(AVAIL_PAGE) as u32), Some(0));
        vq.set_used_ring_address(Some(addr(USED_PAGE) as u32), Some(0));
        vq.set_event_idx(true);
        vq.set_ready(true);
        assert!(vq.is_valid(&mem));
        let mut avail_idx = 0u16;
        group.bench_function(BenchmarkId::new(shape.name, "rust_vmm"), |b| {
            b.iter_custom(|rounds| rust_vmm_rounds(&mem, &mut vq, &heads, &mut avail_idx, rounds))
        });
        let _ = vq.iter(&mem).map(|it| it.count());
    }
    group.finish();
    criterion.final_summary();

    let mut rows = Vec::new();
    for shape in SHAPES {
        let chains = shape.chains() as f64;
        let rate = |id: &str| {
            common::median_ns("queue", &format!("{}/{id}", shape.name)).map(|ns| chains * 1e9 / ns)
        };
        let (fast, routed, sim, peer) = (
            rate("stubvirt_fast"),
            rate("stubvirt_routed"),
            rate("stubvirt_simxen"),
            rate("rust_vmm"),
        );
        let fmt = |r: Option<f64>| r.map_or("-".into(), |r| format!("{}/s", common::si(r)));
        let ratio = |ours: Option<f64>| match (ours, peer) {
            (Some(f), Some(p)) => format!("{:.2}x", f / p),
            _ => "-".into(),
        };
        rows.push(vec![
            shape.name.to_string(),
            format!("{}", shape.chains()),
            fmt(fast),
            fmt(peer),
            ratio(fast),
            fmt(routed),
            ratio(routed),
            fmt(sim),
        ]);
    }
    common::print_table(
        "queue",
        "Queue processing, chains/s (median; stubvirt vs rust-vmm virtio-queue 0.18)",
        &[
            "chain shape",
            "chains/pass",
            "stubvirt (free memory)",
            "rust-vmm virtio-queue",
            "ratio",
            "stubvirt (free memory in the kernel's BufferRoute)",
            "ratio",
            "stubvirt (simulated Xen)",
        ],
        &rows,
    );
}
