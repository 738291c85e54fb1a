//! The host's virtio-blk device (in the demo: QEMU's `virtio-blk-device` on a raw image)
//! as the backing store of the frontends' virtio-blk devices, with several transfers in
//! flight ([`BlockBackend::start`]): the device model starts those of a batch's requests
//! together and finishes them when the batch settles.
//!
//! Guest data goes through bounce buffers, one per transfer: the frontend's pages are
//! grant mappings, which are not identity mapped and so cannot be handed to the host
//! device. They come from boot memory, once.

use crate::dma::DirectMapHal;
use crate::mem;
use alloc::vec::Vec;
use devices::blk::backend::{BlockBackend, Fill, StorageError, Ticket, TransferRoom, SECTOR_SIZE};
use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk};
use virtio_drivers::transport::mmio::MmioTransport;

/// Bytes of one transfer: its bounce buffer's size.
const CHUNK: usize = 64 * 1024;
/// Transfers in flight at most: the device's queue (16 entries, one indirect descriptor
/// each) holds as many. 1 MiB of bounce buffers, a whole 1 MiB request in flight at once.
const TRANSFERS: usize = 16;

/// Where a transfer is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    /// With the device, which answers with this token.
    Busy(u16),
    /// Answered (whether it succeeded); waits for [`BlockBackend::finish`].
    Ended(bool),
}

/// A transfer's request, response and buffer: the device holds their addresses while the
/// transfer is busy, so they never move (the slots are allocated once, never resized).
struct Slot {
    request: BlkReq,
    response: BlkResp,
    buffer: &'static mut [u8],
    /// The transfer's bytes, and whether it writes them.
    len: usize,
    write: bool,
    state: State,
}

/// A host virtio-blk device as the backing store of a frontend's virtio-blk device.
pub struct HostDisk {
    device: VirtIOBlk<DirectMapHal, MmioTransport<'static>>,
    slots: Vec<Slot>,
    capacity: u64,
    read_only: bool,
}

impl HostDisk {
    pub fn new(transport: MmioTransport<'static>) -> Result<Self, virtio_drivers::Error> {
        let device = VirtIOBlk::new(transport)?;
        let capacity = device.capacity() * SECTOR_SIZE;
        let read_only = device.readonly();
        let pages = (TRANSFERS * CHUNK / crate::arch::PAGE_SIZE) as u64;
        let buffers = mem::alloc_static(pages).ok_or(virtio_drivers::Error::DmaError)?;
        let mut slots = Vec::with_capacity(TRANSFERS);
        for buffer in buffers.chunks_exact_mut(CHUNK) {
            slots.push(Slot {
                request: BlkReq::default(),
                response: BlkResp::default(),
                buffer,
                len: 0,
                write: false,
                state: State::Free,
            });
        }
        log::info!(
            "host virtio-blk: {} MiB{}",
            capacity >> 20,
            if read_only { ", read-only" } else { "" }
        );
        Ok(Self {
            device,
            slots,
            capacity,
            read_only,
        })
    }

    fn check(&self, offset: u64, len: u64) -> Result<(), StorageError> {
        let aligned = offset.is_multiple_of(SECTOR_SIZE) && len.is_multiple_of(SECTOR_SIZE);
        let inside = offset
            .checked_add(len)
            .is_some_and(|end| end <= self.capacity);
        if aligned && inside {
            Ok(())
        } else {
            Err(StorageError::OutOfRange)
        }
    }

    /// Hands slot `ticket`'s transfer to the device (its bytes at `sector`).
    fn submit(&mut self, ticket: Ticket, sector: usize) -> Result<(), virtio_drivers::Error> {
        let slot = self
            .slots
            .get_mut(ticket)
            .ok_or(virtio_drivers::Error::InvalidParam)?;
        let buffer = slot
            .buffer
            .get_mut(..slot.len)
            .ok_or(virtio_drivers::Error::InvalidParam)?;
        // SAFETY: the request, buffer and response stay where they are (the slots never
        // move) and untouched while the transfer is busy: `reap` gives them back to
        // `complete_*_blocks` before the slot is used again.
        let token = unsafe {
            if slot.write {
                self.device
                    .write_blocks_nb(sector, &mut slot.request, buffer, &mut slot.response)
            } else {
                self.device
                    .read_blocks_nb(sector, &mut slot.request, buffer, &mut slot.response)
            }
        }?;
        slot.state = State::Busy(token);
        Ok(())
    }

