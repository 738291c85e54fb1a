//! The host's own virtio devices (in the demo: QEMU's `virtio-blk-device` on a raw image
//! and `virtio-net-device` on user-mode networking), driven with the `virtio-drivers`
//! crate over [`crate::dma::DirectMapHal`]: a disk stubvirt serves to the frontend, and a
//! NIC that becomes the uplink of the switch.
//!
//! The disk is driven in `host_disk` (polled: its transfers end within the pass that
//! started them); the NIC is checked on every pass of the serve loop, and its interrupt
//! ends the loop's `SCHEDOP_poll` when the GIC could be set up for it (see
//! `arch::host_irq`).

use crate::arch::BootInfo;
use crate::dma;
pub use crate::host_disk::HostDisk;
use crate::nic_queues::{NicQueues, Sent};
use devices::backend::{Backend, UplinkIndex};
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
