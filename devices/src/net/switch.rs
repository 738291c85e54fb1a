//! An L2 switch inside the backend: frontends' virtio-net ports and the uplink exchange
//! frames by MAC address. Memory is fixed when it is built: a pool of frame buffers (see
//! [`FramePool`]), a bounded backlog per port, a bounded MAC table.
//!
//! A frontend's port is pinned to the MAC its device was configured with: a frame from it
//! with any other source is dropped and counted (no spoofing another guest's or a wire
//! host's address), and its MAC is never learned elsewhere. Only unpinned ports (the
//! uplink) learn addresses, never a pinned one. Unicast to an unknown address goes to the
//! learning ports only: every frontend's address is known, so an unknown one is on the
//! wire, and no other frontend sees the frame.

use super::frame::Frame;
use super::pool::{FramePool, GSO_FRAMES};
use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// A port number on the switch.
pub type PortId = usize;

/// Frames waiting per port for the driver to post rx buffers; beyond this they drop.
pub const BACKLOG: usize = 64;
/// Learned MAC addresses; the oldest is forgotten first.
pub const MAC_TABLE_SIZE: usize = 256;

/// Per-port switch statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    pub frames_in: u64,
    pub frames_out: u64,
    /// Frames for this port dropped because its backlog was full (no rx buffers posted).
    pub dropped_backlog_full: u64,
    /// Frames from this port dropped because no frame buffer was free.
    pub dropped_no_pool: u64,
    /// Frames from this (pinned) port dropped because their source was not its MAC.
    pub dropped_spoofed: u64,
}

struct Port {
    backlog: VecDeque<Frame>,
    stats: PortStats,
    /// A device or uplink is on this port: only such ports get flooded frames.
    attached: bool,
    /// Times the device on this port took a frame or segment into an rx buffer (or
    /// dropped one too big for its buffers): what a sender held back for it waits to see
    /// move. Wrapping: only compared for a change.
    drained: u64,
    /// `drained` when a sender waited [`super::TX_BLOCK_LIMIT_NS`] for this port in vain:
    /// until it drains again, frames for it drop at once instead of holding senders back.
    stalled_at: Option<u64>,
    /// The one source MAC a frontend's port may send from; `None`: a learning port.
    pinned: Option<[u8; 6]>,
}

pub struct Switch {
    ports: Vec<Port>,
    pool: FramePool,
    /// The 64 KiB GSO frames one port's backlog may hold: an equal share of the
    /// [`GSO_FRAMES`] large buffers per port, so however many other ports stop taking
    /// frames, the buffers they hold leave every other port its share.
    gso_share: usize,
    macs: VecDeque<([u8; 6], PortId)>,
    /// Frames ever queued to a port: lets the host see that a round switched something.
    enqueued: u64,
    /// The host's clock at the start of this round (ns), for how long senders wait.
    now_ns: u64,
}

impl Switch {
    /// A switch for up to `max_ports` ports carrying frames of up to `frame_capacity` bytes,
    /// and GSO frames of up to 64 KiB.
    pub fn new(max_ports: usize, frame_capacity: usize) -> Self {
        // Host configuration: a size beyond memory fails the allocation, it does not wrap.
        let frames = max_ports.saturating_mul(BACKLOG + 2);
        let pool = FramePool::new(frames, frame_capacity, GSO_FRAMES);
        let mut ports = Vec::with_capacity(max_ports);
        for _ in 0..max_ports {
            ports.push(Port {
                backlog: VecDeque::with_capacity(BACKLOG),
                stats: PortStats::default(),
                attached: false,
                drained: 0,
                stalled_at: None,
                pinned: None,
            });
        }
        Self {
            ports,
            pool,
            gso_share: GSO_FRAMES
                .checked_div(max_ports)
                .unwrap_or(GSO_FRAMES)
                .max(1),
            macs: VecDeque::with_capacity(MAC_TABLE_SIZE),
            enqueued: 0,
            now_ns: 0,
        }
    }

    /// The host's clock for this round: devices have none of their own.
    pub fn set_now(&mut self, now_ns: u64) {
        self.now_ns = now_ns;
    }

    pub fn now(&self) -> u64 {
        self.now_ns
    }

    /// A device or uplink now uses `port`: a frontend's device pinned to its `mac`, the
    /// uplink learning (`None`).
    pub fn attach(&mut self, port: PortId, mac: Option<[u8; 6]>) {
        if let Some(p) = self.ports.get_mut(port) {
            p.attached = true;
            p.pinned = mac;
            // A new device is waited for afresh, whatever its predecessor did.
            p.stalled_at = None;
        }
        if let Some(mac) = mac {
            // A wire host may have been learned with this address before: it is the
            // frontend's now.
            self.macs.retain(|(m, _)| *m != mac);
        }
    }

