//! The host's own virtio devices (in the demo: QEMU's `virtio-blk-device` on a raw image
//! and `virtio-net-device` on user-mode networking), driven with the `virtio-drivers`
//! crate over [`crate::dma::DirectMapHal`]: a disk stubvirt serves to the frontend, and a
//! NIC that becomes the uplink of the switch.
//!
//! The disk completes each request before returning (polled); the NIC is checked on every
//! pass of the serve loop, and its interrupt ends the loop's `SCHEDOP_poll` when the GIC
//! could be set up for it (see `arch::host_irq`).

use crate::arch::BootInfo;
use crate::dma::{self, DirectMapHal};
use crate::nic_queues::{NicQueues, Sent};
use alloc::vec;
use alloc::vec::Vec;
use devices::backend::{Backend, UplinkIndex};
use devices::blk::backend::{BlockBackend, StorageError, SECTOR_SIZE};
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::transport::mmio::MmioTransport;
use virtio_drivers::transport::{DeviceType, Transport};

type Mmio = MmioTransport<'static>;

/// What the probe found: at most one disk and one NIC are used (the first of each).
pub struct HostDevices {
    pub disk: Option<HostDisk>,
    pub nic: Option<HostNic>,
}

/// Drives the first virtio-blk and the first virtio-net of the host's windows. Only the
/// arm64 boot finds any (from the device tree); on x86 this is empty and the compiler
/// leaves the drivers out of the image.
pub fn probe(boot: &BootInfo) -> HostDevices {
    let mut found = HostDevices {
        disk: None,
        nic: None,
    };
    if cfg!(not(target_arch = "aarch64")) {
        return found;
    }
    for (transport, intid) in dma::host_transports(boot) {
        match transport.device_type() {
            DeviceType::Block if found.disk.is_none() => match HostDisk::new(transport) {
                Ok(disk) => found.disk = Some(disk),
                Err(e) => log::warn!("host virtio-blk: {e}"),
            },
            DeviceType::Network if found.nic.is_none() => match HostNic::new(transport, intid) {
                Ok(nic) => found.nic = Some(nic),
                Err(e) => log::warn!("host virtio-net: {e}"),
            },
            other => log::info!("host virtio device {other:?} left alone"),
        }
    }
    found
}

/// Bytes moved per request to the host disk: the bounce buffer's size.
const DISK_CHUNK: usize = 64 * 1024;

/// A host virtio-blk device as the backing store of a frontend's virtio-blk device.
/// Guest data goes through one bounce buffer: the frontend's pages are grant mappings,
/// which are not identity mapped and so cannot be handed to the host device.
pub struct HostDisk {
    device: VirtIOBlk<DirectMapHal, Mmio>,
    bounce: Vec<u8>,
    capacity: u64,
    read_only: bool,
}

impl HostDisk {
    fn new(transport: Mmio) -> Result<Self, virtio_drivers::Error> {
        let device = VirtIOBlk::new(transport)?;
        let capacity = device.capacity() * SECTOR_SIZE;
        let read_only = device.readonly();
        log::info!(
            "host virtio-blk: {} MiB{}",
            capacity >> 20,
            if read_only { ", read-only" } else { "" }
        );
        Ok(Self {
            device,
            bounce: vec![0; DISK_CHUNK],
            capacity,
            read_only,
        })
    }

