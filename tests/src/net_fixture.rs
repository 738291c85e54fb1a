//! Two hand-driven virtio-net frontends on the switch, for tests and fuzz targets.

use crate::rings::{Granted, RawDriver, RawQueue};
use crate::scenario::{self, Shared, FRONTEND, OTHER_FRONTEND};
use devices::features;
use devices::queue::{DESC_F_NEXT, DESC_F_WRITE};

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 1, 0xa];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 1, 0xb];
/// Rx buffers live in the first 8 pages of `mem`, tx data after them (a 64 KiB frame
/// reaches page 25); with [`NetLayout::GSO`], big rx buffers from [`LARGE_RX_AREA`] on.
pub const RX_AREA: usize = 0;
pub const TX_AREA: usize = 8 * 4096;
pub const LARGE_RX_AREA: usize = 32 * 4096;
pub const QUEUE_SIZE: u16 = 16;

/// The size of a hand-driven frontend's rings and granted memory.
#[derive(Clone, Copy, Debug)]
pub struct NetLayout {
    pub queue_size: u16,
    pub pages: usize,
}

impl NetLayout {
    pub const SMALL: Self = Self {
        queue_size: QUEUE_SIZE,
        pages: 16,
    };
    /// Room for 64 KiB GSO frames both ways: 384 KiB of rx buffers after
    /// [`LARGE_RX_AREA`].
    pub const GSO: Self = Self {
        queue_size: 64,
        pages: 128,
    };
}

pub struct RawNet {
    pub raw: RawDriver,
    pub rx: RawQueue,
    pub tx: RawQueue,
    pub mem: Granted,
    /// Rx descriptors posted so far (descriptor posted % queue size is the next).
    pub posted: u16,
    /// Where the buffer last posted at each rx descriptor lives (offset in `mem`).
    pub rx_offsets: Vec<usize>,
    queue_size: u16,
    pages: usize,
    /// Used rx entries [`Self::drain_frames`] has returned already.
    drained: u16,
    /// EVENT_IDX negotiated: rx buffers are posted with a kick only when the device
    /// asked for one, as Linux does, so a device that forgets to ask is stuck.
    event_idx: bool,
}

impl RawNet {
    pub fn new(machine: &Shared, domain: u16, extra: u64) -> Self {
        Self::with_layout(machine, domain, extra, NetLayout::SMALL)
    }

    pub fn with_layout(machine: &Shared, domain: u16, extra: u64, layout: NetLayout) -> Self {
        let (base, _) = scenario::window(0);
        let raw = RawDriver::new(machine, domain, base);
        let (rx, tx) = start(&raw, extra, layout.queue_size);
        Self {
            raw,
            rx,
            tx,
            mem: Granted::new(domain, layout.pages, false),
            posted: 0,
            rx_offsets: vec![0; usize::from(layout.queue_size)],
            queue_size: layout.queue_size,
            pages: layout.pages,
            drained: 0,
            event_idx: extra & features::EVENT_IDX != 0,
        }
    }

    /// Resets the device and brings it up again with fresh rings and no rx buffers.
    pub fn restart(&mut self, extra: u64) {
        self.raw.write(devices::mmio::reg::STATUS, 0);
        let (rx, tx) = start(&self.raw, extra, self.queue_size);
        self.rx = rx;
        self.tx = tx;
        self.posted = 0;
        self.drained = 0;
        self.event_idx = extra & features::EVENT_IDX != 0;
    }

    /// Like [`Self::restart`], on the same ring pages and grants, emptied: a harness
    /// restarting many times does not grow the grant table.
    pub fn restart_in_place(&mut self, extra: u64) {
        self.raw.write(devices::mmio::reg::STATUS, 0);
        self.rx.clear();
        self.tx.clear();
        set_up(&self.raw, extra, &self.rx, &self.tx, self.queue_size);
        self.posted = 0;
        self.drained = 0;
        self.event_idx = extra & features::EVENT_IDX != 0;
    }

    /// A fresh machine with A (dom1, port 0) and B (dom2, port 1).
    pub fn pair(extra_a: u64, extra_b: u64) -> (Shared, RawNet, RawNet) {
        Self::pair_with(extra_a, extra_b, NetLayout::SMALL)
    }

