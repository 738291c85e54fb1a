//! A block backend that counts the bytes each operation touches, so the simulated
//! machine can check every backend round against the per-pass byte budget.

use crate::world;
use devices::blk::backend::{BlockBackend, Fill, StorageError, Ticket, TransferRoom};

/// Any disk, with every byte read, written, discarded or zeroed added to its entry of
/// `World::storage_bytes`.
pub struct MeteredDisk {
    disk: Box<dyn BlockBackend>,
    meter: usize,
}

impl MeteredDisk {
    pub fn new(disk: Box<dyn BlockBackend>) -> Self {
        let meter = world::with(|w| {
            w.storage_bytes.push(0);
            w.storage_bytes.len() - 1
        });
        Self { disk, meter }
    }

    fn charge(&self, bytes: u64) {
        world::with(|w| {
            if let Some(total) = w.storage_bytes.get_mut(self.meter) {
                *total = total.saturating_add(bytes);
            }
        });
    }
}

impl BlockBackend for MeteredDisk {
    fn capacity_bytes(&self) -> u64 {
        self.disk.capacity_bytes()
    }

    fn read_only(&self) -> bool {
        self.disk.read_only()
    }

    fn read(
        &mut self,
        offset: u64,
        len: usize,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), StorageError> {
        self.charge(len as u64);
        self.disk.read(offset, len, sink)
    }

    fn write(
        &mut self,
        offset: u64,
        len: usize,
        source: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<(), StorageError> {
        self.charge(len as u64);
        self.disk.write(offset, len, source)
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        self.disk.flush()
    }

    fn discard(&mut self, offset: u64, len: u64) -> Result<(), StorageError> {
        self.charge(len);
        self.disk.discard(offset, len)
    }

    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), StorageError> {
        self.charge(len);
        self.disk.write_zeroes(offset, len)
    }

    fn serial(&self) -> &[u8] {
        self.disk.serial()
    }

    fn in_memory(&self) -> bool {
        self.disk.in_memory()
    }

    fn transfer_room(&self) -> Option<TransferRoom> {
        self.disk.transfer_room()
    }

    fn start(&mut self, offset: u64, len: usize, fill: Fill<'_>) -> Result<Ticket, StorageError> {
        self.charge(len as u64);
        self.disk.start(offset, len, fill)
    }

    fn finish(
        &mut self,
        ticket: Ticket,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), StorageError> {
        self.disk.finish(ticket, sink)
    }

    fn with_memory(&mut self, writing: bool, f: &mut dyn FnMut(&mut [u8]) -> u64) -> bool {
        let mut moved = 0;
        let handed = self.disk.with_memory(writing, &mut |bytes| {
            moved = f(bytes);
            moved
        });
        self.charge(moved);
        handed
    }
}
