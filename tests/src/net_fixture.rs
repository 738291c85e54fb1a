//! Two hand-driven virtio-net frontends on the switch, for tests and fuzz targets.

use crate::rings::{Granted, RawDriver, RawQueue};
use crate::scenario::{self, Shared, FRONTEND, OTHER_FRONTEND};
use devices::features;
use devices::queue::{DESC_F_NEXT, DESC_F_WRITE};

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 1, 0xa];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 1, 0xb];
/// Rx buffers live in the first 8 pages of `mem`, tx data after them.
pub const RX_AREA: usize = 0;
pub const TX_AREA: usize = 8 * 4096;
pub const QUEUE_SIZE: u16 = 16;

pub struct RawNet {
    pub raw: RawDriver,
    pub rx: RawQueue,
    pub tx: RawQueue,
    pub mem: Granted,
    /// Rx descriptors posted so far (descriptor i is the i-th buffer posted).
    pub posted: u16,
    /// Where each posted rx buffer lives (offset in `mem`).
    pub rx_offsets: Vec<usize>,
}

impl RawNet {
    pub fn new(machine: &Shared, domain: u16, extra: u64) -> Self {
        let (base, _) = scenario::window(0);
        let raw = RawDriver::new(machine, domain, base);
        let (rx, tx) = start(&raw, extra);
        Self {
            raw,
            rx,
            tx,
            mem: Granted::new(domain, 16, false),
            posted: 0,
            rx_offsets: Vec::new(),
        }
    }

    /// Resets the device and brings it up again with fresh rings and no rx buffers.
    pub fn restart(&mut self, extra: u64) {
        self.raw.write(devices::mmio::reg::STATUS, 0);
        let (rx, tx) = start(&self.raw, extra);
        self.rx = rx;
        self.tx = tx;
        self.posted = 0;
        self.rx_offsets.clear();
    }

    /// A fresh machine with A (dom1, port 0) and B (dom2, port 1).
    pub fn pair(extra_a: u64, extra_b: u64) -> (Shared, RawNet, RawNet) {
        let machine = scenario::machine(&[FRONTEND, OTHER_FRONTEND]);
        scenario::add_net(&machine, FRONTEND, 0, MAC_A);
        scenario::add_net(&machine, OTHER_FRONTEND, 0, MAC_B);
        let a = RawNet::new(&machine, FRONTEND, extra_a);
        let b = RawNet::new(&machine, OTHER_FRONTEND, extra_b);
        (machine, a, b)
    }

    /// Posts one single-descriptor rx buffer of `len` bytes at `offset`; notifies.
    pub fn post_rx(&mut self, offset: usize, len: u32) -> u16 {
        let index = self.posted % QUEUE_SIZE;
        self.rx
            .set_desc(index, self.mem.dma(RX_AREA + offset), len, DESC_F_WRITE, 0);
        self.rx.push(index);
        self.posted += 1;
        self.rx_offsets.push(offset);
        self.raw.notify(0);
        index
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

    /// The used rx elements so far.
    pub fn used_rx(&self) -> Vec<(u32, u32)> {
        (0..self.rx.used_idx()).map(|i| self.rx.used(i)).collect()
    }

    /// The bytes of `count` used rx buffers from used index `from`, concatenated.
    pub fn received(&self, from: u16, count: u16) -> Vec<u8> {
        let mut bytes = Vec::new();
        for n in 0..count {
            let (id, len) = self.rx.used(from.wrapping_add(n));
            // Buffer `id` was the id-th posted (descriptor ids are not reused here).
            let offset = self.rx_offsets[id as usize];
            bytes.extend(self.mem.read(RX_AREA + offset, len as usize));
        }
        bytes
    }
}

impl Drop for RawNet {
    /// Resets the device first so its rings are unmapped before their pages are freed.
    fn drop(&mut self) {
        self.raw.write(devices::mmio::reg::STATUS, 0);
    }
}

/// Negotiates and sets up rx and tx, DRIVER_OK.
fn start(raw: &RawDriver, extra: u64) -> (RawQueue, RawQueue) {
    let domain = raw.domain;
    let status =
        raw.negotiate(features::VERSION_1 | features::ACCESS_PLATFORM | features::net::MAC | extra);
    assert_ne!(status & devices::mmio::status::FEATURES_OK, 0);
    let rx = RawQueue::new(domain, QUEUE_SIZE);
    let tx = RawQueue::new(domain, QUEUE_SIZE);
    raw.setup_queue(0, &rx, QUEUE_SIZE);
    raw.setup_queue(1, &tx, QUEUE_SIZE);
    raw.driver_ok();
    (rx, tx)
}
