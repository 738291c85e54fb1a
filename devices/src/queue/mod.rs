//! The split virtqueue, device side (virtio 1.2 section 2.7).
//!
//! Rings are mapped once when the driver sets `QueueReady` and stay mapped until the queue
//! or the device is reset. Every index the driver controls is checked before use: a ring
//! that lies (avail index running ahead by more than the queue size, a head out of range)
//! breaks the queue, which the transport reports with `NEEDS_RESET`.

pub mod chain;
pub mod completion;
pub mod serve;

use crate::counters::Counters;
use crate::grant::GrantSpan;
use crate::mapping::MappedRegion;
use crate::memory::{
    Access, AccessError, Barrier, DescriptorWords, GuestMemory, MapError, MappedPage,
};

/// The largest queue any stubvirt device offers; bounds every per-queue buffer.
pub const QUEUE_SIZE_LIMIT: u16 = 256;
/// Pages a ring may span: a 256-entry descriptor table is 4 KiB, plus one page when it
/// does not start page-aligned.
pub const RING_PAGES: usize = 2;

pub const DESC_F_NEXT: u16 = 1;
pub const DESC_F_WRITE: u16 = 2;
pub const DESC_F_INDIRECT: u16 = 4;
const AVAIL_F_NO_INTERRUPT: u16 = 1;
const DESCRIPTOR_SIZE: usize = 16;
/// The avail and used rings start with two 16-bit fields (flags, idx), then the entries.
const RING_HEADER: usize = 4;
const AVAIL_ENTRY: usize = 2;
const USED_ENTRY: usize = 8;
/// Ring entries read or written in one access by [`SplitQueue::peek_heads`] and
/// [`SplitQueue::push_used_all`]: a serve batch's worth.
const HEADS_PER_PEEK: usize = 64;

/// The ring addresses and size the driver wrote into the queue registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueConfig {
    pub size: u16,
    pub desc: u64,
    pub driver: u64,
    pub device: u64,
}

/// Why a queue could not be made ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueSetupError {
    /// Size 0, not a power of two, or above what the device offered.
    BadSize(u16),
    /// A ring address without the grant bit, or misaligned for its ring.
    BadAddress(u64),
    /// Xen refused to map a ring page.
    Map(MapError),
}

/// A ring that broke: the queue stops until the driver resets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// avail.idx ran ahead of what the device consumed by more than the queue size.
    AvailIndexJump { avail: u16, consumed: u16 },
    /// A head index or `next` field outside the descriptor table.
    IndexOutOfRange(u16),
    /// A chain visits more descriptors than exist: a loop.
    ChainLoop,
    /// A chain (with its indirect table) longer than the queue size.
    ChainTooLong,
    /// An indirect descriptor inside an indirect table, or with NEXT set.
    BadIndirect,
    /// An indirect table whose length is 0, not a multiple of 16, or too long.
    BadIndirectLength(u32),
    /// INDIRECT used though `VIRTIO_F_INDIRECT_DESC` was not negotiated.
    IndirectNotNegotiated,
    /// A device-readable descriptor after a device-writable one.
    ReadableAfterWritable,
    /// A buffer the device cannot use where it cannot be skipped (an unmappable or
    /// read-only rx buffer in the middle of a merged frame).
    UnusableBuffer,
    /// A ring access failed (cannot happen with a correctly mapped ring; kept total).
    Ring(AccessError),
}

impl From<AccessError> for QueueError {
    fn from(e: AccessError) -> Self {
        QueueError::Ring(e)
    }
}

/// One descriptor as read from a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub addr: u64,
    pub len: u32,
    pub flags: u16,
    pub next: u16,
}

