//! Target 8: backpressure between three frontends on the switch, which one frame per
//! round (`net_frames`) never reaches. An input is a sequence of steps: a burst of 1..=16
//! unicast frames from one frontend to another, a broadcast, rx buffers of chosen sizes
//! posted, the clock moved on, a device reset. Oracles after every step:
//! - every frame whose tx chain completed is delivered once, byte-exact, in send order
//!   per sender and receiver, or counted dropped (backlog full, too big for the buffer);
//! - a tx chain completes at most once, and only in the order offered;
//! - a unicast frame drops only once its receiver drained nothing for
//!   [`TX_BLOCK_LIMIT_NS`];
//! - a sender is held back only by a full, not stalled receiver, and for less than the
//!   limit: whoever is not involved keeps sending and receiving (the stalled-port rule).
//!
//! At the end every receiver drains, then every device resets: no sender still waits,
//! the counts balance, nothing stays mapped and no frame waits in the switch.

use crate::net_fixture::{NetLayout, RawNet, MAC_A, MAC_B};
use crate::scenario::{self, Shared, FRONTEND, OTHER_FRONTEND};
use crate::world;
use arbitrary::Unstructured;
use devices::backend::DomainId;
use devices::features::EVENT_IDX;
use devices::mmio::reg;
use devices::net::switch::BACKLOG;
use devices::net::TX_BLOCK_LIMIT_NS;

const MAC_C: [u8; 6] = [0x02, 0, 0, 0, 1, 0xc];
const DOMAINS: [DomainId; 3] = [FRONTEND, OTHER_FRONTEND, 3];
const MACS: [[u8; 6]; 3] = [MAC_A, MAC_B, MAC_C];
const BROADCAST: [u8; 6] = [0xff; 6];
/// One buffer slot per descriptor: rx slots first, tx slots after them.
const QUEUE: u16 = 64;
const SLOT: usize = 2048;
const TX_AREA: usize = QUEUE as usize * SLOT;
const LAYOUT: NetLayout = NetLayout {
    queue_size: QUEUE,
    pages: 2 * TX_AREA / 4096,
};
/// Ethernet header, EtherType and the sequence number; the longest an MTU 1500 port
/// takes (with a VLAN tag's room).
const MIN_FRAME: usize = 18;
const MAX_FRAME: usize = 1518;
const HEADER: usize = 12;

/// A frame a frontend offered on its tx ring, by sequence number.
struct Sent {
    bytes: Vec<u8>,
    /// One bit per frontend it is for: one for unicast, the other two for broadcast.
    to: u8,
    completed: bool,
    /// One bit per frontend that received it.
    delivered: u8,
}

/// What the harness knows of one frontend.
#[derive(Default)]
struct Book {
    sent: Vec<Sent>,
    /// Tx descriptors offered and not yet used, with their sequence numbers, in order.
    in_flight: Vec<(u16, usize)>,
    tx_seen: u16,
    rx_seen: u16,
    /// The last sequence number received from each sender.
    last_from: [Option<usize>; 3],
    delivered: u64,
    /// Completed frames addressed to this frontend.
    expected: u64,
    /// Frames its device took out of its backlog: delivered or dropped too big (what the
    /// switch counts as draining).
    drains: u64,
    last_drain_ns: u64,
    /// A unicast frame for it dropped since it last drained: senders may not wait for it.
    stalled: bool,
    /// Its port's `dropped_backlog_full` after the last step.
    dropped: u64,
    /// The tx head that waits (sequence number), its receiver's drains then, and the
    /// clock when the wait was first seen.
    waiting: Option<(usize, u64, u64)>,
}

struct Sim {
    machine: Shared,
    nets: Vec<RawNet>,
    books: Vec<Book>,
    extra: u64,
}

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let extra = EVENT_IDX * u64::from(u.arbitrary::<bool>().unwrap_or(false));
    let mut sim = Sim::new(data, extra);
    while !u.is_empty() {
        match u.int_in_range(0..=10u8).unwrap_or(0) {
            0..=3 => sim.burst(&mut u),
            4..=6 => sim.post(&mut u),
            7 | 8 => sim.advance(&mut u),
            9 => sim.reset(&mut u),
            _ => sim.broadcast(&mut u),
        }
        sim.check();
    }
    sim.finish();
}

/// An Ethernet frame of `len` bytes carrying `seq`, its payload made from both.
fn frame(dst: [u8; 6], src: [u8; 6], seq: usize, len: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = dst.iter().chain(&src).copied().collect();
    bytes.extend([0x88, 0xb5]);
    bytes.extend((seq as u32).to_le_bytes());
    bytes.extend((0..len - MIN_FRAME).map(|i| (i * 7 + seq * 31 + usize::from(src[5])) as u8));
    bytes
}

