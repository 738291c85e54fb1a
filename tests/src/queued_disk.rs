//! A disk with several transfers in flight that ends them late and out of order: the
//! stand-in for the host's physical disk (`kernel/src/host_disk.rs`) in the suites.
//!
//! A transfer does nothing when it starts (a write's bytes are only copied into its
//! buffer); the first `finish` of a transfer still in flight ends all of them, newest
//! first, as a device may: writes land on the disk, reads take its bytes, then.

use devices::blk::backend::{BlockBackend, Fill, RamDisk, StorageError, Ticket, TransferRoom};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// What the disk did, and which transfers fail, shared with the test.
#[derive(Debug, Default)]
pub struct TransferLog {
    /// The most transfers in flight at once.
    pub most_in_flight: Cell<usize>,
    /// Transfers in flight now.
    pub in_flight: Cell<usize>,
    /// Disk offsets of the transfers in the order they started, and ended.
    pub started: RefCell<Vec<u64>>,
    pub ended: RefCell<Vec<u64>>,
    /// Flushes, each with the number of transfers ended before it.
    pub flushes: RefCell<Vec<usize>>,
    /// A transfer that covers this disk byte fails.
    pub fail_at: Cell<Option<u64>>,
}

struct Transfer {
    /// Its place in the order transfers started.
    number: usize,
    offset: u64,
    buffer: Vec<u8>,
    write: bool,
    ended: Option<Result<(), StorageError>>,
}

pub struct QueuedDisk {
    disk: RamDisk,
    pub log: Rc<TransferLog>,
    transfers: Vec<Option<Transfer>>,
    chunk: usize,
}

impl QueuedDisk {
    /// `sectors` of zeroes, `room` transfers of up to `chunk` bytes in flight.
    pub fn new(sectors: u64, room: usize, chunk: usize) -> Self {
        Self {
            disk: RamDisk::new(sectors, "queued"),
            log: Rc::default(),
            transfers: (0..room).map(|_| None).collect(),
            chunk,
        }
    }

    /// Ends every transfer in flight, the newest first.
    fn end_all(&mut self) {
        let Self {
            disk,
            log,
            transfers,
            ..
        } = self;
        let mut order: Vec<usize> = (0..transfers.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(transfers[i].as_ref().map(|t| t.number)));
        for i in order {
            let Some(t) = transfers[i].as_mut() else {
                continue;
            };
            if t.ended.is_some() {
                continue;
            }
            let len = t.buffer.len() as u64;
            let failing = log
                .fail_at
                .get()
                .is_some_and(|at| (t.offset..t.offset + len).contains(&at));
            t.ended = Some(if failing {
                Err(StorageError::Io)
            } else if t.write {
                disk.write(t.offset, t.buffer.len(), &mut |b| {
                    b.copy_from_slice(&t.buffer);
                    true
                })
            } else {
                let buffer = &mut t.buffer;
                disk.read(t.offset, buffer.len(), &mut |b| {
                    buffer.copy_from_slice(b);
                    true
                })
            });
            log.ended.borrow_mut().push(t.offset);
        }
    }
}

impl BlockBackend for QueuedDisk {
    fn capacity_bytes(&self) -> u64 {
        self.disk.capacity_bytes()
    }

    fn read_only(&self) -> bool {
        false
    }

    fn read(
        &mut self,
        offset: u64,
        len: usize,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), StorageError> {
        assert_eq!(
            self.log.in_flight.get(),
            0,
            "a whole read with transfers in flight"
        );
        self.disk.read(offset, len, sink)
    }

    fn write(
        &mut self,
        offset: u64,
        len: usize,
        source: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<(), StorageError> {
        assert_eq!(
            self.log.in_flight.get(),
            0,
            "a whole write with transfers in flight"
        );
        self.disk.write(offset, len, source)
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        assert_eq!(
            self.log.in_flight.get(),
            0,
            "a flush with transfers in flight"
        );
        let ended = self.log.ended.borrow().len();
        self.log.flushes.borrow_mut().push(ended);
        Ok(())
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

    fn transfer_room(&self) -> Option<TransferRoom> {
        Some(TransferRoom {
            transfers: self.transfers.len(),
            chunk: self.chunk,
        })
    }

    fn start(&mut self, offset: u64, len: usize, fill: Fill<'_>) -> Result<Ticket, StorageError> {
        assert!(len > 0 && len <= self.chunk, "a transfer of {len} bytes");
        assert!(
            offset + len as u64 <= self.capacity_bytes(),
            "outside the disk"
        );
        let ticket = self
            .transfers
            .iter()
            .position(Option::is_none)
            .expect("the device keeps within the room");
        let mut buffer = vec![0; len];
        let write = fill.is_some();
        if let Some(fill) = fill {
            if !fill(&mut buffer) {
                return Err(StorageError::GuestAccess);
            }
        }
        self.transfers[ticket] = Some(Transfer {
            number: self.log.started.borrow().len(),
            offset,
            buffer,
            write,
            ended: None,
        });
        self.log.started.borrow_mut().push(offset);
        let now = self.log.in_flight.get() + 1;
        self.log.in_flight.set(now);
        self.log
            .most_in_flight
            .set(self.log.most_in_flight.get().max(now));
        Ok(ticket)
    }

    fn finish(
        &mut self,
        ticket: Ticket,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), StorageError> {
        if self.transfers[ticket]
            .as_ref()
            .expect("a started transfer")
            .ended
            .is_none()
        {
            self.end_all();
        }
        let t = self.transfers[ticket].take().expect("a started transfer");
        self.log.in_flight.set(self.log.in_flight.get() - 1);
        match t.ended.expect("ended above") {
            Ok(()) if !t.write && !sink(&t.buffer) => Err(StorageError::GuestAccess),
            result => result,
        }
    }
}