    /// The device on `port` is gone: the frames waiting for it go back to the pool and
    /// it is flooded no more. It stays pinned, so no one else may claim its address.
    pub fn detach(&mut self, port: PortId) {
        let Self { ports, pool, .. } = self;
        let Some(p) = ports.get_mut(port) else {
            return;
        };
        p.attached = false;
        while let Some(frame) = p.backlog.pop_front() {
            pool.give_back(frame);
        }
    }

    pub fn port_count(&self) -> usize {
        self.ports.len()
    }

    /// The largest frame that is not GSO.
    pub fn frame_capacity(&self) -> usize {
        self.pool.small_capacity()
    }

    pub fn stats(&self, port: PortId) -> PortStats {
        self.ports.get(port).map(|p| p.stats).unwrap_or_default()
    }

    /// A free frame buffer of at least `len` bytes for a port to fill, if the pool has one.
    pub fn take_buffer(&mut self, port: PortId, len: usize) -> Option<Frame> {
        let frame = self.pool.take(len);
        if frame.is_none() {
            if let Some(p) = self.ports.get_mut(port) {
                p.stats.dropped_no_pool = p.stats.dropped_no_pool.saturating_add(1);
            }
        }
        frame
    }

    /// Returns a buffer to the pool.
    pub fn recycle(&mut self, frame: Frame) {
        self.pool.give_back(frame);
    }

    /// Switches a frame a port sent: check (pinned port) or learn (learning port) its
    /// source, deliver it to the port that owns the destination, to the learning ports
    /// when that is unknown, or to every other port when broadcast or multicast.
    pub fn forward(&mut self, from: PortId, frame: Frame) {
        let Some(port) = self.ports.get_mut(from) else {
            self.recycle(frame);
            return;
        };
        port.stats.frames_in = port.stats.frames_in.saturating_add(1);
        let source = frame.source();
        match port.pinned {
            Some(mac) if mac != source => {
                port.stats.dropped_spoofed = port.stats.dropped_spoofed.saturating_add(1);
                self.recycle(frame);
                return;
            }
            Some(_) => {}
            None if source[0] & 1 == 0 => self.learn(source, from),
            None => {}
        }
        let destination = frame.destination();
        if destination[0] & 1 != 0 {
            self.flood(from, frame, |_| true);
            return;
        }
        match self.owner(destination) {
            Some(port) if port == from => self.recycle(frame),
            Some(port) => self.enqueue(port, frame),
            None => self.flood(from, frame, |p| p.pinned.is_none()),
        }
    }

    /// The port a unicast address belongs to: a pinned port's own (attached or not),
    /// else a learned one.
    fn owner(&self, mac: [u8; 6]) -> Option<PortId> {
        self.ports
            .iter()
            .position(|p| p.pinned == Some(mac))
            .or_else(|| {
                self.macs
                    .iter()
                    .find(|(m, _)| *m == mac)
                    .map(|(_, port)| *port)
            })
    }

    /// Learns `mac` on a learning port, unless a frontend's port is pinned to it.
    fn learn(&mut self, mac: [u8; 6], port: PortId) {
        if self.ports.iter().any(|p| p.pinned == Some(mac)) {
            return;
        }
        if let Some(entry) = self.macs.iter_mut().find(|(m, _)| *m == mac) {
            entry.1 = port;
            return;
        }
        if self.macs.len() == MAC_TABLE_SIZE {
            self.macs.pop_front();
        }
        self.macs.push_back((mac, port));
    }

    /// Copies `frame` to every attached port but `from` that `wanted` accepts.
    fn flood(&mut self, from: PortId, frame: Frame, wanted: impl Fn(&Port) -> bool) {
        let floods_to = |switch: &Self, port: PortId| {
            port != from
                && switch
                    .ports
                    .get(port)
                    .is_some_and(|p| p.attached && wanted(p))
        };
        let targets = 0..self.ports.len();
        let Some(last) = targets.rev().find(|&p| floods_to(self, p)) else {
            self.recycle(frame);
            return;
        };
        for port in 0..last {
            if !floods_to(self, port) {
                continue;
            }
            // Checked before the copy: a full port must not cost a 64 KiB memcpy.
            if !self.has_room(port, &frame) {
                if let Some(p) = self.ports.get_mut(port) {
                    p.stats.dropped_backlog_full = p.stats.dropped_backlog_full.saturating_add(1);
                }
                continue;
            }
            if let Some(mut copy) = self.take_buffer(from, frame.len()) {
                copy.copy_from(&frame);
                self.enqueue(port, copy);
            }
        }
        self.enqueue(last, frame);
    }

