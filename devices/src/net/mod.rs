//! virtio-net (virtio 1.2 section 5.1): one rx and one tx queue per frontend, attached to
//! a port of the backend's [`Switch`].
//!
//! A frame that does not fit the rx buffers the driver posted is dropped and counted,
//! never truncated; a frame with no rx buffer yet waits in the port's bounded backlog.

pub mod frame;
pub mod switch;
pub mod uplink;

use crate::counters::Counters;
use crate::device::{serve_queue, Io, ProcessOutcome, QueueSlot, VirtioDevice, QUOTA_PER_PASS};
use crate::features::net as f;
use crate::memory::GuestMemory;
use crate::queue::chain::{Chain, ChainFault};
use crate::queue::serve::PassOutcome;
use crate::queue::{QueueError, SplitQueue, QUEUE_SIZE_LIMIT};
use alloc::boxed::Box;
use frame::{Frame, ETH_HEADER, NET_HDR_SIZE};
use switch::{PortId, Switch};

pub const DEVICE_ID: u32 = 1;
const RX: usize = 0;
const TX: usize = 1;
const LINK_UP: u16 = 1;
/// Rx buffers one frame may be spread over with MRG_RXBUF.
const MAX_MERGE: usize = 64;
/// Ethernet header plus one VLAN tag on top of the MTU.
const L2_OVERHEAD: usize = ETH_HEADER + 4;

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

/// A virtio-net device on switch port `port`.
pub struct NetDevice {
    port: PortId,
    options: NetOptions,
    negotiated: u64,
    /// Second chain scratch: the further rx buffers of a merged frame.
    merge_chain: Box<Chain>,
}

enum Delivery {
    Delivered,
    /// Not enough rx buffers yet: the frame goes back to wait.
    NoBuffers,
    /// The posted buffers cannot hold it: drop and count.
    TooBig,
    /// The first buffer was unusable and was returned empty; try the frame again.
    SkippedBuffer,
}

impl NetDevice {
    pub fn new(port: PortId, options: NetOptions) -> Self {
        Self {
            port,
            options,
            negotiated: 0,
            merge_chain: Box::new(Chain::new()),
        }
    }

    pub fn port(&self) -> PortId {
        self.port
    }

    fn transmit(
        &self,
        chain: &Chain,
        mem: &dyn GuestMemory,
        counters: &mut Counters,
        switch: &mut Switch,
    ) {
        let frame_len = chain.readable_len().saturating_sub(NET_HDR_SIZE);
        let valid = chain.writable_len() == 0
            && chain.fully_mapped()
            && chain.readable_len() >= NET_HDR_SIZE + ETH_HEADER
            && frame_len <= self.options.max_frame().min(switch.frame_capacity());
        if !valid {
            counters.request_errors += 1;
            return;
        }
        let Some(mut frame) = switch.take_buffer(self.port) else {
            counters.request_errors += 1;
            return;
        };
        let mut header = [0u8; NET_HDR_SIZE];
        let copied = chain
            .read(mem, 0, &mut header)
            .and_then(|()| chain.read(mem, NET_HDR_SIZE, frame.fill(frame_len)));
        if copied.is_err() {
            counters.request_errors += 1;
            switch.recycle(frame);
            return;
        }
        frame.offload = frame::Offload::parse(&header);
        counters.frames_tx += 1;
        counters.bytes_from_guest += chain.readable_len() as u64;
        switch.forward(self.port, frame);
    }