    pub fn pair_with(extra_a: u64, extra_b: u64, layout: NetLayout) -> (Shared, RawNet, RawNet) {
        let machine = scenario::machine(&[FRONTEND, OTHER_FRONTEND]);
        scenario::add_net(&machine, FRONTEND, 0, MAC_A);
        scenario::add_net(&machine, OTHER_FRONTEND, 0, MAC_B);
        let a = RawNet::with_layout(&machine, FRONTEND, extra_a, layout);
        let b = RawNet::with_layout(&machine, OTHER_FRONTEND, extra_b, layout);
        (machine, a, b)
    }

    /// The next rx descriptor to post.
    pub fn next_rx_desc(&self) -> u16 {
        self.posted % self.queue_size
    }

    /// Posts one single-descriptor rx buffer of `len` bytes at `offset`; notifies (with
    /// EVENT_IDX, only if the device asked).
    pub fn post_rx(&mut self, offset: usize, len: u32) -> u16 {
        let old = self.rx.avail_idx();
        let index = self.add_rx(offset, len);
        self.kick_rx_since(old);
        index
    }

    /// Makes one rx buffer available without notifying.
    fn add_rx(&mut self, offset: usize, len: u32) -> u16 {
        let index = self.next_rx_desc();
        self.rx
            .set_desc(index, self.mem.dma(RX_AREA + offset), len, DESC_F_WRITE, 0);
        self.rx.push(index);
        self.posted = self.posted.wrapping_add(1);
        if let Some(slot) = self.rx_offsets.get_mut(usize::from(index)) {
            *slot = offset;
        }
        index
    }

    /// Notifies rx for what was added since avail.idx was `old`, as Linux's
    /// `virtqueue_kick` would (with EVENT_IDX, only if the device asked).
    fn kick_rx_since(&mut self, old: u16) {
        if self.rx.avail_idx() != old && (!self.event_idx || self.rx.needs_kick_since(old)) {
            self.raw.notify(0);
        }
    }

    /// Sends header + frame as a two-descriptor chain (one when the frame is empty).
    pub fn send(&mut self, header: [u8; 12], frame: &[u8]) {
        self.mem.write(TX_AREA, &header);
        self.mem.write(TX_AREA + 64, frame);
        if frame.is_empty() {
            self.tx.set_desc(0, self.mem.dma(TX_AREA), 12, 0, 0);
        } else {
            self.tx
                .set_desc(0, self.mem.dma(TX_AREA), 12, DESC_F_NEXT, 1);
            self.tx
                .set_desc(1, self.mem.dma(TX_AREA + 64), frame.len() as u32, 0, 0);
        }
        self.tx.push(0);
        self.raw.notify(1);
    }

    /// Sends every (header, frame) as a two-descriptor chain (descriptors 2i and 2i + 1),
    /// the frames laid out one after the other from `at` in `mem`, with one notification
    /// for them all, as a driver flushing a burst does. Returns the tx used index before.
    pub fn send_burst(&mut self, at: usize, frames: &[([u8; 12], &[u8])]) -> u16 {
        let before = self.tx.used_idx();
        let mut offset = at;
        for (i, (header, frame)) in frames.iter().enumerate() {
            let desc = u16::try_from(2 * i).unwrap();
            assert!(desc + 1 < self.queue_size, "burst larger than the tx ring");
            self.mem.write(offset, header);
            self.mem.write(offset + 64, frame);
            self.tx
                .set_desc(desc, self.mem.dma(offset), 12, DESC_F_NEXT, desc + 1);
            self.tx.set_desc(
                desc + 1,
                self.mem.dma(offset + 64),
                frame.len() as u32,
                0,
                0,
            );
            self.tx.push(desc);
            offset += (64 + frame.len()).next_multiple_of(64);
        }
        self.raw.notify(1);
        before
    }

