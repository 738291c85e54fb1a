//! virtio-net (virtio 1.2 section 5.1): one rx and one tx queue per frontend, attached to
//! a port of the backend's [`Switch`].
//!
//! A frame that does not fit the rx buffers the driver posted is dropped and counted,
//! never truncated; a frame with no rx buffer yet waits in the port's bounded backlog.
//! When a frontend's backlog is full (or holds its share of GSO frames), a frame another
//! frontend sends it stays on the sender's tx ring, and the tx queue after it, until the
//! receiver drains something: the sender is held back, not dropped, for at most
//! [`TX_BLOCK_LIMIT_NS`] without a drain.
//! With HOST_TSO4/6 a driver may send GSO frames of up to 64 KiB; a driver that
//! negotiated the matching GUEST_TSO4/6 receives them whole, any other one in segments
//! cut by [`gso`].

pub mod frame;
pub mod gso;
pub mod pool;
mod rx;
pub mod switch;
pub mod uplink;

use crate::counters::Counters;
use crate::device::{serve_queue, Io, ProcessOutcome, QueueSlot, VirtioDevice, QUOTA_PER_PASS};
use crate::features::net as f;
use crate::memory::GuestMemory;
use crate::queue::chain::ChainBatch;
use crate::queue::completion::Completion;
use crate::queue::serve::PassOutcome;
use crate::queue::{QueueError, SplitQueue, QUEUE_SIZE_LIMIT};
use frame::{Frame, Offload, ETH_HEADER, NET_HDR_SIZE};
use gso::{GsoLayout, IpVersion, MAX_GSO_FRAME};
use rx::{Delivery, RxWriter};
use switch::{PortId, Switch};

pub const DEVICE_ID: u32 = 1;
const RX: usize = 0;
const TX: usize = 1;
const LINK_UP: u16 = 1;
/// Ethernet header plus one VLAN tag on top of the MTU.
const L2_OVERHEAD: usize = ETH_HEADER + 4;
/// The longest a frontend's tx queue waits for a receiving frontend that drains nothing:
/// then the frame it waits with drops (counted as the full backlog's), and frames for that
/// port drop at once until it drains again. Long enough for a live receiver (Linux refills
/// its rx ring from NAPI within a scheduling tick, some ms at worst), short against TCP's
/// minimum retransmission timeout (200 ms), so that a stalled receiver costs its senders'
/// other flows less than one timeout.
pub const TX_BLOCK_LIMIT_NS: u64 = 50_000_000;

/// What a net device advertises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetOptions {
    pub mac: [u8; 6],
    pub mtu: u16,
}

impl NetOptions {
    /// The largest frame (without virtio header) a port of this MTU carries.
    pub fn max_frame(&self) -> usize {
        usize::from(self.mtu) + L2_OVERHEAD
    }
}

/// The tx queue's head frame waits for `port` to take a frame of `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Blocked {
    port: PortId,
    len: usize,
    /// The port's [`Switch::drained`] when the wait began.
    drained: u64,
    since_ns: u64,
}

impl Blocked {
    fn deadline(&self) -> u64 {
        self.since_ns.saturating_add(TX_BLOCK_LIMIT_NS)
    }

    /// Whether the head frame is worth trying again: the port has room, drained since,
    /// was found stalled by another sender, or the wait is over.
    fn ready(&self, switch: &Switch) -> bool {
        switch.can_take(self.port, self.len)
            || switch.drained(self.port) != self.drained
            || switch.is_stalled(self.port)
            || switch.now() >= self.deadline()
    }
}

/// A virtio-net device on switch port `port`.
pub struct NetDevice {
    port: PortId,
    options: NetOptions,
    negotiated: u64,
    rx: RxWriter,
    /// The segment being cut from a GSO frame for a driver that cannot take it whole.
    segment: Frame,
    /// The tx queue waits for a receiver (its head chain left on the ring).
    blocked: Option<Blocked>,
}

impl NetDevice {
    pub fn new(port: PortId, options: NetOptions) -> Self {
        Self {
            port,
            options,
            negotiated: 0,
            rx: RxWriter::new(),
            segment: Frame::with_capacity(options.max_frame()),
            blocked: None,
        }
    }

