//! Where a block device's data lives: a trait, and the embedded RAM disk.

use alloc::vec;
use alloc::vec::Vec;

pub const SECTOR_SIZE: u64 = 512;
const SECTOR_BYTES: usize = SECTOR_SIZE as usize;

/// A storage failure, reported to the driver as `VIRTIO_BLK_S_IOERR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageError {
    /// The medium failed.
    Io,
    /// The guest buffer could not be read or written mid-transfer.
    GuestAccess,
    /// The range is outside the disk (the device checks first; kept total).
    OutOfRange,
}

/// Room on a backend that moves data in transfers started without waiting
/// ([`BlockBackend::start`]): how many it can have in flight at once, of up to `chunk`
/// bytes each. It does not change: the device counts what it has in flight (one device's
/// batch uses a disk at a time, and ends its transfers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferRoom {
    pub transfers: usize,
    pub chunk: usize,
}

/// Names a started transfer until [`BlockBackend::finish`].
pub type Ticket = usize;

/// What [`BlockBackend::start`] fills a write's buffer with (false: the guest side
/// failed); `None` for a read.
pub type Fill<'a> = Option<&'a mut dyn FnMut(&mut [u8]) -> bool>;

/// Storage behind a virtio-blk device. Offsets and lengths are in bytes, sector-aligned.
pub trait BlockBackend {
    fn capacity_bytes(&self) -> u64;
    fn read_only(&self) -> bool;
    /// Hands the `len` bytes at `offset` to `sink`, in order, in one or more slices.
    /// `sink` returns false when the guest side failed; the read then stops.
    fn read(
        &mut self,
        offset: u64,
        len: usize,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), StorageError>;
    /// Fills the `len` bytes at `offset` from `source`, which fills each slice it gets.
    fn write(
        &mut self,
        offset: u64,
        len: usize,
        source: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<(), StorageError>;
    /// Makes every completed write durable.
    fn flush(&mut self) -> Result<(), StorageError>;
    /// Deallocates a range: afterwards its contents are unspecified until written (virtio
    /// 1.2 5.2.6.2), so doing nothing is a valid discard. The RAM disk zeroes it.
    fn discard(&mut self, offset: u64, len: u64) -> Result<(), StorageError>;
    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), StorageError>;
    /// Up to 20 bytes of identity for `VIRTIO_BLK_T_GET_ID`.
    fn serial(&self) -> &[u8];
    /// Whether the disk's bytes are in the backend's own memory ([`Self::with_memory`]).
    fn in_memory(&self) -> bool {
        false
    }
    /// Hands `f` the whole disk as bytes in memory (byte `n` is the disk's byte `n`), so
    /// a device can copy between them and guest memory directly, the data of several
    /// requests in one grant copy (see `blk::gather`); `writing` when `f` changes them;
    /// `f` returns the bytes it moved (for a backend that accounts them). False, and
    /// nothing called, for a disk whose bytes are elsewhere (a physical disk, behind a
    /// bounce buffer) or that refuses the writing.
    fn with_memory(&mut self, writing: bool, f: &mut dyn FnMut(&mut [u8]) -> u64) -> bool {
        let _ = (writing, f);
        false
    }
    /// Room for transfers in flight together (a physical disk, each through its own
    /// bounce buffer), the same at every call; `None`, the default, for a backend that serves each request whole
    /// in [`Self::read`] and [`Self::write`].
    fn transfer_room(&self) -> Option<TransferRoom> {
        None
    }
    /// Starts moving `len` bytes at `offset` (sector-aligned, at most a chunk) and returns
    /// without waiting: a read into the transfer's buffer (`fill` is `None`), or a write
    /// of what `fill` puts there first (false: the guest side failed, nothing started).
    /// The buffer stays the transfer's until [`Self::finish`].
    fn start(&mut self, offset: u64, len: usize, fill: Fill<'_>) -> Result<Ticket, StorageError> {
        let _ = (offset, len, fill);
        Err(StorageError::Io)
    }
    /// Waits for transfer `ticket` to end, hands a read's bytes to `sink` (false: the
    /// guest side failed), and frees the transfer.
    fn finish(
        &mut self,
        ticket: Ticket,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), StorageError> {
        let _ = (ticket, sink);
        Err(StorageError::Io)
    }
}

