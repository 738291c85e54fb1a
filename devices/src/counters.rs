//! Per-device counters, readable by the kernel (printed at the end of a run) and the tests.

/// What one device did. Every field only ever grows, except across [`Counters::clear`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests (descriptor chains) completed into the used ring.
    pub requests: u64,
    /// Bytes the device read from guest buffers.
    pub bytes_from_guest: u64,
    /// Bytes the device wrote into guest buffers.
    pub bytes_to_guest: u64,
    /// Requests answered with an error status, frames dropped for a guest fault.
    pub request_errors: u64,
    /// Malformed rings or chains that broke a queue (device set `NEEDS_RESET`).
    pub queue_errors: u64,
    /// Register accesses the virtio-mmio spec forbids (answered, ignored).
    pub mmio_errors: u64,
    /// Grant map hypercall batches and the pages they carried.
    pub map_batches: u64,
    pub pages_mapped: u64,
    /// Pages whose mapping Xen refused.
    pub map_failures: u64,
    /// Grant unmap hypercall batches and the pages they carried.
    pub unmap_batches: u64,
    pub pages_unmapped: u64,
    /// Pages whose unmapping Xen refused.
    pub unmap_failures: u64,
    /// Queue notifications (doorbell writes) received, and those ignored as invalid.
    pub notifications: u64,
    pub ignored_notifications: u64,
    /// Interrupts the device asked the host to inject.
    pub interrupts: u64,
    /// Injections that failed (`set_irq_level` refused) and were retried later.
    pub interrupts_deferred: u64,
    /// Net: frames sent by the frontend (tx) and delivered to it (rx).
    pub frames_tx: u64,
    pub frames_rx: u64,
    /// Net: frames dropped because they did not fit the posted rx buffers.
    pub rx_dropped_too_big: u64,
    /// Net: segments cut in software from GSO frames for a driver without GUEST_TSO4/6.
    pub gso_segments: u64,
    /// Storage backend errors (read, write, flush failed).
    pub storage_errors: u64,
}

impl Counters {
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Counts a map batch of `pages` pages, `failed` of them refused. Counters saturate
    /// (none can reach 2^64 in practice): a statistic never wraps back to small numbers.
    pub fn count_map(&mut self, pages: usize, failed: usize) {
        self.map_batches = self.map_batches.saturating_add(1);
        // Failed entries hold no mapping, so only successes count as mapped.
        let mapped = pages.saturating_sub(failed);
        self.pages_mapped = self.pages_mapped.saturating_add(mapped as u64);
        self.map_failures = self.map_failures.saturating_add(failed as u64);
    }

    /// Counts an unmap batch of `pages` pages, `refused` of them refused.
    pub fn count_unmap(&mut self, pages: usize, refused: usize) {
        self.unmap_batches = self.unmap_batches.saturating_add(1);
        self.pages_unmapped = self.pages_unmapped.saturating_add(pages as u64);
        self.unmap_failures = self.unmap_failures.saturating_add(refused as u64);
    }

    /// Mappings still held: maps minus unmaps (failures counted as released, since the
    /// device forgets a page whatever Xen answered).
    pub fn pages_held(&self) -> u64 {
        self.pages_mapped.saturating_sub(self.pages_unmapped)
    }
}
