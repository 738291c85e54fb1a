//! [`TestQueue`]: the driver's side of a split virtqueue, laid out in a [`TestMemory`].

use super::memory::TestMemory;
use crate::queue::{Descriptor, QueueConfig, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// One buffer of a chain, as its descriptor names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    pub addr: u64,
    pub len: u32,
    pub writable: bool,
}

impl Buffer {
    fn flags(&self) -> u16 {
        if self.writable {
            DESC_F_WRITE
        } else {
            0
        }
    }
}

/// A driver's split ring: descriptor table and avail ring granted read-only (as Linux
/// grants what the device only reads), used ring writable, each on its own pages.
/// Descriptors are handed out in table order, wrapping: a test that reuses slots owns
/// the consequences, as a driver does.
pub struct TestQueue {
    mem: TestMemory,
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    next_desc: u16,
    avail_idx: u16,
    /// used.idx as far as [`Self::used`] has read.
    used_seen: u16,
    /// The buffers of each chain added, by head.
    chains: BTreeMap<u16, Vec<Buffer>>,
}

impl TestQueue {
    pub fn new(mem: &TestMemory, size: u16) -> Self {
        Self::at_offset(mem, size, 0)
    }

    /// A queue whose three rings each start `offset` bytes into their first page (a
    /// multiple of 16 keeps every ring aligned), so they may cross into a second one.
    pub fn at_offset(mem: &TestMemory, size: u16, offset: usize) -> Self {
        let n = usize::from(size);
        // Room for the event fields (EVENT_IDX) after each ring's entries.
        let ring = |bytes: usize, read_only| mem.buffer(offset, bytes, read_only);
        let (desc, avail, used) = (
            ring(16 * n, true),
            ring(6 + 2 * n, true),
            ring(6 + 8 * n, false),
        );
        Self {
            mem: mem.clone(),
            size,
            desc,
            avail,
            used,
            next_desc: 0,
            avail_idx: 0,
            used_seen: 0,
            chains: BTreeMap::new(),
        }
    }

    /// What the driver writes into the queue registers.
    pub fn config(&self) -> QueueConfig {
        QueueConfig {
            size: self.size,
            desc: self.desc,
            driver: self.avail,
            device: self.used,
        }
    }

    pub fn size(&self) -> u16 {
        self.size
    }

    /// Writes descriptor `index` of the queue's table.
    pub fn set_descriptor(&self, index: u16, desc: Descriptor) {
        self.mem
            .put(self.desc + 16 * u64::from(index), &descriptor_bytes(desc));
    }

    /// Adds a chain of fresh buffers of `(len, device-writable)`, each on its own pages,
    /// and makes it available. Returns its head.
    pub fn add_chain(&mut self, buffers: &[(u32, bool)]) -> u16 {
        let buffers = self.alloc_buffers(buffers);
        self.add_buffers(&buffers)
    }

    /// Links `buffers` through free descriptors and makes the chain available.
    pub fn add_buffers(&mut self, buffers: &[Buffer]) -> u16 {
        let head = self.next_desc;
        let at = |n: usize| ((usize::from(head) + n) % usize::from(self.size)) as u16;
        for (n, desc) in linked(buffers, at).into_iter().enumerate() {
            self.set_descriptor(at(n), desc);
        }
        self.next_desc = at(buffers.len());
        self.chains.insert(head, buffers.to_vec());
        self.make_available(head);
        head
    }

    /// Adds a chain of one descriptor naming an indirect table of fresh buffers, and
    /// makes it available. Returns its head.
    pub fn add_indirect(&mut self, buffers: &[(u32, bool)]) -> u16 {
        let buffers = self.alloc_buffers(buffers);
        let table = linked(&buffers, |n| n as u16);
        let head = self.next_desc;
        self.next_desc = (head + 1) % self.size;
        let desc = Descriptor {
            addr: self.table(&table),
            len: 16 * table.len() as u32,
            flags: DESC_F_INDIRECT,
            next: 0,
        };
        self.set_descriptor(head, desc);
        self.chains.insert(head, buffers);
        self.make_available(head);
        head
    }

