//! What a virtio device type adds to the transport: identity, features, config space and
//! the processing of its queues.

use crate::counters::Counters;
use crate::memory::GuestMemory;
use crate::queue::chain::ChainBatch;
use crate::queue::serve::{serve_pass, Handler, PassOutcome};
use crate::queue::{QueueConfig, QueueError, SplitQueue};

/// Queues one device may have (blk with MQ, or net rx/tx).
pub const MAX_QUEUES: usize = 4;
/// Chains served per queue per pass: bounds the work one notification can cause, so a
/// flooding frontend cannot starve the other queues and devices.
pub const QUOTA_PER_PASS: usize = 64;

/// The transport-side state of one queue.
#[derive(Debug, Default)]
pub struct QueueSlot {
    /// The registers the driver wrote (QueueNum, QueueDesc, QueueDriver, QueueDevice).
    pub config: QueueConfig,
    /// The mapped rings once the driver set QueueReady and they checked out.
    pub live: Option<SplitQueue>,
    /// A notification (or leftover work) is pending.
    pub pending: bool,
}

/// What processing did, for the transport to turn into interrupts and status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessOutcome {
    /// A used-buffer notification is due.
    pub interrupt: bool,
    /// Work remains (quota reached, or frames waiting for buffers): process again soon.
    pub more: bool,
    /// A queue broke: the device needs a reset.
    pub broken: Option<QueueError>,
}

impl ProcessOutcome {
    pub fn absorb(&mut self, pass: &PassOutcome) {
        self.interrupt |= pass.interrupt;
        self.more |= pass.more;
        self.broken = self.broken.or(pass.broken);
    }
}

/// What `process` gets to work with.
pub struct Io<'a, M: GuestMemory + ?Sized> {
    pub queues: &'a mut [QueueSlot],
    pub mem: &'a mut M,
    pub counters: &'a mut Counters,
    pub chain: &'a mut ChainBatch,
}

/// A virtio device type, driven by [`crate::mmio::MmioDevice`].
pub trait VirtioDevice {
    /// What processing needs besides guest memory (the net switch; `()` for blk).
    type Context;

    fn device_id(&self) -> u32;
    /// Device-type feature bits; transport bits are added by the transport.
    fn features(&self) -> u64;
    /// Pairs (feature, what it requires) that FEATURES_OK enforces.
    fn feature_dependencies(&self) -> &'static [(u64, u64)] {
        &[]
    }
    fn queue_count(&self) -> usize;
    fn queue_max_size(&self, index: usize) -> u16;
    /// The device configuration space, little-endian, as it reads now.
    fn config_bytes(&self, out: &mut [u8; 64]) -> usize;
    /// The driver set DRIVER_OK with these negotiated features.
    fn activate(&mut self, features: u64);
    /// The driver reset the device: forget everything but the backing store.
    fn reset(&mut self);
    /// Serves the queues, within the per-pass quota.
    fn process<M: GuestMemory + ?Sized>(
        &mut self,
        io: Io<'_, M>,
        context: &mut Self::Context,
    ) -> ProcessOutcome;
}

/// Serves every pending queue of `io` with one handler, quota per queue, each chain's
/// first `prefetch` bytes read ahead (see [`serve_pass`]).
pub fn serve_pending<M: GuestMemory + ?Sized, H: Handler<M> + ?Sized>(
    io: Io<'_, M>,
    prefetch: usize,
    handler: &mut H,
) -> ProcessOutcome {
    let mut outcome = ProcessOutcome::default();
    for slot in io.queues.iter_mut() {
        let pass = serve_queue(slot, io.chain, io.mem, io.counters, prefetch, handler);
        outcome.absorb(&pass);
    }
    outcome
}

/// Serves one queue if it is live and pending; a queue that breaks lets go of its rings
/// at once and stays stopped until the driver resets it.
pub fn serve_queue<M: GuestMemory + ?Sized, H: Handler<M> + ?Sized>(
    slot: &mut QueueSlot,
    chain: &mut ChainBatch,
    mem: &mut M,
    counters: &mut Counters,
    prefetch: usize,
    handler: &mut H,
) -> PassOutcome {
    let Some(queue) = slot.live.as_mut() else {
        slot.pending = false;
        return PassOutcome::default();
    };
    if !slot.pending {
        return PassOutcome::default();
    }
    let pass = serve_pass(
        queue,
        chain,
        mem,
        counters,
        QUOTA_PER_PASS,
        prefetch,
        handler,
    );
    slot.pending = pass.more;
    if pass.broken.is_some() {
        slot.stop(mem, counters);
    }
    pass
}

impl QueueSlot {
    /// Stops a broken queue: rings unmapped, nothing pending.
    pub fn stop<M: GuestMemory + ?Sized>(&mut self, mem: &mut M, counters: &mut Counters) {
        if let Some(queue) = self.live.take() {
            queue.release(mem, counters);
        }
        self.pending = false;
    }
}