impl Descriptor {
    /// The fields of a descriptor read as two words ([`GuestMemory::read_descriptor`]).
    pub fn from_words([addr, rest]: DescriptorWords) -> Self {
        // Truncating casts pick out `len | flags << 32 | next << 48`.
        Self {
            addr,
            len: rest as u32,
            flags: (rest >> 32) as u16,
            next: (rest >> 48) as u16,
        }
    }

    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

/// A live split virtqueue.
#[derive(Debug)]
pub struct SplitQueue {
    /// A power of two (checked at activation): ring slots are indices masked by `mask`.
    size: u16,
    /// `size - 1`.
    mask: u16,
    desc: MappedRegion<RING_PAGES>,
    /// The descriptor table's page and its offset there, when the whole table lies in
    /// one page (always, for an aligned table): a descriptor is then read without
    /// locating its page.
    desc_page: Option<(MappedPage, usize)>,
    avail: MappedRegion<RING_PAGES>,
    used: MappedRegion<RING_PAGES>,
    event_idx: bool,
    indirect: bool,
    /// Next avail ring slot to consume.
    next_avail: u16,
    /// Last avail.idx read from the driver (saves a read per chain).
    seen_avail: u16,
    /// Next used ring slot to fill, and the used.idx last published to the driver.
    next_used: u16,
    published_used: u16,
    /// used.idx when the driver was last interrupted (EVENT_IDX bookkeeping).
    signalled_used: u16,
}

fn ring_span(addr: u64, len: usize, align: u64) -> Result<GrantSpan, QueueSetupError> {
    if !addr.is_multiple_of(align) {
        return Err(QueueSetupError::BadAddress(addr));
    }
    GrantSpan::new(addr, len as u32).map_err(|_| QueueSetupError::BadAddress(addr))
}

/// Where entry `slot` of the avail ([`AVAIL_ENTRY`]) or used ([`USED_ENTRY`]) ring lies;
/// `slot` = the queue size names the event field after the last entry. Slots are at most
/// [`QUEUE_SIZE_LIMIT`], so the offset is always there (an error kept for totality).
fn ring_at(slot: u16, entry: usize) -> Result<usize, AccessError> {
    usize::from(slot)
        .checked_mul(entry)
        .and_then(|at| at.checked_add(RING_HEADER))
        .ok_or(AccessError::OutOfPage)
}

/// The bytes of entries `first..first + count` of `entry` bytes each in a local buffer.
fn entry_bytes(
    first: usize,
    count: usize,
    entry: usize,
) -> Result<core::ops::Range<usize>, AccessError> {
    let start = first.checked_mul(entry);
    let end = first
        .checked_add(count)
        .and_then(|end| end.checked_mul(entry));
    match (start, end) {
        (Some(start), Some(end)) => Ok(start..end),
        _ => Err(AccessError::OutOfPage),
    }
}

impl SplitQueue {
    /// Validates the driver's ring setup and maps the three rings (desc and avail
    /// read-only, used writable), each in one batch.
    pub fn activate<M: GuestMemory + ?Sized>(
        mem: &mut M,
        config: &QueueConfig,
        max_size: u16,
        event_idx: bool,
        indirect: bool,
        counters: &mut Counters,
    ) -> Result<Self, QueueSetupError> {
        let size = config.size;
        if size == 0 || !size.is_power_of_two() || size > max_size || size > QUEUE_SIZE_LIMIT {
            return Err(QueueSetupError::BadSize(size));
        }
        let mask = size.checked_sub(1).ok_or(QueueSetupError::BadSize(size))?;
        // With EVENT_IDX, a 16-bit event field follows the entries.
        let event_field = if event_idx { 2 } else { 0 };
        let ring_len = |entry| {
            ring_at(size, entry)
                .ok()
                .and_then(|end| end.checked_add(event_field))
                .ok_or(QueueSetupError::BadSize(size))
        };
        let desc_span = ring_span(config.desc, DESCRIPTOR_SIZE * usize::from(size), 16)?;
        let avail_span = ring_span(config.driver, ring_len(AVAIL_ENTRY)?, 2)?;
        let used_span = ring_span(config.device, ring_len(USED_ENTRY)?, 4)?;
        let desc = MappedRegion::map(mem, &desc_span, Access::ReadOnly, counters)
            .map_err(QueueSetupError::Map)?;
        let avail = match MappedRegion::map(mem, &avail_span, Access::ReadOnly, counters) {
            Ok(region) => region,
            Err(e) => {
                release_regions(mem, &[desc.pages()], counters);
                return Err(QueueSetupError::Map(e));
            }
        };
        let used = match MappedRegion::map(mem, &used_span, Access::ReadWrite, counters) {
            Ok(region) => region,
            Err(e) => {
                release_regions(mem, &[desc.pages(), avail.pages()], counters);
                return Err(QueueSetupError::Map(e));
            }
        };
        Ok(Self {
            size,
            mask,
            desc_page: desc.within_one_page(),
            desc,
            avail,
            used,
            event_idx,
            indirect,
            next_avail: 0,
            seen_avail: 0,
            next_used: 0,
            published_used: 0,
            signalled_used: 0,
        })
    }

    /// Unmaps the rings in one batch. The queue is gone afterwards.
    pub fn release<M: GuestMemory + ?Sized>(self, mem: &mut M, counters: &mut Counters) {
        release_regions(
            mem,
            &[self.desc.pages(), self.avail.pages(), self.used.pages()],
            counters,
        );
    }

    pub fn size(&self) -> u16 {
        self.size
    }

    pub fn indirect_allowed(&self) -> bool {
        self.indirect
    }

    /// Whether the driver has made chains available that the device has not consumed.
    pub fn has_available<M: GuestMemory + ?Sized>(&mut self, mem: &M) -> Result<bool, QueueError> {
        self.refresh_avail(mem.rings())?;
        Ok(self.seen_avail != self.next_avail)
    }

