//! virtio-blk configuration space (virtio 1.2 section 5.2.4) and the device's limits.

use crate::grant::PAGE_SIZE;
use crate::queue::QUEUE_SIZE_LIMIT;

/// Discard / write-zeroes segments one request may carry, at most (the options may
/// advertise fewer): bounds the per-request scratch.
pub const MAX_RANGE_SEGMENTS: usize = 16;

/// What a block device advertises beyond its backing store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlkOptions {
    /// Request queues (more than one offers VIRTIO_BLK_F_MQ).
    pub queues: u16,
    pub max_discard_sectors: u32,
    pub max_discard_segments: u32,
    pub max_write_zeroes_sectors: u32,
    pub max_write_zeroes_segments: u32,
}

impl Default for BlkOptions {
    fn default() -> Self {
        Self {
            queues: 1,
            max_discard_sectors: 1 << 16,
            max_discard_segments: MAX_RANGE_SEGMENTS as u32,
            max_write_zeroes_sectors: 1 << 16,
            max_write_zeroes_segments: MAX_RANGE_SEGMENTS as u32,
        }
    }
}

/// Data segments per request: the queue size less header and status descriptors.
pub const SEG_MAX: u32 = QUEUE_SIZE_LIMIT as u32 - 2;
/// Bytes per data segment: one page, so a chain never exceeds the per-chain page budget.
pub const SIZE_MAX: u32 = PAGE_SIZE as u32;
const BLK_SIZE: u32 = 512;

/// Writes the config space; returns its length (up to `write_zeroes_may_unmap`).
pub fn write_config(options: &BlkOptions, capacity_sectors: u64, out: &mut [u8; 64]) -> usize {
    let cap = MAX_RANGE_SEGMENTS as u32;
    let mut fields = Fields { out, len: 0 };
    fields.put(0, &capacity_sectors.to_le_bytes());
    fields.put(8, &SIZE_MAX.to_le_bytes());
    fields.put(12, &SEG_MAX.to_le_bytes());
    // geometry (16..20) stays zero: not offered.
    fields.put(20, &BLK_SIZE.to_le_bytes());
    // topology (24..32), writeback (32), unused (33): zero.
    fields.put(34, &options.queues.to_le_bytes());
    fields.put(36, &options.max_discard_sectors.to_le_bytes());
    fields.put(40, &options.max_discard_segments.min(cap).to_le_bytes());
    // discard_sector_alignment in sectors: one page.
    fields.put(44, &(PAGE_SIZE as u32 / 512).to_le_bytes());
    fields.put(48, &options.max_write_zeroes_sectors.to_le_bytes());
    fields.put(
        52,
        &options.max_write_zeroes_segments.min(cap).to_le_bytes(),
    );
    fields.put(56, &[1, 0, 0, 0]); // write_zeroes_may_unmap + padding
    fields.len
}

struct Fields<'a> {
    out: &'a mut [u8; 64],
    len: usize,
}

impl Fields<'_> {
    fn put(&mut self, at: usize, bytes: &[u8]) {
        let Some(end) = at.checked_add(bytes.len()) else {
            return;
        };
        if let Some(slot) = self.out.get_mut(at..end) {
            slot.copy_from_slice(bytes);
            self.len = self.len.max(end);
        }
    }
}
