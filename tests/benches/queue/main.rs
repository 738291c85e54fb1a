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

#[path = "../common/mod.rs"]
mod common;

mod fast_memory;
mod layout;
mod rust_vmm;
mod serve;
mod sim_memory;
mod table;

use crate::fast_memory::{FastMemory, KernelShaped};
use crate::layout::{lay_out, AVAIL_PAGE, DESC_PAGE, QUEUE_SIZE, SHAPES, TOTAL_PAGES, USED_PAGE};
use crate::rust_vmm::{rust_vmm_rounds, MmapDriver};
use crate::serve::{bench_stubvirt, stubvirt_config};
use crate::sim_memory::{SimDriver, SimPair};
use criterion::{BenchmarkId, Throughput};
use devices::buffer_route::BufferRoute;
use devices::counters::Counters;
use devices::grant::PAGE_SIZE;
use devices::queue::chain::ChainBatch;
use devices::queue::SplitQueue;
use stubvirt_tests::rings::Granted;
use stubvirt_tests::world::{self, GrantedMemory};
use virtio_queue::{Queue, QueueOwnedT as _, QueueT};
use vm_memory::{GuestAddress, GuestMemoryMmap};

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

    table::print();
}