    /// Waits for the device's next answer and ends the transfer it names. False when no
    /// transfer is busy (or the device names none of ours: never; it stays busy then).
    fn reap(&mut self) -> bool {
        if !self.slots.iter().any(|s| matches!(s.state, State::Busy(_))) {
            return false;
        }
        let token = loop {
            if let Some(token) = self.device.peek_used() {
                break token;
            }
            core::hint::spin_loop();
        };
        let named = self
            .slots
            .iter_mut()
            .find(|s| s.state == State::Busy(token));
        let Some(slot) = named else {
            return false;
        };
        let Some(buffer) = slot.buffer.get_mut(..slot.len) else {
            return false;
        };
        // SAFETY: the same request, buffer and response `submit` gave the device for it.
        let done = unsafe {
            if slot.write {
                self.device
                    .complete_write_blocks(token, &slot.request, buffer, &mut slot.response)
            } else {
                self.device
                    .complete_read_blocks(token, &slot.request, buffer, &mut slot.response)
            }
        };
        slot.state = State::Ended(done.is_ok());
        true
    }

    /// A whole read or write, a chunk at a time (a request larger than the whole room,
    /// or a write of zeroes: rare, so kept small rather than overlapped).
    fn whole(
        &mut self,
        offset: u64,
        len: usize,
        mut fill: Fill<'_>,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), StorageError> {
        // Each chunk is checked as it starts (the device and its slice checked the whole).
        let mut done = 0;
        while done < len {
            let n = (len - done).min(CHUNK);
            let at = offset.saturating_add(done as u64);
            let ticket = self.start(at, n, fill.as_mut().map(|f| &mut **f as _))?;
            self.finish(ticket, sink)?;
            done += n;
        }
        Ok(())
    }
}

impl BlockBackend for HostDisk {
    fn capacity_bytes(&self) -> u64 {
        self.capacity
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
        self.whole(offset, len, None, sink)
    }

    fn write(
        &mut self,
        offset: u64,
        len: usize,
        source: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<(), StorageError> {
        self.whole(offset, len, Some(source), &mut |_| true)
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        // The flush waits for its own answer: the transfers' come first.
        while self.reap() {}
        self.device.flush().map_err(|_| StorageError::Io)
    }

    /// Nothing to do: a discarded range's contents are unspecified, and zeroing it
    /// through the bounce buffers would turn one discard request into up to 32 MiB of
    /// writes. (The range is still checked, as for any request.)
    fn discard(&mut self, offset: u64, len: u64) -> Result<(), StorageError> {
        self.check(offset, len)
    }

    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), StorageError> {
        let len = usize::try_from(len).map_err(|_| StorageError::OutOfRange)?;
        self.write(offset, len, &mut |chunk| {
            chunk.fill(0);
            true
        })
    }

    fn serial(&self) -> &[u8] {
        b"stubvirt-disk"
    }

    fn transfer_room(&self) -> Option<TransferRoom> {
        Some(TransferRoom {
            transfers: self.slots.len(),
            chunk: CHUNK,
        })
    }

    fn start(&mut self, offset: u64, len: usize, fill: Fill<'_>) -> Result<Ticket, StorageError> {
        self.check(offset, len as u64)?;
        let sector = usize::try_from(offset / SECTOR_SIZE).map_err(|_| StorageError::OutOfRange)?;
        let ticket = self
            .slots
            .iter()
            .position(|s| s.state == State::Free)
            .ok_or(StorageError::Io)?;
        let slot = self.slots.get_mut(ticket).ok_or(StorageError::Io)?;
        // The device refuses empty transfers (and a chunk is the most a buffer holds).
        let buffer = slot
            .buffer
            .get_mut(..len)
            .filter(|b| !b.is_empty())
            .ok_or(StorageError::Io)?;
        slot.write = fill.is_some();
        if let Some(fill) = fill {
            if !fill(buffer) {
                return Err(StorageError::GuestAccess);
            }
        }
        slot.len = len;
        loop {
            match self.submit(ticket, sector) {
                Ok(()) => return Ok(ticket),
                // Without indirect descriptors the queue holds fewer: make room.
                Err(virtio_drivers::Error::QueueFull) if self.reap() => {}
                Err(_) => return Err(StorageError::Io),
            }
        }
    }

    fn finish(
        &mut self,
        ticket: Ticket,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), StorageError> {
        loop {
            let slot = self.slots.get_mut(ticket).ok_or(StorageError::Io)?;
            match slot.state {
                State::Free => return Err(StorageError::Io),
                State::Busy(_) => {
                    if !self.reap() {
                        return Err(StorageError::Io);
                    }
                }
                State::Ended(ok) => {
                    slot.state = State::Free;
                    let data = slot.buffer.get(..slot.len).ok_or(StorageError::Io)?;
                    return if !ok {
                        Err(StorageError::Io)
                    } else if slot.write || sink(data) {
                        Ok(())
                    } else {
                        Err(StorageError::GuestAccess)
                    };
                }
            }
        }
    }
}