    /// The driver's avail.idx as last read.
    pub fn seen_avail(&self) -> u16 {
        self.seen_avail
    }

    fn refresh_avail<M: GuestMemory + ?Sized>(&mut self, mem: &M) -> Result<(), QueueError> {
        let avail_idx = self.avail.read_u16(mem, 2)?;
        mem.barrier(Barrier::Acquire);
        if avail_idx.wrapping_sub(self.next_avail) > self.size {
            return Err(QueueError::AvailIndexJump {
                avail: avail_idx,
                consumed: self.next_avail,
            });
        }
        self.seen_avail = avail_idx;
        Ok(())
    }

    /// Takes the next available chain's head index, if any.
    pub fn pop<M: GuestMemory + ?Sized>(&mut self, mem: &M) -> Result<Option<u16>, QueueError> {
        let rings = mem.rings();
        if self.seen_avail == self.next_avail {
            self.refresh_avail(rings)?;
            if self.seen_avail == self.next_avail {
                return Ok(None);
            }
        }
        let slot = self.next_avail & self.mask;
        let head = self.check_head(self.avail.read_u16(rings, ring_at(slot, AVAIL_ENTRY)?)?)?;
        self.consume();
        Ok(Some(head))
    }

    /// Reads up to `out.len()` available heads, in ring order, without consuming them:
    /// one ring access for a batch instead of one per chain. The caller checks each head
    /// ([`Self::check_head`]) and consumes it ([`Self::consume`]) as [`Self::pop`] would.
    pub fn peek_heads<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        out: &mut [u16],
    ) -> Result<usize, QueueError> {
        let rings = mem.rings();
        if self.seen_avail == self.next_avail {
            self.refresh_avail(rings)?;
        }
        let available = usize::from(self.seen_avail.wrapping_sub(self.next_avail));
        let count = available.min(out.len()).min(HEADS_PER_PEEK);
        if count == 0 {
            // Nothing to read (the last look of a pass): no scratch to clear.
            return Ok(0);
        }
        let mut bytes = [0u8; AVAIL_ENTRY * HEADS_PER_PEEK];
        let mut done = 0;
        while let Some(left) = count.checked_sub(done).filter(|&left| left > 0) {
            // Up to the ring's end, then from its start.
            let slot = self.next_avail.wrapping_add(done as u16) & self.mask;
            let run = left.min(self.entries_from(slot));
            let part = bytes
                .get_mut(entry_bytes(done, run, AVAIL_ENTRY)?)
                .ok_or(QueueError::Ring(AccessError::OutOfPage))?;
            self.avail.read(rings, ring_at(slot, AVAIL_ENTRY)?, part)?;
            done = done.saturating_add(run);
        }
        for (head, pair) in out.iter_mut().zip(bytes.chunks_exact(2)).take(count) {
            if let [low, high] = *pair {
                *head = u16::from_le_bytes([low, high]);
            }
        }
        Ok(count)
    }

    /// A head read by [`Self::peek_heads`], refused as [`Self::pop`] refuses it.
    pub fn check_head(&self, head: u16) -> Result<u16, QueueError> {
        if head >= self.size {
            return Err(QueueError::IndexOutOfRange(head));
        }
        Ok(head)
    }

    /// Ring entries from `slot` up to the ring's end: at least one. (A masked slot is at
    /// most `mask`, so neither operation saturates: this is `size - slot`.)
    fn entries_from(&self, slot: u16) -> usize {
        usize::from(self.mask.saturating_sub(slot)).saturating_add(1)
    }

    /// Consumes the next available chain (its head was peeked and checked).
    pub fn consume(&mut self) {
        self.next_avail = self.next_avail.wrapping_add(1);
    }

    /// Puts back the last `count` popped chains, untouched, for a later pass (net rx
    /// that found too few buffers for a frame).
    pub fn unpop(&mut self, count: u16) {
        self.next_avail = self.next_avail.wrapping_sub(count);
    }