fn frame_len(u: &mut Unstructured) -> usize {
    match u.int_in_range(0..=3u8).unwrap_or(0) {
        0 => MIN_FRAME,
        1 => MAX_FRAME,
        _ => u.int_in_range(MIN_FRAME..=MAX_FRAME).unwrap_or(60),
    }
}

impl Sim {
    fn new(data: &[u8], extra: u64) -> Self {
        let machine = scenario::machine(&DOMAINS);
        for (domain, mac) in DOMAINS.iter().zip(MACS) {
            scenario::add_net(&machine, *domain, 0, mac);
        }
        super::pick_route(&machine, &DOMAINS, data);
        let nets = DOMAINS
            .iter()
            .map(|&domain| RawNet::with_layout(&machine, domain, extra, LAYOUT))
            .collect();
        Self {
            machine,
            nets,
            books: (0..3).map(|_| Book::default()).collect(),
            extra,
        }
    }

    /// Offers `frames` on `sender`'s tx ring, as far as it has room, with one notify.
    fn offer(&mut self, sender: usize, to: u8, frames: Vec<Vec<u8>>) {
        let (net, f) = (&mut self.nets[sender], &mut self.books[sender]);
        for bytes in frames {
            let Some(desc) = (0..QUEUE).find(|d| f.in_flight.iter().all(|(x, _)| x != d)) else {
                break;
            };
            let at = TX_AREA + usize::from(desc) * SLOT;
            net.mem.write(at, &[0; HEADER]);
            net.mem.write(at + HEADER, &bytes);
            let len = (HEADER + bytes.len()) as u32;
            net.tx.set_desc(desc, net.mem.dma(at), len, 0, 0);
            net.tx.push(desc);
            f.in_flight.push((desc, f.sent.len()));
            f.sent.push(Sent {
                bytes,
                to,
                completed: false,
                delivered: 0,
            });
        }
        net.raw.notify(1);
    }

    fn burst(&mut self, u: &mut Unstructured) {
        let sender = u.int_in_range(0..=2usize).unwrap_or(0);
        let receiver = (sender + u.int_in_range(1..=2usize).unwrap_or(1)) % 3;
        let count = u.int_in_range(1..=16usize).unwrap_or(1);
        let first = self.books[sender].sent.len();
        let frames = (first..first + count)
            .map(|seq| frame(MACS[receiver], MACS[sender], seq, frame_len(u)))
            .collect();
        self.offer(sender, 1 << receiver, frames);
    }

    fn broadcast(&mut self, u: &mut Unstructured) {
        let sender = u.int_in_range(0..=2usize).unwrap_or(0);
        let seq = self.books[sender].sent.len();
        let bytes = frame(BROADCAST, MACS[sender], seq, frame_len(u));
        self.offer(sender, 0b111 & !(1 << sender), vec![bytes]);
    }

    /// Rx buffers, mostly room for any frame, sometimes smaller (12..=2048 bytes).
    fn post(&mut self, u: &mut Unstructured) {
        let i = u.int_in_range(0..=2usize).unwrap_or(0);
        let (net, f) = (&mut self.nets[i], &self.books[i]);
        for _ in 0..u.int_in_range(0..=24u8).unwrap_or(0) {
            let len = match u.int_in_range(0..=2u8).unwrap_or(0) {
                0 => u.int_in_range(HEADER as u32..=SLOT as u32).unwrap_or(64),
                _ => SLOT as u32,
            };
            post_one(net, f.rx_seen, len);
        }
    }

    fn advance(&mut self, u: &mut Unstructured) {
        let ns = match u.int_in_range(0..=5u8).unwrap_or(0) {
            0 => 0,
            1 => u.int_in_range(1..=5_000_000).unwrap_or(1),
            2 => TX_BLOCK_LIMIT_NS - 1,
            3 => TX_BLOCK_LIMIT_NS,
            4 => u
                .int_in_range(TX_BLOCK_LIMIT_NS..=4 * TX_BLOCK_LIMIT_NS)
                .unwrap_or(0),
            _ => u64::from(u.arbitrary::<u32>().unwrap_or(0)),
        };
        self.machine.borrow_mut().advance(ns);
    }

    /// The driver resets its device and sets it up again: what it left on its tx ring is
    /// never sent (a later delivery of it fails the check), its rx buffers are gone.
    fn reset(&mut self, u: &mut Unstructured) {
        let i = u.int_in_range(0..=2usize).unwrap_or(0);
        let (net, f) = (&mut self.nets[i], &mut self.books[i]);
        net.restart_in_place(self.extra);
        f.in_flight.clear();
        f.waiting = None;
        f.tx_seen = 0;
        f.rx_seen = 0;
    }

