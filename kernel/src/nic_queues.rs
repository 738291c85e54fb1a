//! The host NIC's queues with stubvirt's own buffers, allocated once: receive buffers
//! posted to the device and handed back after each frame, transmit buffers filled and
//! posted without waiting for the device (up to a queue's worth in flight, reclaimed as
//! it completes them). `virtio-drivers`' `VirtIONet` wrapper would allocate a buffer for
//! every frame sent and spin until the device took it. The one `unsafe` contract of the
//! raw API (a posted buffer is left alone until the device returns it) is kept here.

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

/// The host NIC and the buffers it receives into and sends from.
pub struct NicQueues {
    // Declared first so it drops first: its Drop unsets the queues before the buffers go.
    device: RawNic,
    buffers: Box<[[u8; NIC_BUFFER]]>,
    /// The buffer the device holds under each token (a descriptor index), if any.
    posted: [Option<usize>; NIC_QUEUE],
    tx_buffers: Box<[[u8; NIC_BUFFER]]>,
    /// Transmit buffers the device does not hold.
    tx_free: heapless::Vec<usize, NIC_QUEUE>,
    /// The transmit buffer and the length posted under each token, if any.
    tx_posted: [Option<(usize, usize)>; NIC_QUEUE],
}

/// What [`NicQueues::send`] did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    Posted,
    /// Every transmit buffer is in flight: try again after the device completes some.
    Busy,
}

impl NicQueues {
    /// Starts the device and posts every receive buffer.
    pub fn new(transport: MmioTransport<'static>) -> Result<Self, Error> {
        let mut nic = Self {
            device: VirtIONetRaw::new(transport)?,
            // Built on the heap one buffer at a time (64 KiB would not fit the stack).
            buffers: vec![[0; NIC_BUFFER]; NIC_QUEUE].into_boxed_slice(),
            posted: [None; NIC_QUEUE],
            tx_buffers: vec![[0; NIC_BUFFER]; NIC_QUEUE].into_boxed_slice(),
            tx_free: (0..NIC_QUEUE).collect(),
            tx_posted: [None; NIC_QUEUE],
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

    /// Posts one frame behind a virtio header, without waiting for the device. A frame
    /// too large for a buffer is an error (the uplink's frames are MTU-sized).
    pub fn send(&mut self, frame: &[u8]) -> Result<Sent, Error> {
        self.reclaim_sent()?;
        if !self.device.can_send() {
            return Ok(Sent::Busy);
        }
        let Some(&index) = self.tx_free.last() else {
            return Ok(Sent::Busy);
        };
        let buffer = self.tx_buffers.get_mut(index).ok_or(Error::InvalidParam)?;
        let header = self.device.fill_buffer_header(buffer)?;
        let len = header + frame.len();
        buffer
            .get_mut(header..len)
            .ok_or(Error::InvalidParam)?
            .copy_from_slice(frame);
        let posted = buffer.get(..len).ok_or(Error::InvalidParam)?;
        // SAFETY: the buffer is boxed with the device and outlives its posting (as the
        // receive buffers do); it left `tx_free` below and is not written again until
        // `reclaim_sent` gets it back from `transmit_complete` under this token.
        let token = unsafe { self.device.transmit_begin(posted)? };
        let slot = self
            .tx_posted
            .get_mut(usize::from(token))
            .ok_or(Error::WrongToken)?;
        *slot = Some((index, len));
        self.tx_free.pop();
        Ok(Sent::Posted)
    }

    /// Takes back the transmit buffers the device has finished with.
    fn reclaim_sent(&mut self) -> Result<(), Error> {
        while let Some(token) = self.device.poll_transmit() {
            let (index, len) = self
                .tx_posted
                .get_mut(usize::from(token))
                .and_then(Option::take)
                .ok_or(Error::WrongToken)?;
            let buffer = self
                .tx_buffers
                .get(index)
                .and_then(|b| b.get(..len))
                .ok_or(Error::WrongToken)?;
            // SAFETY: the same buffer and length `send` posted under `token`.
            unsafe { self.device.transmit_complete(token, buffer)? };
            // Room: every index in flight came out of `tx_free`.
            let _ = self.tx_free.push(index);
        }
        Ok(())
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