    pub fn port(&self) -> PortId {
        self.port
    }

    /// When the tx queue's wait for a receiver ends, if it waits: the host must run the
    /// backend by then even if nothing else happens.
    pub fn tx_deadline(&self) -> Option<u64> {
        self.blocked.as_ref().map(Blocked::deadline)
    }

    /// Whether the tx queue waited for a receiver and may go on now.
    pub fn tx_ready(&self, switch: &Switch) -> bool {
        self.blocked.is_some_and(|b| b.ready(switch))
    }

    fn has(&self, feature: u64) -> bool {
        self.negotiated & feature != 0
    }

    /// The longest frame the driver may send with this header; None when its gso_type
    /// was not negotiated.
    fn tx_limit(&self, offload: &Offload, switch: &Switch) -> Option<usize> {
        if !offload.is_gso() {
            return Some(self.options.max_frame().min(switch.frame_capacity()));
        }
        let tso = match IpVersion::of_gso_type(offload.gso_type) {
            Some(IpVersion::V4) => f::HOST_TSO4,
            Some(IpVersion::V6) => f::HOST_TSO6,
            None => return None,
        };
        self.has(tso).then_some(MAX_GSO_FRAME)
    }

    /// Whether a GSO frame's segments still fit this port's MTU.
    fn gso_frame_valid(&self, frame: &Frame) -> bool {
        GsoLayout::parse(&frame.offload, frame.bytes())
            .is_ok_and(|layout| layout.largest_segment() <= self.options.max_frame())
    }

    /// Whether the driver takes this GSO frame whole (GUEST_TSO4/6 of its IP version).
    fn takes_whole(&self, offload: &Offload) -> bool {
        match IpVersion::of_gso_type(offload.gso_type) {
            Some(IpVersion::V4) => self.has(f::GUEST_TSO4),
            Some(IpVersion::V6) => self.has(f::GUEST_TSO6),
            None => false,
        }
    }

    /// Whether the frame of `chain` must wait on the ring: its destination is another
    /// frontend whose backlog cannot take it now, that drained within
    /// [`TX_BLOCK_LIMIT_NS`] and was not found stalled. A wait that runs out marks the
    /// port stalled, and the frame goes on to be dropped as a full backlog's.
    fn must_wait(&mut self, addresses: [u8; 12], frame_len: usize, switch: &mut Switch) -> bool {
        let [d0, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5] = addresses;
        let (destination, source) = ([d0, d1, d2, d3, d4, d5], [s0, s1, s2, s3, s4, s5]);
        let Some(port) = switch
            .holds_back(self.port, destination, source)
            .filter(|&port| !switch.can_take(port, frame_len) && !switch.is_stalled(port))
        else {
            self.blocked = None;
            return false;
        };
        let drained = switch.drained(port);
        let now = switch.now();
        match self.blocked {
            Some(b) if b.port == port && b.drained == drained => {
                if now < b.deadline() {
                    return true;
                }
                switch.mark_stalled(port);
                self.blocked = None;
                false
            }
            _ => {
                self.blocked = Some(Blocked {
                    port,
                    len: frame_len,
                    drained,
                    since_ns: now,
                });
                true
            }
        }
    }