    fn receive(
        &mut self,
        slot: &mut QueueSlot,
        chain: &mut Chain,
        mem: &mut dyn GuestMemory,
        counters: &mut Counters,
        switch: &mut Switch,
    ) -> PassOutcome {
        let mut outcome = PassOutcome::default();
        let Some(queue) = slot.live.as_mut() else {
            return outcome;
        };
        slot.pending = false;
        let result = (|| -> Result<(), QueueError> {
            let mut attempts = 0;
            while attempts < QUOTA_PER_PASS {
                attempts += 1;
                let Some(mut frame) = switch.next_for(self.port) else {
                    return Ok(());
                };
                if frame.offload.needs_csum() && self.negotiated & f::GUEST_CSUM == 0 {
                    frame.complete_checksum();
                }
                let delivery = self.deliver(queue, chain, &frame, mem, counters);
                match delivery {
                    Ok(Delivery::Delivered) => {
                        outcome.completed += 1;
                        switch.recycle(frame);
                    }
                    Ok(Delivery::TooBig) => {
                        counters.rx_dropped_too_big += 1;
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
            counters.queue_errors += 1;
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

    /// Writes one frame into the rx buffers at the head of the queue.
    fn deliver(
        &mut self,
        queue: &mut SplitQueue,
        chain: &mut Chain,
        frame: &Frame,
        mem: &mut dyn GuestMemory,
        counters: &mut Counters,
    ) -> Result<Delivery, QueueError> {
        let Some(head) = queue.pop(mem)? else {
            return Ok(Delivery::NoBuffers);
        };
        if !load_rx_buffer(queue, chain, head, mem, counters)? {
            // Return it empty so the driver gets it back; the frame tries the next one.
            queue.push_used(mem, head, 0)?;
            counters.request_errors += 1;
            counters.requests += 1;
            return Ok(Delivery::SkippedBuffer);
        }
        let merge = self.negotiated & f::MRG_RXBUF != 0;
        let capacity = chain.writable_len() - NET_HDR_SIZE;
        if !merge && capacity < frame.len() {
            chain.release(mem, counters);
            queue.unpop(1);
            return Ok(Delivery::TooBig);
        }
        let first_part = frame.len().min(capacity);
        let mut extra: heapless::Vec<(u16, u32), MAX_MERGE> = heapless::Vec::new();
        let mut written = first_part;
        let mut outcome = Ok(Delivery::Delivered);
        while written < frame.len() {
            let next = if extra.is_full() {
                None
            } else {
                queue.pop(mem)?
            };
            let Some(next_head) = next else {
                outcome = Ok(if extra.is_full() {
                    Delivery::TooBig
                } else {
                    Delivery::NoBuffers
                });
                break;
            };
            if !load_rx_buffer(queue, &mut self.merge_chain, next_head, mem, counters)? {
                chain.release(mem, counters);
                return Err(QueueError::UnusableBuffer);
            }
            let part = (frame.len() - written).min(self.merge_chain.writable_len());
            let bytes = frame.bytes().get(written..written + part).unwrap_or(&[]);
            let copied = self.merge_chain.write(mem, 0, bytes);
            self.merge_chain.release(mem, counters);
            if copied.is_err() {
                chain.release(mem, counters);
                return Err(QueueError::UnusableBuffer);
            }
            let _ = extra.push((next_head, part as u32));
            written += part;
        }
        if !matches!(outcome, Ok(Delivery::Delivered)) {
            chain.release(mem, counters);
            queue.unpop(1 + extra.len() as u16);
            return outcome;
        }
        let header = frame.offload.header(1 + extra.len() as u16);
        let first_bytes = frame.bytes().get(..first_part).unwrap_or(&[]);
        let copied = chain
            .write(mem, 0, &header)
            .and_then(|()| chain.write(mem, NET_HDR_SIZE, first_bytes));
        chain.release(mem, counters);
        if copied.is_err() {
            return Err(QueueError::UnusableBuffer);
        }
        queue.push_used(mem, head, (NET_HDR_SIZE + first_part) as u32)?;
        for (extra_head, len) in &extra {
            queue.push_used(mem, *extra_head, *len)?;
        }
        counters.requests += 1 + extra.len() as u64;
        counters.frames_rx += 1;
        counters.bytes_to_guest += (NET_HDR_SIZE + frame.len()) as u64;
        Ok(Delivery::Delivered)
    }
}

/// Loads an rx chain; false (released) when the driver made it unusable: readable parts,
/// grants that do not map writable, or room for less than a header.
fn load_rx_buffer(
    queue: &SplitQueue,
    chain: &mut Chain,
    head: u16,
    mem: &mut dyn GuestMemory,
    counters: &mut Counters,
) -> Result<bool, QueueError> {
    match chain.load(queue, head, mem, counters) {
        Ok(()) => {}
        Err(ChainFault::Queue(e)) => {
            chain.release(mem, counters);
            return Err(e);
        }
        Err(ChainFault::IndirectUnreachable(_)) => {
            chain.release(mem, counters);
            return Ok(false);
        }
    }
    let usable =
        chain.readable_len() == 0 && chain.fully_mapped() && chain.writable_len() >= NET_HDR_SIZE;
    if !usable {
        chain.release(mem, counters);
    }
    Ok(usable)
}

impl VirtioDevice for NetDevice {
    type Context = Switch;

    fn device_id(&self) -> u32 {
        DEVICE_ID
    }

    fn features(&self) -> u64 {
        f::CSUM | f::GUEST_CSUM | f::MTU | f::MAC | f::MRG_RXBUF | f::STATUS
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
    }

    fn process(&mut self, io: Io<'_>, switch: &mut Switch) -> ProcessOutcome {
        let mut outcome = ProcessOutcome::default();
        let Io {
            queues,
            mem,
            counters,
            chain,
        } = io;
        if let Some(tx) = queues.get_mut(TX) {
            let pass = serve_queue(tx, chain, mem, counters, |chain, mem, counters| {
                self.transmit(chain, mem, counters, switch);
                0
            });
            outcome.absorb(&pass);
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
