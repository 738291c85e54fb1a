//! One physical disk behind several virtio-blk devices: each device sees a byte range of
//! it (a partition, or the whole disk), writable or read-only. Which ranges may overlap
//! is [`crate::topology::Topology::check`]'s business; here a slice only keeps every
//! access inside its own range.

use super::backend::{BlockBackend, Fill, StorageError, Ticket, TransferRoom};
use alloc::rc::Rc;
use core::cell::RefCell;

/// A disk several slices refer to. The backend serves one device at a time, so the
/// borrow is never contended; if it were, the access fails as an I/O error.
pub type SharedDisk = Rc<RefCell<dyn BlockBackend>>;

/// Bytes `offset..offset + length` of a shared disk, as a disk of its own.
pub struct DiskSlice {
    disk: SharedDisk,
    offset: u64,
    length: u64,
    read_only: bool,
    /// The disk's own serial: a guest finds its slice as it would find the disk.
    serial: [u8; 20],
    serial_len: usize,
    /// The disk's (it does not change).
    transfer_room: Option<TransferRoom>,
}

impl DiskSlice {
    /// The range, cut to the disk's end (`length: None`: up to the end). A read-only
    /// disk makes every slice read-only.
    pub fn new(disk: SharedDisk, offset: u64, length: Option<u64>, read_only: bool) -> Self {
        let mut serial = [0u8; 20];
        let mut serial_len = 0;
        let mut transfer_room = None;
        let (capacity, disk_read_only) = disk
            .try_borrow()
            .map(|d| {
                for (slot, byte) in serial.iter_mut().zip(d.serial()) {
                    *slot = *byte;
                }
                serial_len = d.serial().len().min(serial.len());
                transfer_room = d.transfer_room();
                (d.capacity_bytes(), d.read_only())
            })
            .unwrap_or((0, true));
        let offset = offset.min(capacity);
        let room = capacity.saturating_sub(offset);
        Self {
            disk,
            offset,
            length: length.map_or(room, |l| l.min(room)),
            read_only: read_only || disk_read_only,
            serial,
            serial_len,
            transfer_room,
        }
    }

    /// Where `len` bytes at `offset` of the slice are on the disk.
    fn place(&self, offset: u64, len: u64) -> Result<u64, StorageError> {
        let end = offset.checked_add(len).ok_or(StorageError::OutOfRange)?;
        if end > self.length {
            return Err(StorageError::OutOfRange);
        }
        self.offset
            .checked_add(offset)
            .ok_or(StorageError::OutOfRange)
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&mut dyn BlockBackend) -> Result<R, StorageError>,
    ) -> Result<R, StorageError> {
        let mut disk = self.disk.try_borrow_mut().map_err(|_| StorageError::Io)?;
        f(&mut *disk)
    }
}

impl BlockBackend for DiskSlice {
    fn capacity_bytes(&self) -> u64 {
        self.length
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
        let at = self.place(offset, len as u64)?;
        self.with(|d| d.read(at, len, sink))
    }

    fn write(
        &mut self,
        offset: u64,
        len: usize,
        source: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<(), StorageError> {
        if self.read_only {
            return Err(StorageError::Io);
        }
        let at = self.place(offset, len as u64)?;
        self.with(|d| d.write(at, len, source))
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        self.with(|d| d.flush())
    }

    fn discard(&mut self, offset: u64, len: u64) -> Result<(), StorageError> {
        if self.read_only {
            return Err(StorageError::Io);
        }
        let at = self.place(offset, len)?;
        self.with(|d| d.discard(at, len))
    }

    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), StorageError> {
        if self.read_only {
            return Err(StorageError::Io);
        }
        let at = self.place(offset, len)?;
        self.with(|d| d.write_zeroes(at, len))
    }

    fn serial(&self) -> &[u8] {
        self.serial.get(..self.serial_len).unwrap_or(&[])
    }

    fn in_memory(&self) -> bool {
        self.disk.try_borrow().is_ok_and(|d| d.in_memory())
    }

    /// The slice's own range of the disk's memory.
    fn with_memory(&mut self, writing: bool, f: &mut dyn FnMut(&mut [u8]) -> u64) -> bool {
        if writing && self.read_only {
            return false;
        }
        let range = usize::try_from(self.offset).ok().and_then(|start| {
            let end = usize::try_from(self.length).ok()?.checked_add(start)?;
            Some(start..end)
        });
        let (Some(range), Ok(mut disk)) = (range, self.disk.try_borrow_mut()) else {
            return false;
        };
        let mut inside = false;
        let handed = disk.with_memory(writing, &mut |bytes| match bytes.get_mut(range.clone()) {
            Some(ours) => {
                inside = true;
                f(ours)
            }
            None => 0,
        });
        handed && inside
    }

