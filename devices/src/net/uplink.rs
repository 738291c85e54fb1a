//! A switch port that is not one of our virtio devices: the host's own network interface
//! (in the kernel, a physical virtio-net device driven by `virtio-drivers`). Frames from
//! the wire enter the switch like a frontend's; frames for the wire leave it with every
//! checksum complete and GSO frames cut into segments, because the wire knows nothing
//! of virtio offloads.
//!
//! The port is pure logic: the host moves the bytes between it and its NIC.

use super::frame::{Frame, Offload};
use super::gso;
use super::switch::{PortId, Switch};
use crate::device::QUOTA_PER_PASS;

/// What happened on an uplink over its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UplinkStats {
    /// Frames from the wire switched towards the frontends.
    pub frames_in: u64,
    /// Frames handed to the wire (segments of GSO frames included).
    pub frames_out: u64,
    /// Segments cut from GSO frames for the wire.
    pub segments_out: u64,
    /// Frames for the wire dropped: GSO frames whose segments do not fit the port.
    pub dropped_out: u64,
    /// Frames for the wire the switch dropped because the port's backlog was full
    /// (flooded ones; a unicast sender waits instead). Filled in by the backend.
    pub dropped_full: u64,
    /// Frames from the wire dropped: shorter than an Ethernet header, longer than the
    /// switch's frames, or no free frame buffer.
    pub dropped_in: u64,
    /// Partial checksums completed in software before a frame left.
    pub checksums_completed: u64,
}

/// The uplink's port and counters.
pub struct Uplink {
    port: PortId,
    stats: UplinkStats,
    /// The segment being cut from a GSO frame.
    segment: Frame,
}

/// Bytes of an Ethernet header: the least a frame from the wire must have.
const MIN_FRAME: usize = super::frame::ETH_HEADER;

impl Uplink {
    /// An uplink on `port` whose frames (segments too) are at most `max_frame` bytes.
    pub fn new(port: PortId, max_frame: usize) -> Self {
        Self {
            port,
            stats: UplinkStats::default(),
            segment: Frame::with_capacity(max_frame),
        }
    }

    pub fn port(&self) -> PortId {
        self.port
    }

    pub fn stats(&self) -> UplinkStats {
        self.stats
    }

    /// A frame received from the wire enters the switch. Returns whether it was taken
    /// (a frame that cannot be carried is dropped and counted).
    pub fn receive(&mut self, switch: &mut Switch, bytes: &[u8]) -> bool {
        if bytes.len() < MIN_FRAME || bytes.len() > switch.frame_capacity() {
            self.stats.dropped_in = self.stats.dropped_in.saturating_add(1);
            return false;
        }
        let Some(mut frame) = switch.take_buffer(self.port, bytes.len()) else {
            self.stats.dropped_in = self.stats.dropped_in.saturating_add(1);
            return false;
        };
        frame.fill(bytes.len()).copy_from_slice(bytes);
        frame.offload = Offload::default();
        self.stats.frames_in = self.stats.frames_in.saturating_add(1);
        switch.forward(self.port, frame);
        true
    }

    /// Hands the frames waiting for the wire to `send`, at most [`QUOTA_PER_PASS`] per
    /// call (bounded work; each segment of a GSO frame counts). `send` returns false when
    /// the NIC cannot take a frame now; the frame then waits at the head of the backlog
    /// for the next call. Returns how many frames left.
    pub fn transmit(&mut self, switch: &mut Switch, send: &mut dyn FnMut(&[u8]) -> bool) -> usize {
        let mut sent = 0;
        while sent < QUOTA_PER_PASS {
            let Some(mut frame) = switch.next_for(self.port) else {
                break;
            };
            let segmented = frame.offload.is_gso();
            let last = if segmented {
                let Some(last) = gso::next_segment(&frame, &mut self.segment) else {
                    self.stats.dropped_out = self.stats.dropped_out.saturating_add(1);
                    switch.recycle(frame);
                    continue;
                };
                last
            } else {
                true
            };
            let out = if segmented {
                &mut self.segment
            } else {
                &mut frame
            };
            let completed = out.offload.needs_csum() && out.complete_checksum();
            // A refused segment is cut and completed again next time: it counts when it
            // leaves. A refused frame keeps its completed checksum: it counts now.
            if completed && !segmented {
                self.stats.checksums_completed = self.stats.checksums_completed.saturating_add(1);
            }
            if !send(out.bytes()) {
                switch.requeue(self.port, frame);
                break;
            }
            // Below QUOTA_PER_PASS (the loop's bound).
            sent = sent.saturating_add(1);
            // A sender waiting for the wire may go on.
            switch.note_drained(self.port);
            if segmented {
                self.stats.segments_out = self.stats.segments_out.saturating_add(1);
                self.stats.checksums_completed = self
                    .stats
                    .checksums_completed
                    .saturating_add(u64::from(completed));
            }
            if last {
                switch.recycle(frame);
            } else {
                // A saturated index names no segment: the frame is dropped, not resent.
                frame.segments_done = frame.segments_done.saturating_add(1);
                switch.requeue(self.port, frame);
            }
        }
        self.stats.frames_out = self.stats.frames_out.saturating_add(sent as u64);
        sent
    }

