//! A block backend that fails on command: storage fault injection for the suites.

use devices::blk::backend::{BlockBackend, RamDisk, StorageError};
use std::cell::Cell;
use std::rc::Rc;

/// Which operations fail next. Shared with the test through an `Rc` so it can change
/// while the disk sits inside the backend.
#[derive(Debug, Default)]
pub struct FaultPlan {
    pub fail_reads: Cell<u32>,
    pub fail_writes: Cell<u32>,
    pub fail_flushes: Cell<u32>,
    /// The next reads/writes transfer half their bytes, then fail (short I/O).
    pub short_io: Cell<u32>,
}

fn take(counter: &Cell<u32>) -> bool {
    let n = counter.get();
    if n > 0 {
        counter.set(n - 1);
    }
    n > 0
}

pub struct FaultyDisk {
    pub disk: RamDisk,
    pub plan: Rc<FaultPlan>,
}

impl BlockBackend for FaultyDisk {
    fn capacity_bytes(&self) -> u64 {
        self.disk.capacity_bytes()
    }

    fn read_only(&self) -> bool {
        BlockBackend::read_only(&self.disk)
    }

    fn read(
        &mut self,
        offset: u64,
        len: usize,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), StorageError> {
        if take(&self.plan.fail_reads) {
            return Err(StorageError::Io);
        }
        if take(&self.plan.short_io) {
            self.disk.read(offset, len / 2, sink)?;
            return Err(StorageError::Io);
        }
        self.disk.read(offset, len, sink)
    }

    fn write(
        &mut self,
        offset: u64,
        len: usize,
        source: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<(), StorageError> {
        if take(&self.plan.fail_writes) {
            return Err(StorageError::Io);
        }
        if take(&self.plan.short_io) {
            self.disk.write(offset, len / 2, source)?;
            return Err(StorageError::Io);
        }
        self.disk.write(offset, len, source)
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        if take(&self.plan.fail_flushes) {
            return Err(StorageError::Io);
        }
        self.disk.flush()
    }

    fn discard(&mut self, offset: u64, len: u64) -> Result<(), StorageError> {
        self.disk.discard(offset, len)
    }

    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), StorageError> {
        self.disk.write_zeroes(offset, len)
    }

    fn serial(&self) -> &[u8] {
        self.disk.serial()
    }
}