    /// Posts `buf_len`-byte rx buffers from [`LARGE_RX_AREA`] on, refilling the ring as
    /// the device uses them, until a refill brings nothing more. Returns every frame
    /// received since the last drain, virtio header included (put together from its
    /// num_buffers buffers when `merged`, MRG_RXBUF).
    pub fn drain_frames(&mut self, buf_len: usize, merged: bool) -> Vec<Vec<u8>> {
        let mut buffers = Vec::new();
        let mut seen = self.drained;
        // As many buffers as fit the memory after LARGE_RX_AREA, each in its own slot.
        let slots = (self.pages * 4096).saturating_sub(LARGE_RX_AREA) / buf_len;
        let most = self.queue_size.min(slots as u16);
        loop {
            // A refill is one batch and one kick, as Linux's rx refill does.
            let outstanding = self.posted.wrapping_sub(seen);
            let old = self.rx.avail_idx();
            for _ in outstanding..most {
                let slot = usize::from(self.posted) % slots;
                self.add_rx(LARGE_RX_AREA + slot * buf_len, buf_len as u32);
            }
            self.kick_rx_since(old);
            let used = self.rx.used_idx();
            if used == seen {
                self.drained = seen;
                break;
            }
            for n in 0..used.wrapping_sub(seen) {
                buffers.push(self.received(seen.wrapping_add(n), 1));
            }
            seen = used;
        }
        let mut frames = Vec::new();
        let mut rest = buffers.into_iter();
        while let Some(mut frame) = rest.next() {
            let count = match frame.get(10..12) {
                Some(&[lo, hi]) if merged => u16::from_le_bytes([lo, hi]),
                _ => 1,
            };
            for _ in 1..count {
                frame.extend(rest.next().unwrap_or_default());
            }
            frames.push(frame);
        }
        frames
    }

    /// The used rx elements so far.
    pub fn used_rx(&self) -> Vec<(u32, u32)> {
        (0..self.rx.used_idx()).map(|i| self.rx.used(i)).collect()
    }

    /// The bytes of `count` used rx buffers from used index `from`, concatenated.
    pub fn received(&self, from: u16, count: u16) -> Vec<u8> {
        let mut bytes = Vec::new();
        for n in 0..count {
            let (id, len) = self.rx.used(from.wrapping_add(n));
            // The buffer posted last at descriptor `id`.
            let offset = self.rx_offsets[id as usize];
            bytes.extend(self.mem.read(RX_AREA + offset, len as usize));
        }
        bytes
    }
}

/// An Ethernet frame of `len` bytes from `src` to `dst` (EtherType 0x88b5, the local
/// experimental one) with a patterned payload.
pub fn ethernet_frame(dst: [u8; 6], src: [u8; 6], len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    for (i, b) in f[14..].iter_mut().enumerate() {
        *b = (i * 13 % 256) as u8;
    }
    f
}

/// Everything the uplink hands the host's NIC now (the NIC takes every frame).
pub fn wire_frames(machine: &Shared, uplink: usize) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    machine
        .borrow_mut()
        .backend
        .uplink_transmit(uplink, &mut |bytes| {
            sent.push(bytes.to_vec());
            true
        });
    sent
}

impl Drop for RawNet {
    /// Resets the device first so its rings are unmapped before their pages are freed.
    fn drop(&mut self) {
        self.raw.write(devices::mmio::reg::STATUS, 0);
    }
}

/// Negotiates and sets up rx and tx, DRIVER_OK.
fn start(raw: &RawDriver, extra: u64, queue_size: u16) -> (RawQueue, RawQueue) {
    let rx = RawQueue::new(raw.domain, queue_size);
    let tx = RawQueue::new(raw.domain, queue_size);
    set_up(raw, extra, &rx, &tx, queue_size);
    (rx, tx)
}

/// Negotiates and sets up rx and tx on the given rings, DRIVER_OK.
fn set_up(raw: &RawDriver, extra: u64, rx: &RawQueue, tx: &RawQueue, queue_size: u16) {
    let status =
        raw.negotiate(features::VERSION_1 | features::ACCESS_PLATFORM | features::net::MAC | extra);
    assert_ne!(status & devices::mmio::status::FEATURES_OK, 0);
    raw.setup_queue(0, rx, queue_size);
    raw.setup_queue(1, tx, queue_size);
    raw.driver_ok();
}