    /// Reads descriptor `index` of the queue's own table.
    pub fn descriptor<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        index: u16,
    ) -> Result<Descriptor, QueueError> {
        if index >= self.size {
            return Err(QueueError::IndexOutOfRange(index));
        }
        let at = usize::from(index) * DESCRIPTOR_SIZE;
        let words = match self.desc_page {
            // Below the size, the entry lies inside the table, so inside that page; the
            // sum is below PAGE_SIZE, never near saturating.
            Some((page, start)) => mem.rings().read_descriptor(page, start.saturating_add(at)),
            None => self.desc.read_descriptor(mem.rings(), at),
        }?;
        Ok(Descriptor::from_words(words))
    }

    /// Writes a used ring entry; it becomes visible at the next [`Self::publish`].
    pub fn push_used<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        head: u16,
        len: u32,
    ) -> Result<(), QueueError> {
        let slot = self.next_used & self.mask;
        self.used.write(
            mem.rings_mut(),
            ring_at(slot, USED_ENTRY)?,
            &used_entry(head, len),
        )?;
        self.next_used = self.next_used.wrapping_add(1);
        Ok(())
    }

    /// Writes used entries for consecutive slots, a run of the ring per access; they
    /// become visible at the next [`Self::publish`].
    pub fn push_used_all<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        entries: &[(u16, u32)],
    ) -> Result<(), QueueError> {
        let rings = mem.rings_mut();
        for group in entries.chunks(HEADS_PER_PEEK) {
            let mut bytes = [0u8; USED_ENTRY * HEADS_PER_PEEK];
            for (slot, &(head, len)) in bytes.chunks_exact_mut(USED_ENTRY).zip(group) {
                slot.copy_from_slice(&used_entry(head, len));
            }
            let mut done = 0;
            while let Some(left) = group.len().checked_sub(done).filter(|&left| left > 0) {
                let slot = self.next_used & self.mask;
                let run = left.min(self.entries_from(slot));
                let part = bytes
                    .get(entry_bytes(done, run, USED_ENTRY)?)
                    .ok_or(QueueError::Ring(AccessError::OutOfPage))?;
                self.used.write(rings, ring_at(slot, USED_ENTRY)?, part)?;
                self.next_used = self.next_used.wrapping_add(run as u16);
                done = done.saturating_add(run);
            }
        }
        Ok(())
    }

    /// Makes pushed used entries visible: release barrier, then used.idx.
    pub fn publish<M: GuestMemory + ?Sized>(&mut self, mem: &mut M) -> Result<(), QueueError> {
        if self.published_used == self.next_used {
            return Ok(());
        }
        let rings = mem.rings_mut();
        rings.barrier(Barrier::Release);
        self.used.write_u16(rings, 2, self.next_used)?;
        self.published_used = self.next_used;
        Ok(())
    }

    /// Asks the driver to notify again once it adds chains, then re-checks so a chain
    /// added meanwhile is not missed. Returns whether chains are available.
    ///
    /// With EVENT_IDX, avail_event is the driver's avail.idx as last seen, not what the
    /// device consumed: the two differ when chains were put back (a merged frame waiting
    /// for more rx buffers), and the driver kicks only when avail.idx passes avail_event,
    /// so the next chain it adds must be the one named (as vhost does).
    pub fn arm_notifications<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
    ) -> Result<bool, QueueError> {
        let rings = mem.rings_mut();
        if self.event_idx {
            let avail_event = ring_at(self.size, USED_ENTRY)?;
            self.used.write_u16(rings, avail_event, self.seen_avail)?;
            rings.barrier(Barrier::Full);
        }
        self.has_available(rings)
    }

    /// Whether the driver wants an interrupt for what was published since the last one
    /// (used_event with EVENT_IDX, else the avail ring's NO_INTERRUPT flag).
    pub fn needs_interrupt<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
    ) -> Result<bool, QueueError> {
        let new = self.published_used;
        let old = self.signalled_used;
        if new == old {
            return Ok(false);
        }
        let rings = mem.rings();
        rings.barrier(Barrier::Full);
        let wanted = if self.event_idx {
            let used_event = self
                .avail
                .read_u16(rings, ring_at(self.size, AVAIL_ENTRY)?)?;
            // virtio 1.2 2.7.10 (vring_need_event): interrupt if used_event lies in
            // [old, new), i.e. the device moved past the entry the driver waits for.
            new.wrapping_sub(used_event).wrapping_sub(1) < new.wrapping_sub(old)
        } else {
            self.avail.read_u16(rings, 0)? & AVAIL_F_NO_INTERRUPT == 0
        };
        self.signalled_used = new;
        Ok(wanted)
    }
}

/// A used ring element: the chain's head as a 32-bit id, then the bytes written.
fn used_entry(head: u16, len: u32) -> [u8; 8] {
    let [h0, h1, h2, h3] = u32::from(head).to_le_bytes();
    let [l0, l1, l2, l3] = len.to_le_bytes();
    [h0, h1, h2, h3, l0, l1, l2, l3]
}

fn release_regions<M: GuestMemory + ?Sized>(
    mem: &mut M,
    regions: &[&[MappedPage]],
    counters: &mut Counters,
) {
    let mut pages: heapless::Vec<MappedPage, { 3 * RING_PAGES }> = heapless::Vec::new();
    for page in regions.iter().flat_map(|r| r.iter()) {
        let _ = pages.push(*page);
    }
    if pages.is_empty() {
        return;
    }
    let refused = mem.unmap_batch(&pages);
    counters.count_unmap(pages.len(), refused);
}

#[cfg(test)]
mod tests;
