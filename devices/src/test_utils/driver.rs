//! A virtio-mmio driver's register writes, for tests of the transport and of the devices
//! behind it. Each write must be accepted: a refusal panics (tests of refusals call
//! [`MmioDevice::write`] themselves).

use super::TestQueue;
use crate::device::VirtioDevice;
use crate::features;
use crate::memory::GuestMemory;
use crate::mmio::{reg, status, MmioDevice};

/// What a driver over grants must negotiate, and the ring features stubvirt offers.
pub const RING_FEATURES: u64 = features::REQUIRED | features::INDIRECT_DESC | features::EVENT_IDX;

/// Writes the 32-bit register at `offset`.
pub fn write<D: VirtioDevice, M: GuestMemory + ?Sized>(
    dev: &mut MmioDevice<D>,
    mem: &mut M,
    offset: u64,
    value: u32,
) {
    if let Err(e) = dev.write(mem, offset, 4, u64::from(value)) {
        panic!("register {offset:#x} refused {value:#x}: {e:?}");
    }
}

/// Reads the 32-bit register at `offset`.
pub fn read<D: VirtioDevice>(dev: &mut MmioDevice<D>, offset: u64) -> u32 {
    match dev.read(offset, 4) {
        Ok(value) => value as u32,
        Err(e) => panic!("register {offset:#x} unreadable: {e:?}"),
    }
}

/// Reset, ACKNOWLEDGE, DRIVER, `wanted` over both feature selector pages, FEATURES_OK.
/// Returns the status read back: without FEATURES_OK if the device refused.
pub fn negotiate<D: VirtioDevice, M: GuestMemory + ?Sized>(
    dev: &mut MmioDevice<D>,
    mem: &mut M,
    wanted: u64,
) -> u32 {
    write(dev, mem, reg::STATUS, 0);
    write(dev, mem, reg::STATUS, status::ACKNOWLEDGE);
    write(dev, mem, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    for page in 0..2 {
        write(dev, mem, reg::DRIVER_FEATURES_SEL, page);
        write(
            dev,
            mem,
            reg::DRIVER_FEATURES,
            (wanted >> (32 * page)) as u32,
        );
    }
    let features_ok = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
    write(dev, mem, reg::STATUS, features_ok);
    read(dev, reg::STATUS)
}

/// Programs queue `index` with `queue`'s size and rings, then sets QueueReady.
pub fn set_queue<D: VirtioDevice, M: GuestMemory + ?Sized>(
    dev: &mut MmioDevice<D>,
    mem: &mut M,
    index: u32,
    queue: &TestQueue,
) {
    let config = queue.config();
    write(dev, mem, reg::QUEUE_SEL, index);
    write(dev, mem, reg::QUEUE_NUM, u32::from(config.size));
    let rings = [
        (reg::QUEUE_DESC_LOW, config.desc),
        (reg::QUEUE_DRIVER_LOW, config.driver),
        (reg::QUEUE_DEVICE_LOW, config.device),
    ];
    for (low, addr) in rings {
        write(dev, mem, low, addr as u32);
        write(dev, mem, low + 4, (addr >> 32) as u32);
    }
    write(dev, mem, reg::QUEUE_READY, 1);
}

/// Negotiates `wanted`, sets up `queues` as queues 0, 1, ... and sets DRIVER_OK; panics
/// unless the device took it all.
pub fn bring_up<D: VirtioDevice, M: GuestMemory + ?Sized>(
    dev: &mut MmioDevice<D>,
    mem: &mut M,
    wanted: u64,
    queues: &[&TestQueue],
) {
    let negotiated = negotiate(dev, mem, wanted);
    assert_ne!(
        negotiated & status::FEATURES_OK,
        0,
        "features {wanted:#x} refused"
    );
    for (index, queue) in (0..).zip(queues) {
        set_queue(dev, mem, index, queue);
    }
    let running = read(dev, reg::STATUS) | status::DRIVER_OK;
    write(dev, mem, reg::STATUS, running);
    assert_eq!(read(dev, reg::STATUS), running, "the device needs a reset");
}