    fn transmit<M: GuestMemory + ?Sized>(
        &mut self,
        chain: &ChainBatch,
        mem: &M,
        counters: &mut Counters,
        switch: &mut Switch,
    ) -> Completion {
        let frame_len = chain.readable_len().saturating_sub(NET_HDR_SIZE);
        // The virtio-net header and the frame's two addresses, in one read (one grant
        // copy on the copy route).
        let mut head = [0u8; NET_HDR_SIZE + 12];
        let shaped = chain.writable_len() == 0
            && chain.fully_mapped()
            && chain.readable_len() >= NET_HDR_SIZE + ETH_HEADER;
        if !shaped || chain.read(mem, 0, &mut head).is_err() {
            counters.request_errors = counters.request_errors.saturating_add(1);
            return Completion::written(0);
        }
        // `head` is exactly the two: never None.
        let Some((header, addresses)) = head
            .split_first_chunk::<NET_HDR_SIZE>()
            .and_then(|(header, rest)| Some((*header, *rest.first_chunk::<12>()?)))
        else {
            return Completion::written(0);
        };
        let offload = Offload::parse(&header);
        if self
            .tx_limit(&offload, switch)
            .is_none_or(|limit| frame_len > limit)
        {
            counters.request_errors = counters.request_errors.saturating_add(1);
            return Completion::written(0);
        }
        // Decided before a buffer is taken: a frame that waits holds none.
        if self.must_wait(addresses, frame_len, switch) {
            return Completion::deferred();
        }
        let Some(mut frame) = switch.take_buffer(self.port, frame_len) else {
            counters.request_errors = counters.request_errors.saturating_add(1);
            return Completion::written(0);
        };
        let copied = chain.read(mem, NET_HDR_SIZE, frame.fill(frame_len));
        frame.offload = offload;
        if copied.is_err() || (offload.is_gso() && !self.gso_frame_valid(&frame)) {
            counters.request_errors = counters.request_errors.saturating_add(1);
            switch.recycle(frame);
            return Completion::written(0);
        }
        counters.frames_tx = counters.frames_tx.saturating_add(1);
        let bytes = chain.readable_len() as u64;
        counters.bytes_from_guest = counters.bytes_from_guest.saturating_add(bytes);
        switch.forward(self.port, frame);
        Completion::written(0)
    }

    fn receive<M: GuestMemory + ?Sized>(
        &mut self,
        slot: &mut QueueSlot,
        chain: &mut ChainBatch,
        mem: &mut M,
        counters: &mut Counters,
        switch: &mut Switch,
    ) -> PassOutcome {
        let mut outcome = PassOutcome::default();
        let Some(queue) = slot.live.as_mut() else {
            return outcome;
        };
        slot.pending = false;
        let result = (|| -> Result<(), QueueError> {
            for _ in 0..QUOTA_PER_PASS {
                let Some(mut frame) = switch.next_for(self.port) else {
                    return Ok(());
                };
                let delivery = self.deliver(queue, chain, &mut frame, mem, counters);
                match delivery {
                    Ok(Delivery::Delivered) => {
                        outcome.completed = outcome.completed.saturating_add(1);
                        switch.note_drained(self.port);
                        switch.recycle(frame);
                    }
                    Ok(Delivery::SegmentDelivered) => {
                        outcome.completed = outcome.completed.saturating_add(1);
                        switch.note_drained(self.port);
                        switch.requeue(self.port, frame);
                    }
                    Ok(Delivery::TooBig) => {
                        counters.rx_dropped_too_big = counters.rx_dropped_too_big.saturating_add(1);
                        switch.note_drained(self.port);
                        switch.recycle(frame);
                    }
                    Ok(Delivery::SkippedBuffer) => switch.requeue(self.port, frame),
                    Ok(Delivery::NoBuffers) => {
                        switch.requeue(self.port, frame);
                        // Wait for the driver to post more, unless it just did.
                        let seen = queue.seen_avail();
                        queue.arm_notifications(mem)?;
                        if queue.seen_avail() == seen {
                            return Ok(());
                        }
                    }
                    Err(e) => {
                        switch.recycle(frame);
                        return Err(e);
                    }
                }
            }
            outcome.more = switch.has_frames_for(self.port) && queue.has_available(mem)?;
            Ok(())
        })();
        if let Err(e) = result {
            counters.queue_errors = counters.queue_errors.saturating_add(1);
            outcome.broken = Some(e);
        }
        match queue.publish(mem).and_then(|()| queue.needs_interrupt(mem)) {
            Ok(wanted) => outcome.interrupt = wanted,
            Err(e) => outcome.broken = outcome.broken.or(Some(e)),
        }
        if outcome.broken.is_some() {
            slot.stop(mem, counters);
        }
        outcome
    }

