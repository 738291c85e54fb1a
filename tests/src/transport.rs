//! A `virtio-drivers` transport whose register accesses trap into the simulated Xen, the
//! way a frontend's loads and stores of a virtio-mmio window do under a real one. It
//! speaks virtio-mmio version 2 the way Linux's `virtio_mmio` does (32-bit control
//! registers, config fields at their width, 64-bit fields as two 32-bit halves).
//!
//! Like Linux's virtio core on a `xen,grant-dma` platform, it also accepts
//! `VIRTIO_F_ACCESS_PLATFORM`: that is the platform's feature, not the device driver's.

use crate::machine::Machine;
use devices::backend::DomainId;
use devices::features::ACCESS_PLATFORM;
use devices::mmio::reg;
use std::cell::RefCell;
use std::rc::Rc;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Error, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

pub struct XenMmioTransport {
    machine: Rc<RefCell<Machine>>,
    domain: DomainId,
    vcpu: usize,
    base: u64,
    device_type: DeviceType,
}

impl XenMmioTransport {
    /// Probes the window like `virtio_mmio_probe`: magic, version 2, device id.
    pub fn probe(
        machine: Rc<RefCell<Machine>>,
        domain: DomainId,
        vcpu: usize,
        base: u64,
    ) -> Result<Self, String> {
        // Placeholder until the DeviceID register is read below.
        let mut transport = Self {
            machine,
            domain,
            vcpu,
            base,
            device_type: DeviceType::Block,
        };
        let magic = transport.read32(reg::MAGIC_VALUE);
        let version = transport.read32(reg::VERSION);
        if magic != 0x7472_6976 || version != 2 {
            return Err(format!(
                "no virtio-mmio v2 device at {base:#x}: magic {magic:#x} version {version}"
            ));
        }
        let id = transport.read32(reg::DEVICE_ID);
        transport.device_type =
            DeviceType::try_from(id).map_err(|_| format!("unknown device id {id}"))?;
        Ok(transport)
    }

    /// Moves later register accesses to another vcpu's ioreq slot.
    pub fn set_vcpu(&mut self, vcpu: usize) {
        self.vcpu = vcpu;
    }

    fn access(&self, offset: u64, size: u32, write: bool, data: u64) -> u64 {
        self.machine.borrow_mut().trap(
            self.domain,
            self.vcpu,
            self.base + offset,
            size,
            write,
            data,
        )
    }

    pub fn read32(&self, offset: u64) -> u32 {
        self.access(offset, 4, false, 0) as u32
    }

    pub fn write32(&self, offset: u64, value: u32) {
        self.access(offset, 4, true, u64::from(value));
    }

    fn write64(&self, low: u64, value: u64) {
        self.write32(low, value as u32);
        self.write32(low + 4, (value >> 32) as u32);
    }
}

impl Transport for XenMmioTransport {
    fn device_type(&self) -> DeviceType {
        self.device_type
    }

    fn read_device_features(&mut self) -> u64 {
        self.write32(reg::DEVICE_FEATURES_SEL, 0);
        let low = self.read32(reg::DEVICE_FEATURES);
        self.write32(reg::DEVICE_FEATURES_SEL, 1);
        let high = self.read32(reg::DEVICE_FEATURES);
        (u64::from(high) << 32) | u64::from(low)
    }

    fn write_driver_features(&mut self, driver_features: u64) {
        let offered = self.read_device_features();
        let features = driver_features | (offered & ACCESS_PLATFORM);
        self.write32(reg::DRIVER_FEATURES_SEL, 0);
        self.write32(reg::DRIVER_FEATURES, features as u32);
        self.write32(reg::DRIVER_FEATURES_SEL, 1);
        self.write32(reg::DRIVER_FEATURES, (features >> 32) as u32);
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.write32(reg::QUEUE_SEL, u32::from(queue));
        self.read32(reg::QUEUE_NUM_MAX)
    }

    fn notify(&mut self, queue: u16) {
        self.write32(reg::QUEUE_NOTIFY, u32::from(queue));
    }

    fn get_status(&self) -> DeviceStatus {
        DeviceStatus::from_bits_truncate(self.read32(reg::STATUS))
    }

    fn set_status(&mut self, status: DeviceStatus) {
        self.write32(reg::STATUS, status.bits());
    }

    fn set_guest_page_size(&mut self, _guest_page_size: u32) {
        // Legacy-only register; version 2 has none.
    }

    fn requires_legacy_layout(&self) -> bool {
        false
    }

    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        self.write32(reg::QUEUE_SEL, u32::from(queue));
        self.write32(reg::QUEUE_NUM, size);
        self.write64(reg::QUEUE_DESC_LOW, descriptors);
        self.write64(reg::QUEUE_DRIVER_LOW, driver_area);
        self.write64(reg::QUEUE_DEVICE_LOW, device_area);
        self.write32(reg::QUEUE_READY, 1);
    }

    fn queue_unset(&mut self, queue: u16) {
        self.write32(reg::QUEUE_SEL, u32::from(queue));
        self.write32(reg::QUEUE_READY, 0);
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        self.write32(reg::QUEUE_SEL, u32::from(queue));
        self.read32(reg::QUEUE_READY) != 0
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        let status = self.read32(reg::INTERRUPT_STATUS);
        if status != 0 {
            self.write32(reg::INTERRUPT_ACK, status);
        }
        InterruptStatus::from_bits_truncate(status)
    }

    fn read_config_generation(&self) -> u32 {
        self.read32(reg::CONFIG_GENERATION)
    }

    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, Error> {
        let size = core::mem::size_of::<T>();
        let mut bytes = vec![0u8; size];
        let mut at = 0;
        while at < size {
            let field = offset + at;
            let width = [4usize, 2, 1]
                .into_iter()
                .find(|&w| at + w <= size && field.is_multiple_of(w))
                .unwrap_or(1);
            let value = self.access(reg::CONFIG + field as u64, width as u32, false, 0);
            bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
            at += width;
        }
        T::read_from_bytes(&bytes).map_err(|_| Error::IoError)
    }

    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: T,
    ) -> Result<(), Error> {
        for (index, byte) in value.as_bytes().iter().enumerate() {
            self.access(
                reg::CONFIG + (offset + index) as u64,
                1,
                true,
                u64::from(*byte),
            );
        }
        Ok(())
    }
}