    /// Calls `each(sector, chunk)` for the chunks of `[offset, offset + len)`.
    fn chunks(
        offset: u64,
        len: usize,
        mut each: impl FnMut(usize, usize) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let mut done = 0;
        while done < len {
            let now = (len - done).min(DISK_CHUNK);
            let sector = (offset + done as u64) / SECTOR_SIZE;
            each(
                usize::try_from(sector).map_err(|_| StorageError::OutOfRange)?,
                now,
            )?;
            done += now;
        }
        Ok(())
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

    /// Zeroes through the ordinary write path, a bounce chunk at a time.
    fn write_zeros(&mut self, offset: u64, len: u64) -> Result<(), StorageError> {
        let len = usize::try_from(len).map_err(|_| StorageError::OutOfRange)?;
        self.write(offset, len, &mut |chunk| {
            chunk.fill(0);
            true
        })
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
        self.check(offset, len as u64)?;
        let (device, bounce) = (&mut self.device, &mut self.bounce);
        Self::chunks(offset, len, |sector, n| {
            let chunk = bounce.get_mut(..n).ok_or(StorageError::Io)?;
            device
                .read_blocks(sector, chunk)
                .map_err(|_| StorageError::Io)?;
            if sink(chunk) {
                Ok(())
            } else {
                Err(StorageError::GuestAccess)
            }
        })
    }

    fn write(
        &mut self,
        offset: u64,
        len: usize,
        source: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<(), StorageError> {
        self.check(offset, len as u64)?;
        let (device, bounce) = (&mut self.device, &mut self.bounce);
        Self::chunks(offset, len, |sector, n| {
            let chunk = bounce.get_mut(..n).ok_or(StorageError::Io)?;
            if !source(chunk) {
                return Err(StorageError::GuestAccess);
            }
            device
                .write_blocks(sector, chunk)
                .map_err(|_| StorageError::Io)
        })
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        self.device.flush().map_err(|_| StorageError::Io)
    }

    /// Nothing to do: a discarded range's contents are unspecified, and zeroing it
    /// through the bounce buffer would turn one discard request into up to 32 MiB of
    /// synchronous writes. (The range is still checked, as for any request.)
    fn discard(&mut self, offset: u64, len: u64) -> Result<(), StorageError> {
        self.check(offset, len)
    }

    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), StorageError> {
        self.write_zeros(offset, len)
    }

    fn serial(&self) -> &[u8] {
        b"stubvirt-disk"
    }
}

/// Frames taken from the NIC per pass (bounded work).
const NIC_RX_PER_PASS: usize = 64;

/// A host virtio-net device as the switch's uplink.
pub struct HostNic {
    queues: NicQueues,
    /// The GIC INTID it raises (from the device tree).
    pub intid: Option<u32>,
    /// Frames the NIC refused to send (tx error); counted, never retried.
    pub tx_errors: u64,
}

impl HostNic {
    fn new(transport: Mmio, intid: Option<u32>) -> Result<Self, virtio_drivers::Error> {
        let queues = NicQueues::new(transport)?;
        let mac = queues.mac();
        log::info!("host virtio-net: MAC {mac:02x?}, interrupt {intid:?}");
        Ok(Self {
            queues,
            intid,
            tx_errors: 0,
        })
    }

    pub fn mac(&self) -> [u8; 6] {
        self.queues.mac()
    }

    /// Acknowledges the device's interrupt: its level-triggered line drops until the
    /// next frame. The frames themselves are taken by [`HostNic::pump`].
    pub fn acknowledge(&mut self) {
        self.queues.acknowledge_interrupt();
    }

    /// Moves frames both ways between the NIC and `uplink`: what the wire received goes
    /// into the switch, what the switch holds for the wire is sent.
    pub fn pump(&mut self, backend: &mut Backend, uplink: UplinkIndex) -> Pumped {
        let mut received = 0;
        while received < NIC_RX_PER_PASS {
            match self.queues.receive(|frame| {
                // A drop is counted by the uplink itself.
                let _ = backend.uplink_receive(uplink, frame);
            }) {
                Ok(true) => received += 1,
                Ok(false) => break,
                Err(e) => {
                    log::error!("host virtio-net: receive failed: {e}");
                    break;
                }
            }
        }
        let (queues, errors) = (&mut self.queues, &mut self.tx_errors);
        let sent = backend.uplink_transmit(uplink, &mut |bytes| match queues.send(bytes) {
            Ok(Sent::Posted) => true,
            // Stays with the switch until the device completes earlier frames.
            Ok(Sent::Busy) => false,
            Err(_) => {
                *errors += 1;
                true
            }
        });
        Pumped { received, sent }
    }
}

/// Frames one [`HostNic::pump`] moved: into the switch (the frontends' rx queues then have
/// work) and out to the wire.
pub struct Pumped {
    pub received: usize,
    pub sent: usize,
}