    /// Whether frames wait for the wire.
    pub fn has_frames(&self, switch: &Switch) -> bool {
        switch.has_frames_for(self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::frame::{Frame, HDR_F_NEEDS_CSUM};

    const WIRE: PortId = 1;
    /// The frontend's MAC on port 0.
    const GUEST: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn two_port_switch() -> Switch {
        let mut switch = Switch::new(2, 1518);
        switch.attach(0, Some(GUEST));
        switch.attach(WIRE, None);
        switch
    }

    fn frame(dst: [u8; 6], src: [u8; 6], len: usize) -> alloc::vec::Vec<u8> {
        let mut bytes = alloc::vec![0x5a; len];
        bytes[..6].copy_from_slice(&dst);
        bytes[6..12].copy_from_slice(&src);
        bytes
    }

    #[test]
    fn frames_cross_in_both_directions_and_runts_drop() {
        let mut switch = two_port_switch();
        let mut uplink = Uplink::new(WIRE, 1518);
        let guest = GUEST;
        let gateway = [2, 0, 0, 0, 0, 2];
        // The wire's frame reaches port 0, whose MAC it names.
        assert!(uplink.receive(&mut switch, &frame(guest, gateway, 60)));
        let delivered = switch.next_for(0).map(|f| f.bytes().to_vec());
        assert_eq!(delivered, Some(frame(guest, gateway, 60)));
        // Port 0 answers; the gateway's MAC was learned on the uplink port.
        let mut reply = Frame::with_capacity(1518);
        reply.fill(100).copy_from_slice(&frame(gateway, guest, 100));
        switch.forward(0, reply);
        let mut out = alloc::vec::Vec::new();
        assert_eq!(
            uplink.transmit(&mut switch, &mut |b| {
                out.push(b.to_vec());
                true
            }),
            1
        );
        assert_eq!(out, [frame(gateway, guest, 100)]);
        assert!(!uplink.receive(&mut switch, &[0; 13]));
        assert!(!uplink.receive(&mut switch, &[0; 1519]));
        assert_eq!(
            uplink.stats(),
            UplinkStats {
                frames_in: 1,
                frames_out: 1,
                dropped_in: 2,
                ..UplinkStats::default()
            }
        );
    }

    #[test]
    fn a_busy_nic_keeps_the_frame_and_partial_checksums_are_completed() {
        let mut switch = two_port_switch();
        let mut uplink = Uplink::new(WIRE, 1518);
        let mut partial = Frame::with_capacity(1518);
        let bytes = partial.fill(64);
        bytes.copy_from_slice(&frame([0xff; 6], [2, 0, 0, 0, 0, 1], 64));
        // Checksum over 34..64 stored at 34 + 16 (a TCP header's place), seeded with 0.
        bytes[50] = 0;
        bytes[51] = 0;
        partial.offload = Offload {
            flags: HDR_F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 16,
            ..Offload::default()
        };
        switch.forward(0, partial);
        assert!(uplink.has_frames(&switch));
        assert_eq!(uplink.transmit(&mut switch, &mut |_| false), 0);
        assert!(uplink.has_frames(&switch), "refused frame waits");
        let mut sent = alloc::vec::Vec::new();
        uplink.transmit(&mut switch, &mut |b| {
            sent.extend_from_slice(b);
            true
        });
        let sum = crate::net::frame::ones_complement_sum(&sent[34..]);
        assert_eq!(crate::net::frame::fold(sum), 0xffff, "checksum verifies");
        assert_eq!(uplink.stats().checksums_completed, 1);
    }
}