    /// Writes `entries` as an indirect table on a fresh read-only page: its address.
    pub fn table(&self, entries: &[Descriptor]) -> u64 {
        let addr = self.mem.buffer(0, 16 * entries.len(), true);
        let bytes: Vec<u8> = entries.iter().flat_map(|&d| descriptor_bytes(d)).collect();
        self.mem.put(addr, &bytes);
        addr
    }

    /// The buffers of the chain added at `head`.
    pub fn buffers(&self, head: u16) -> &[Buffer] {
        self.chains.get(&head).map_or(&[], Vec::as_slice)
    }

    fn alloc_buffers(&self, buffers: &[(u32, bool)]) -> Vec<Buffer> {
        let alloc = |&(len, writable): &(u32, bool)| Buffer {
            addr: self.mem.buffer(0, len as usize, !writable),
            len,
            writable,
        };
        buffers.iter().map(alloc).collect()
    }

    /// Puts `head` in the next avail slot and publishes avail.idx.
    pub fn make_available(&mut self, head: u16) {
        let slot = u64::from(self.avail_idx % self.size);
        self.mem.put(self.avail + 4 + 2 * slot, &head.to_le_bytes());
        self.set_avail_idx(self.avail_idx.wrapping_add(1));
    }

    /// Writes avail.idx (a hostile driver may claim chains it never added).
    pub fn set_avail_idx(&mut self, idx: u16) {
        self.avail_idx = idx;
        self.mem.put(self.avail + 2, &idx.to_le_bytes());
    }

    pub fn avail_idx(&self) -> u16 {
        self.avail_idx
    }

    /// Starts both rings' indices at `idx` instead of 0, as if that many chains had
    /// come and gone (for wrap-around tests; the device's side must be moved too).
    pub fn start_at(&mut self, idx: u16) {
        self.set_avail_idx(idx);
        self.mem.put(self.used + 2, &idx.to_le_bytes());
        self.used_seen = idx;
    }

    pub fn set_avail_flags(&self, flags: u16) {
        self.mem.put(self.avail, &flags.to_le_bytes());
    }

    /// used_event (EVENT_IDX): after the avail ring's entries.
    pub fn set_used_event(&self, value: u16) {
        let at = self.avail + 4 + 2 * u64::from(self.size);
        self.mem.put(at, &value.to_le_bytes());
    }

    /// avail_event (EVENT_IDX), which the device writes after the used ring's entries.
    pub fn avail_event(&self) -> u16 {
        self.read_u16(self.used + 4 + 8 * u64::from(self.size))
    }

    pub fn used_idx(&self) -> u16 {
        self.read_u16(self.used + 2)
    }

    /// The used entries (id, len) published since the last call, in order.
    pub fn used(&mut self) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        while self.used_seen != self.used_idx() {
            let slot = u64::from(self.used_seen % self.size);
            let entry = self.mem.get(self.used + 4 + 8 * slot, 8);
            let word = |at: usize| u32::from_le_bytes(entry[at..at + 4].try_into().unwrap());
            out.push((word(0), word(4)));
            self.used_seen = self.used_seen.wrapping_add(1);
        }
        out
    }

    fn read_u16(&self, addr: u64) -> u16 {
        u16::from_le_bytes(self.mem.get(addr, 2).try_into().unwrap())
    }
}

/// The descriptors of a chain of `buffers`, each but the last naming the next, where
/// `index(n)` is the table index of the `n`-th.
fn linked(buffers: &[Buffer], index: impl Fn(usize) -> u16) -> Vec<Descriptor> {
    buffers
        .iter()
        .enumerate()
        .map(move |(n, buffer)| {
            let more = n + 1 < buffers.len();
            Descriptor {
                addr: buffer.addr,
                len: buffer.len,
                flags: buffer.flags() | if more { DESC_F_NEXT } else { 0 },
                next: if more { index(n + 1) } else { 0 },
            }
        })
        .collect()
}

fn descriptor_bytes(desc: Descriptor) -> [u8; 16] {
    let rest = u64::from(desc.len) | u64::from(desc.flags) << 32 | u64::from(desc.next) << 48;
    let mut bytes = [0; 16];
    bytes[..8].copy_from_slice(&desc.addr.to_le_bytes());
    bytes[8..].copy_from_slice(&rest.to_le_bytes());
    bytes
}
