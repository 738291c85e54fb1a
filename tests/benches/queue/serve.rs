//! stubvirt's side of the comparison: its handler, queue configuration, and the timed
//! passes of `serve_pass` over any guest memory the driver can refill.

use crate::layout::{DriverView, AVAIL_PAGE, DESC_PAGE, QUEUE_SIZE, USED_PAGE};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId};
use devices::counters::Counters;
use devices::memory::GuestMemory;
use devices::queue::chain::ChainBatch;
use devices::queue::completion::{Completion, LastByte};
use devices::queue::serve::serve_pass;
use devices::queue::{QueueConfig, SplitQueue};
use std::hint::black_box;
use std::time::{Duration, Instant};

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

pub fn stubvirt_config(view: &dyn DriverView) -> QueueConfig {
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
pub fn bench_stubvirt<M: GuestMemory + DriverLike>(
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
pub trait DriverLike {
    fn refill(&mut self, heads: &[u16], avail_idx: &mut u16);
}
