//! The host NIC's queues with stubvirt's own receive buffers: allocated once, posted to
//! the device, handed back after each frame. `virtio-drivers`' `VirtIONet` wrapper would
//! allocate a buffer for every frame sent; its raw driver sends from a borrowed slice, so
//! nothing is allocated while serving. The one `unsafe` contract of the raw receive API
//! (a posted buffer is left alone until the device returns it) is kept here.

use crate::dma::DirectMapHal;
use alloc::boxed::Box;
use alloc::vec;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::mmio::MmioTransport;
use virtio_drivers::Error;

/// Queue size of the host NIC's rx and tx queues (rx buffers posted at once).
pub const NIC_QUEUE: usize = 32;
/// Rx buffer size: header plus an MTU-1500 frame with a VLAN tag, rounded up.
pub const NIC_BUFFER: usize = 2048;

type RawNic = VirtIONetRaw<DirectMapHal, MmioTransport<'static>, NIC_QUEUE>;

/// The host NIC and the buffers it receives into.
pub struct NicQueues {
    // Declared first so it drops first: its Drop unsets the queues before the buffers go.
    device: RawNic,
    buffers: Box<[[u8; NIC_BUFFER]]>,
    /// The buffer the device holds under each token (a descriptor index), if any.
    posted: [Option<usize>; NIC_QUEUE],
}

impl NicQueues {
    /// Starts the device and posts every receive buffer.
    pub fn new(transport: MmioTransport<'static>) -> Result<Self, Error> {
        let mut nic = Self {
            device: VirtIONetRaw::new(transport)?,
            // Built on the heap one buffer at a time (64 KiB would not fit the stack).
            buffers: vec![[0; NIC_BUFFER]; NIC_QUEUE].into_boxed_slice(),
            posted: [None; NIC_QUEUE],
        };
        for index in 0..NIC_QUEUE {
            nic.post(index)?;
        }
        Ok(nic)
    }

    pub fn mac(&self) -> [u8; 6] {
        self.device.mac_address()
    }

    pub fn acknowledge_interrupt(&mut self) {
        let _ = self.device.ack_interrupt();
    }

    pub fn can_send(&self) -> bool {
        self.device.can_send()
    }

    /// Sends one frame (the driver adds the virtio header) and waits for the device.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), Error> {
        self.device.send(frame)
    }

    /// Hands the next received frame to `deliver`, then posts its buffer again.
    /// `Ok(false)`: nothing was waiting.
    pub fn receive(&mut self, deliver: impl FnOnce(&[u8])) -> Result<bool, Error> {
        let Some(token) = self.device.poll_receive() else {
            return Ok(false);
        };
        let index = self
            .posted
            .get_mut(usize::from(token))
            .and_then(Option::take)
            .ok_or(Error::WrongToken)?;
        let buffer = self.buffers.get_mut(index).ok_or(Error::WrongToken)?;
        // SAFETY: `buffer` is the one `post` handed the device under `token` (recorded
        // in `posted`, taken out above), as `receive_complete` requires.
        let (header, len) = unsafe { self.device.receive_complete(token, buffer)? };
        if let Some(frame) = buffer.get(header..header + len) {
            deliver(frame);
        }
        self.post(index).map(|()| true)
    }

    fn post(&mut self, index: usize) -> Result<(), Error> {
        let buffer = self.buffers.get_mut(index).ok_or(Error::InvalidParam)?;
        // SAFETY: the buffer is boxed with the device and never moved or freed while the
        // device lives (it drops first, unsetting its queues); nothing reads or writes it
        // until `receive` gets it back from `receive_complete` under the token kept here.
        let token = unsafe { self.device.receive_begin(buffer)? };
        let slot = self
            .posted
            .get_mut(usize::from(token))
            .ok_or(Error::WrongToken)?;
        *slot = Some(index);
        Ok(())
    }
}