    /// Delivers a frame, or the next segment of a GSO frame the driver cannot take
    /// whole, with its checksum completed unless the driver negotiated GUEST_CSUM.
    fn deliver<M: GuestMemory + ?Sized>(
        &mut self,
        queue: &mut SplitQueue,
        chain: &mut ChainBatch,
        frame: &mut Frame,
        mem: &mut M,
        counters: &mut Counters,
    ) -> Result<Delivery, QueueError> {
        let merge = self.has(f::MRG_RXBUF);
        let complete_checksums = !self.has(f::GUEST_CSUM);
        if !frame.offload.is_gso() || self.takes_whole(&frame.offload) {
            if frame.offload.needs_csum() && complete_checksums {
                frame.complete_checksum();
            }
            return self.rx.deliver(merge, queue, chain, frame, mem, counters);
        }
        let Some(last) = gso::next_segment(frame, &mut self.segment) else {
            return Ok(Delivery::TooBig);
        };
        if complete_checksums {
            self.segment.complete_checksum();
        }
        let delivery = self
            .rx
            .deliver(merge, queue, chain, &self.segment, mem, counters)?;
        if delivery != Delivery::Delivered {
            return Ok(delivery);
        }
        counters.gso_segments = counters.gso_segments.saturating_add(1);
        if last {
            return Ok(Delivery::Delivered);
        }
        // A saturated index names no segment: the frame would be dropped, not resent.
        frame.segments_done = frame.segments_done.saturating_add(1);
        Ok(Delivery::SegmentDelivered)
    }
}

impl VirtioDevice for NetDevice {
    type Context = Switch;

    fn device_id(&self) -> u32 {
        DEVICE_ID
    }

    fn features(&self) -> u64 {
        f::CSUM
            | f::GUEST_CSUM
            | f::MTU
            | f::MAC
            | f::MRG_RXBUF
            | f::STATUS
            | f::HOST_TSO4
            | f::HOST_TSO6
            | f::GUEST_TSO4
            | f::GUEST_TSO6
    }

    fn feature_dependencies(&self) -> &'static [(u64, u64)] {
        f::DEPENDENCIES
    }

    fn queue_count(&self) -> usize {
        2
    }

    fn queue_max_size(&self, index: usize) -> u16 {
        if index < 2 {
            QUEUE_SIZE_LIMIT
        } else {
            0
        }
    }

    fn config_bytes(&self, out: &mut [u8; 64]) -> usize {
        let [s0, s1] = LINK_UP.to_le_bytes();
        let [p0, p1] = 1u16.to_le_bytes();
        let [m0, m1] = self.options.mtu.to_le_bytes();
        let [a, b, c, d, e, g] = self.options.mac;
        let config = [a, b, c, d, e, g, s0, s1, p0, p1, m0, m1];
        if let Some(slot) = out.get_mut(..config.len()) {
            slot.copy_from_slice(&config);
        }
        config.len()
    }

    fn activate(&mut self, features: u64) {
        self.negotiated = features;
    }

    fn reset(&mut self) {
        self.negotiated = 0;
        self.blocked = None;
    }

    fn process<M: GuestMemory + ?Sized>(
        &mut self,
        io: Io<'_, M>,
        switch: &mut Switch,
    ) -> ProcessOutcome {
        let mut outcome = ProcessOutcome::default();
        let Io {
            queues,
            mem,
            counters,
            chain,
        } = io;
        if let Some(tx) = queues.get_mut(TX) {
            if tx.live.is_none() {
                self.blocked = None;
            }
            // While the head chain waits for a receiver, the queue is not served (its
            // notifications stay pending): it goes on when the receiver drains, or the
            // wait runs out (`Backend::run` and the host's deadline see to both).
            if self.blocked.is_none_or(|b| b.ready(switch)) {
                if self.blocked.is_some() {
                    tx.pending = true;
                }
                // Tx headers are not read ahead (0): only blk does so far.
                let mut transmit = |chain: &ChainBatch, mem: &mut M, counters: &mut Counters| {
                    self.transmit(chain, mem, counters, switch)
                };
                let mut pass = serve_queue(tx, chain, mem, counters, 0, &mut transmit);
                // A head that waits is no work to do again at once: that would spin.
                pass.more &= self.blocked.is_none();
                outcome.absorb(&pass);
            }
        }
        if let Some(rx) = queues.get_mut(RX) {
            if switch.has_frames_for(self.port) && rx.live.is_some() {
                let pass = self.receive(rx, chain, mem, counters, switch);
                outcome.absorb(&pass);
            } else {
                rx.pending = false;
            }
        }
        outcome
    }
}