    fn transfer_room(&self) -> Option<TransferRoom> {
        self.transfer_room
    }

    fn start(&mut self, offset: u64, len: usize, fill: Fill<'_>) -> Result<Ticket, StorageError> {
        if fill.is_some() && self.read_only {
            return Err(StorageError::Io);
        }
        let at = self.place(offset, len as u64)?;
        self.with(|d| d.start(at, len, fill))
    }

    fn finish(
        &mut self,
        ticket: Ticket,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), StorageError> {
        self.with(|d| d.finish(ticket, sink))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blk::backend::RamDisk;
    use alloc::vec::Vec;

    fn disk() -> SharedDisk {
        let bytes: Vec<u8> = (0..8 * 512).map(|i| (i / 512) as u8).collect();
        Rc::new(RefCell::new(RamDisk::from_bytes(bytes, "host")))
    }

    fn read(slice: &mut DiskSlice, offset: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        let mut out = Vec::new();
        slice.read(offset, len, &mut |b| {
            out.extend_from_slice(b);
            true
        })?;
        Ok(out)
    }

    #[test]
    fn slices_see_only_their_range() {
        let shared = disk();
        let mut a = DiskSlice::new(shared.clone(), 0, Some(4 * 512), false);
        let mut b = DiskSlice::new(shared.clone(), 4 * 512, None, false);
        assert_eq!(a.capacity_bytes(), 2048);
        assert_eq!(a.serial(), shared.borrow().serial(), "the disk's serial");
        assert_eq!(b.capacity_bytes(), 2048);
        assert_eq!(
            read(&mut b, 0, 512).unwrap()[0],
            4,
            "b's sector 0 is the disk's 4"
        );
        assert_eq!(read(&mut a, 3 * 512, 1024), Err(StorageError::OutOfRange));
        assert_eq!(
            read(&mut b, u64::MAX - 10, 512),
            Err(StorageError::OutOfRange)
        );
        a.write(512, 512, &mut |buf| {
            buf.fill(0xaa);
            true
        })
        .unwrap();
        a.write_zeroes(0, 512).unwrap();
        assert_eq!(b.write_zeroes(2048, 512), Err(StorageError::OutOfRange));
        let all = read(&mut DiskSlice::new(shared, 0, None, true), 0, 8 * 512).unwrap();
        assert!(all[..512].iter().all(|&x| x == 0));
        assert!(all[512..1024].iter().all(|&x| x == 0xaa));
        assert!(all[1024..]
            .chunks(512)
            .zip(2u8..)
            .all(|(s, n)| s.iter().all(|&x| x == n)));
    }

    #[test]
    fn a_slice_hands_its_own_range_of_a_disk_in_memory() {
        let shared = disk();
        let mut b = DiskSlice::new(shared.clone(), 4 * 512, Some(2 * 512), false);
        assert!(b.in_memory());
        let mut seen = Vec::new();
        assert!(b.with_memory(true, &mut |bytes| {
            seen.extend_from_slice(bytes);
            bytes[0] = 0xee;
            1
        }));
        assert_eq!(seen.len(), 1024);
        assert!(seen[..512].iter().all(|&x| x == 4) && seen[512..].iter().all(|&x| x == 5));
        assert_eq!(read(&mut b, 0, 1).unwrap(), [0xee], "the disk's byte 2048");
        // A read-only slice hands its bytes for reading only.
        let mut r = DiskSlice::new(shared, 0, None, true);
        assert!(!r.with_memory(true, &mut |_| unreachable!()));
        assert!(r.with_memory(false, &mut |bytes| bytes.len() as u64));
    }

    #[test]
    fn read_only_slices_refuse_every_change() {
        let shared = disk();
        let mut r = DiskSlice::new(shared.clone(), 0, None, true);
        assert!(r.read_only());
        assert_eq!(r.write(0, 512, &mut |_| true), Err(StorageError::Io));
        assert_eq!(r.discard(0, 512), Err(StorageError::Io));
        assert_eq!(r.write_zeroes(0, 512), Err(StorageError::Io));
        assert_eq!(read(&mut r, 512, 512).unwrap()[0], 1);
        // A range past the end is cut, not trusted.
        let past = DiskSlice::new(shared, 6 * 512, Some(1 << 20), false);
        assert_eq!(past.capacity_bytes(), 1024);
    }
}