    /// Takes in what the devices did in the step and checks every oracle.
    fn check(&mut self) {
        let now = self.machine.borrow().now_ns;
        // Broadcasts completed in this step, per receiver: drops they may account for.
        let mut broadcasts = [0u64; 3];
        let mut completed_for = [0u64; 3];
        for (net, f) in self.nets.iter().zip(&mut self.books) {
            while f.tx_seen != net.tx.used_idx() {
                let (id, _) = net.tx.used(f.tx_seen);
                f.tx_seen = f.tx_seen.wrapping_add(1);
                // The device serves its tx ring in order and answers in that order: a
                // chain completed out of order is a frame sent out of order.
                let oldest = f.in_flight.first().map(|&(d, _)| u32::from(d));
                assert_eq!(oldest, Some(id), "tx used twice, or out of order");
                let (_, seq) = f.in_flight.remove(0);
                let sent = &mut f.sent[seq];
                sent.completed = true;
                let flooded = u64::from(sent.to.count_ones() > 1);
                for (r, (all, flood)) in completed_for.iter_mut().zip(&mut broadcasts).enumerate() {
                    *all += u64::from(sent.to >> r & 1);
                    *flood += u64::from(sent.to >> r & 1) * flooded;
                }
            }
        }
        for (f, count) in self.books.iter_mut().zip(completed_for) {
            f.expected += count;
        }
        for r in 0..3 {
            self.receive(r);
        }
        let machine = self.machine.borrow();
        let backend = &machine.backend;
        let mut backlog = [0u64; 3];
        for (r, f) in self.books.iter_mut().enumerate() {
            let counters = backend.counters(r).expect("device");
            let port = backend.port_stats(r).expect("port");
            assert_eq!(counters.request_errors, 0, "device {r}: refused");
            assert_eq!(counters.queue_errors, 0, "device {r}: a queue broke");
            assert_eq!(port.dropped_no_pool, 0, "the pool outlasts every backlog");
            let drains = f.delivered + counters.rx_dropped_too_big;
            assert_eq!(port.frames_out, drains, "port {r}: frames out, not drained");
            backlog[r] = f
                .expected
                .checked_sub(port.dropped_backlog_full + drains)
                .expect("more frames delivered or dropped than completed for the port");
            assert!(
                backlog[r] <= BACKLOG as u64,
                "port {r}: {} frames completed for it neither delivered nor counted",
                backlog[r] - BACKLOG as u64
            );
            assert_eq!(
                backend.switch().has_frames_for(r),
                backlog[r] > 0,
                "port {r}: {} frames completed for it are neither delivered nor counted",
                backlog[r]
            );
            // A unicast frame for a frontend drops only when a sender waited for it the
            // limit in vain (`NetDevice::must_wait`), or it is stalled since (the same
            // wait ran out before): the wait began after its last drain, so now is at
            // least the limit past that drain. Drops beyond the broadcasts completed in
            // this step (which drop at once when full) are unicast.
            let unicast_drops =
                (port.dropped_backlog_full - f.dropped).saturating_sub(broadcasts[r]);
            if unicast_drops > 0 {
                assert!(
                    now >= f.last_drain_ns + TX_BLOCK_LIMIT_NS,
                    "port {r}: {unicast_drops} unicast frames dropped {} ns after it drained",
                    now - f.last_drain_ns
                );
            }
            // Order within the step is unknown: a drain in it came after any drop (a drop
            // after a drain at the same clock would have failed above), and ends a stall.
            if drains != f.drains {
                f.drains = drains;
                f.last_drain_ns = now;
                f.stalled = false;
            } else if unicast_drops > 0 {
                f.stalled = true;
            }
            f.dropped = port.dropped_backlog_full;
        }
        // A tx ring holds frames back only behind a unicast head for a full, not stalled
        // receiver, for less than the limit since that receiver last drained.
        let receivers: Vec<(u64, bool)> =
            self.books.iter().map(|f| (f.drains, f.stalled)).collect();
        for (s, f) in self.books.iter_mut().enumerate() {
            let Some(&(_, seq)) = f.in_flight.first() else {
                f.waiting = None;
                continue;
            };
            let to = f.sent[seq].to;
            assert_eq!(to.count_ones(), 1, "{s}: held back behind a broadcast");
            let r = to.trailing_zeros() as usize;
            assert_eq!(backlog[r], BACKLOG as u64, "{s}: held back, {r} has room");
            assert!(!receivers[r].1, "{s}: held back by {r}, which is stalled");
            let since = match f.waiting {
                Some((head, drains, since)) if head == seq && drains == receivers[r].0 => since,
                _ => now,
            };
            f.waiting = Some((seq, receivers[r].0, since));
            assert!(
                now - since < TX_BLOCK_LIMIT_NS,
                "{s}: held back by {r} for {} ns",
                now - since
            );
        }
        // The host must run the backend when the first wait runs out, and need not else.
        let first_wait = self.books.iter().filter_map(|f| Some(f.waiting?.2)).min();
        let deadline = first_wait.map(|since| since + TX_BLOCK_LIMIT_NS);
        assert_eq!(backend.next_deadline(), deadline, "not when a wait ends");
        let held: u64 = (0..3)
            .map(|d| backend.counters(d).expect("device").pages_held())
            .sum();
        assert_eq!(held, world::with(|w| w.live_mappings()) as u64);
        scenario::assert_no_violations();
    }