/// A disk in RAM: the embedded default. Flush has nothing to do.
///
/// The storage is anything byte-addressable: a heap `Vec` (the default, and the host
/// tests), or a region the kernel reserved at boot (`&'static mut [u8]`), so a disk larger
/// than the heap needs no second implementation.
pub struct RamDisk<S = Vec<u8>> {
    data: S,
    /// Whole sectors of `data` in use.
    len: usize,
    read_only: bool,
    serial: [u8; 20],
}

impl RamDisk {
    /// A zeroed disk of `sectors` sectors on the heap. Allocates once, here (a size
    /// beyond memory fails the allocation rather than wrap into a small disk).
    pub fn new(sectors: u64, serial: &str) -> Self {
        let bytes = usize::try_from(sectors.saturating_mul(SECTOR_SIZE)).unwrap_or(usize::MAX);
        Self::from_bytes(vec![0; bytes], serial)
    }

    /// A disk holding `data` (rounded down to whole sectors).
    pub fn from_bytes(data: Vec<u8>, serial: &str) -> Self {
        Self::over(data, serial)
    }
}

impl<S: AsRef<[u8]> + AsMut<[u8]>> RamDisk<S> {
    /// A disk over `storage` as it is (rounded down to whole sectors).
    pub fn over(storage: S, serial: &str) -> Self {
        let bytes = storage.as_ref().len();
        let mut id = [0u8; 20];
        for (slot, byte) in id.iter_mut().zip(serial.bytes()) {
            *slot = byte;
        }
        Self {
            data: storage,
            // Whole sectors: the remainder is at most `bytes`.
            len: bytes.saturating_sub(bytes % SECTOR_BYTES),
            read_only: false,
            serial: id,
        }
    }

    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    pub fn bytes(&self) -> &[u8] {
        self.data.as_ref().get(..self.len).unwrap_or(&[])
    }

    fn range(&self, offset: u64, len: u64) -> Result<core::ops::Range<usize>, StorageError> {
        let end = offset.checked_add(len).ok_or(StorageError::OutOfRange)?;
        if end > self.len as u64 {
            return Err(StorageError::OutOfRange);
        }
        Ok(offset as usize..end as usize)
    }
}

impl<S: AsRef<[u8]> + AsMut<[u8]>> BlockBackend for RamDisk<S> {
    fn capacity_bytes(&self) -> u64 {
        self.len as u64
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read(
        &mut self,
        offset: u64,
        len: usize,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), StorageError> {
        let range = self.range(offset, len as u64)?;
        let bytes = self
            .data
            .as_ref()
            .get(range)
            .ok_or(StorageError::OutOfRange)?;
        if sink(bytes) {
            Ok(())
        } else {
            Err(StorageError::GuestAccess)
        }
    }

    fn write(
        &mut self,
        offset: u64,
        len: usize,
        source: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<(), StorageError> {
        let range = self.range(offset, len as u64)?;
        let bytes = self
            .data
            .as_mut()
            .get_mut(range)
            .ok_or(StorageError::OutOfRange)?;
        if source(bytes) {
            Ok(())
        } else {
            Err(StorageError::GuestAccess)
        }
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        Ok(())
    }

    fn discard(&mut self, offset: u64, len: u64) -> Result<(), StorageError> {
        self.write_zeroes(offset, len)
    }

    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), StorageError> {
        let range = self.range(offset, len)?;
        self.data
            .as_mut()
            .get_mut(range)
            .ok_or(StorageError::OutOfRange)?
            .fill(0);
        Ok(())
    }

    fn serial(&self) -> &[u8] {
        &self.serial
    }

    fn in_memory(&self) -> bool {
        true
    }

    fn with_memory(&mut self, writing: bool, f: &mut dyn FnMut(&mut [u8]) -> u64) -> bool {
        if writing && self.read_only {
            return false;
        }
        let len = self.len;
        match self.data.as_mut().get_mut(..len) {
            Some(bytes) => {
                f(bytes);
                true
            }
            None => false,
        }
    }
}