    /// The 64 KiB GSO frames one port's backlog may hold (see the field).
    pub fn gso_share(&self) -> usize {
        self.gso_share
    }

    /// Whether `port`'s backlog takes `frame`: fewer than [`BACKLOG`] frames waiting, and
    /// fewer large ones than its share if it is large.
    fn has_room(&self, port: PortId, frame: &Frame) -> bool {
        self.room_for(port, frame.capacity() > self.pool.small_capacity())
    }

    fn room_for(&self, port: PortId, large: bool) -> bool {
        let small = self.pool.small_capacity();
        self.ports.get(port).is_some_and(|p| {
            p.backlog.len() < BACKLOG
                && (!large
                    || p.backlog.iter().filter(|f| f.capacity() > small).count() < self.gso_share)
        })
    }

    /// Whether `port`'s backlog takes a frame of `len` bytes now (see [`Self::has_room`]).
    pub fn can_take(&self, port: PortId, len: usize) -> bool {
        self.room_for(port, len > self.pool.small_capacity())
    }

    /// The port a frame from `from` with these addresses would wait for when it cannot
    /// take it: the attached port that owns a unicast `destination`, a frontend's
    /// (pinned) or the uplink's (learned: the host's gateway). The uplink drains as its
    /// NIC sends, so a sender waits for it as for a frontend that drains; dropping
    /// instead costs a TCP sender a resend and half its window each time. None for what
    /// is dropped anyway (a spoofed source, a frame for its sender or a detached port)
    /// and for broadcast, multicast and unknown destinations (flooded).
    pub fn holds_back(
        &self,
        from: PortId,
        destination: [u8; 6],
        source: [u8; 6],
    ) -> Option<PortId> {
        let sender = self.ports.get(from)?;
        if sender.pinned.is_some_and(|mac| mac != source) || destination[0] & 1 != 0 {
            return None;
        }
        let port = self.owner(destination)?;
        let owner = self.ports.get(port)?;
        (port != from && owner.attached).then_some(port)
    }

    /// How often `port` drained so far (wrapping; see the field).
    pub fn drained(&self, port: PortId) -> u64 {
        self.ports.get(port).map_or(0, |p| p.drained)
    }

    /// The device on `port` took a frame or a segment out of its backlog for good.
    pub fn note_drained(&mut self, port: PortId) {
        if let Some(p) = self.ports.get_mut(port) {
            p.drained = p.drained.wrapping_add(1);
        }
    }

    /// A sender waited long enough for `port`: until it drains, it holds no one back.
    pub fn mark_stalled(&mut self, port: PortId) {
        if let Some(p) = self.ports.get_mut(port) {
            p.stalled_at = Some(p.drained);
        }
    }

    /// Whether `port` was found stalled and has drained nothing since.
    pub fn is_stalled(&self, port: PortId) -> bool {
        self.ports
            .get(port)
            .is_some_and(|p| p.stalled_at == Some(p.drained))
    }

    fn enqueue(&mut self, port: PortId, frame: Frame) {
        let room = self.has_room(port, &frame);
        let Some(p) = self.ports.get_mut(port) else {
            self.pool.give_back(frame);
            return;
        };
        // A detached port's address stays its own: frames for it end here.
        if !p.attached {
            self.pool.give_back(frame);
            return;
        }
        if !room {
            p.stats.dropped_backlog_full = p.stats.dropped_backlog_full.saturating_add(1);
            self.pool.give_back(frame);
            return;
        }
        p.backlog.push_back(frame);
        // Only compared for a change (`Backend::run`): wrapping keeps every enqueue seen.
        self.enqueued = self.enqueued.wrapping_add(1);
    }

    pub fn enqueued(&self) -> u64 {
        self.enqueued
    }

    /// The next frame waiting for `port`, if any.
    pub fn next_for(&mut self, port: PortId) -> Option<Frame> {
        let p = self.ports.get_mut(port)?;
        let frame = p.backlog.pop_front()?;
        p.stats.frames_out = p.stats.frames_out.saturating_add(1);
        Some(frame)
    }

    /// Puts a frame back at the head of a port's backlog (no rx buffer for it yet).
    pub fn requeue(&mut self, port: PortId, frame: Frame) {
        match self.ports.get_mut(port) {
            Some(p) => {
                p.stats.frames_out = p.stats.frames_out.saturating_sub(1);
                p.backlog.push_front(frame);
            }
            None => self.pool.give_back(frame),
        }
    }

    pub fn has_frames_for(&self, port: PortId) -> bool {
        self.ports.get(port).is_some_and(|p| !p.backlog.is_empty())
    }
}