    /// Checks each frame `r` received since the last step against what was sent.
    fn receive(&mut self, r: usize) {
        while self.books[r].rx_seen != self.nets[r].rx.used_idx() {
            let (net, f) = (&self.nets[r], &mut self.books[r]);
            let got = net.received(f.rx_seen, 1);
            f.rx_seen = f.rx_seen.wrapping_add(1);
            assert!(got.len() >= HEADER + MIN_FRAME, "{r}: truncated: {got:?}");
            assert_eq!(got[..10], [0; 10], "{r}: no offload was asked for");
            let frame = &got[HEADER..];
            let s = MACS.iter().position(|m| frame[6..12] == m[..]);
            let s = s.expect("a frame from no frontend");
            let seq = u32::from_le_bytes(frame[14..18].try_into().unwrap()) as usize;
            assert!(
                f.last_from[s].is_none_or(|last| last < seq),
                "{s} -> {r}: frame {seq} after {:?}: duplicated or reordered",
                f.last_from[s]
            );
            f.last_from[s] = Some(seq);
            f.delivered += 1;
            let sent = self.books[s].sent.get_mut(seq).expect("a frame never sent");
            assert!(sent.completed, "{s} -> {r}: {seq} never completed");
            assert_ne!(sent.to & (1 << r), 0, "{s} -> {r}: frame {seq} not for it");
            assert_eq!(sent.delivered & (1 << r), 0, "{s} -> {r}: {seq} twice");
            sent.delivered |= 1 << r;
            assert!(sent.bytes == frame, "{s} -> {r}: {seq} not byte-exact");
        }
    }

    /// What every frontend drained and still has on its tx ring.
    fn progress(&self) -> Vec<(u64, usize)> {
        self.books
            .iter()
            .map(|f| (f.drains, f.in_flight.len()))
            .collect()
    }

    /// Every receiver takes all there is, repeatedly, until nothing moves: then no sender
    /// waits and the counts balance ([`Self::check`]: no backlog); after every device
    /// resets nothing is mapped and nothing waits in the switch.
    fn finish(mut self) {
        loop {
            let before = self.progress();
            for (net, f) in self.nets.iter_mut().zip(&self.books) {
                while net.posted.wrapping_sub(f.rx_seen) < QUEUE {
                    post_one(net, f.rx_seen, SLOT as u32);
                }
            }
            self.check();
            if self.progress() == before {
                break;
            }
        }
        for (s, f) in self.books.iter().enumerate() {
            assert!(f.in_flight.is_empty(), "{s} held back when all drained");
            assert_eq!(f.dropped + f.drains, f.expected, "{s}: the counts balance");
        }
        for net in &self.nets {
            net.raw.write(reg::STATUS, 0);
        }
        for (port, domain) in DOMAINS.iter().enumerate() {
            let mapped = world::with(|w| w.live_mappings_of(*domain));
            assert_eq!(mapped, 0, "dom{domain}'s pages still mapped after a reset");
            let waits = self.machine.borrow().backend.switch().has_frames_for(port);
            assert!(!waits, "a frame still waits for port {port} after the end");
        }
        scenario::assert_no_violations();
    }
}

/// One rx buffer of `len` bytes in the slot of the descriptor it goes in, if the ring
/// has room: a descriptor is free again once its used entry was read (`rx_seen`), not
/// when the device used it, or its frame would be overwritten before it is checked.
fn post_one(net: &mut RawNet, rx_seen: u16, len: u32) {
    if net.posted.wrapping_sub(rx_seen) < QUEUE {
        let offset = usize::from(net.next_rx_desc()) * SLOT;
        net.post_rx(offset, len);
    }
}
