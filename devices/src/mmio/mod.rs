//! The virtio-mmio register file, device side (virtio 1.2 section 4.2.2, version 2).
//!
//! Input is what Xen's ioreq carries for a trapped access of the register window: offset,
//! size, direction and data. Output is the value read, or an [`MmioError`] for an access
//! the spec forbids (the host still completes the ioreq, with 0 for a read).

use crate::counters::Counters;
use crate::device::{Io, ProcessOutcome, QueueSlot, VirtioDevice, MAX_QUEUES};
use crate::features;
use crate::memory::GuestMemory;
use crate::queue::chain::ChainBatch;
use alloc::boxed::Box;
use heapless::Vec;

mod queue_registers;
mod registers;

pub use registers::{reg, status, MmioError, INT_CONFIG_CHANGE, INT_USED_BUFFER};

/// Size of the register window a device occupies.
pub const WINDOW_SIZE: u64 = 0x200;
const MAGIC: u32 = 0x7472_6976; // "virt"
const VERSION: u32 = 2;
/// "XENS": stubvirt's vendor id, shown by Linux in /sys/bus/virtio/devices/*/vendor.
pub const VENDOR_ID: u32 = 0x534e_4558;
const CONFIG_START: u64 = 0x100;

/// A virtio device behind a virtio-mmio register window.
pub struct MmioDevice<D: VirtioDevice> {
    device: D,
    status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    queues: Vec<QueueSlot, MAX_QUEUES>,
    interrupt_status: u32,
    config_generation: u32,
    /// An interrupt became due that the host has not injected yet.
    interrupt_due: bool,
    // Boxed: the batch scratch (tens of KiB; docs/performance.md, Footprint) is too big
    // for the kernel's boot stack.
    chain: Box<ChainBatch>,
    counters: Counters,
    /// The transport features offered (see [`Self::without_indirect_descriptors`]).
    transport: u64,
}

impl<D: VirtioDevice> MmioDevice<D> {
    pub fn new(device: D) -> Self {
        let mut queues = Vec::new();
        for _ in 0..device.queue_count().min(MAX_QUEUES) {
            let _ = queues.push(QueueSlot::default());
        }
        Self {
            device,
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            queues,
            interrupt_status: 0,
            config_generation: 0,
            interrupt_due: false,
            chain: Box::new(ChainBatch::new()),
            counters: Counters::default(),
            transport: features::TRANSPORT,
        }
    }

    /// The device without `VIRTIO_F_INDIRECT_DESC`: drivers then put every descriptor
    /// in the ring, and a chain's table needs no grant of its own to be reached (on Xen
    /// a map and an unmap, or a copy, per request before its header can be read).
    pub fn without_indirect_descriptors(mut self) -> Self {
        self.transport &= !features::INDIRECT_DESC;
        self
    }

    pub fn device(&self) -> &D {
        &self.device
    }

    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn status(&self) -> u32 {
        self.status
    }

    /// Features offered to the driver: the device's and the transport's.
    pub fn offered_features(&self) -> u64 {
        self.device.features() | self.transport
    }

    fn negotiated(&self) -> u64 {
        if self.status & status::FEATURES_OK != 0 {
            self.driver_features
        } else {
            0
        }
    }

    /// The interrupt line level: high while InterruptStatus has bits set.
    pub fn interrupt_level(&self) -> bool {
        self.interrupt_status != 0
    }

    /// Takes the "interrupt due" flag: true once per new interrupt event (edge).
    pub fn take_interrupt(&mut self) -> bool {
        core::mem::take(&mut self.interrupt_due)
    }

    /// The host could not inject the interrupt taken last: try again next time.
    pub fn defer_interrupt(&mut self) {
        self.interrupt_due = true;
        self.counters.interrupts_deferred = self.counters.interrupts_deferred.saturating_add(1);
    }

    fn raise(&mut self, bits: u32) {
        self.interrupt_status |= bits;
        self.interrupt_due = true;
        self.counters.interrupts = self.counters.interrupts.saturating_add(1);
    }

    /// A guest read of `size` bytes at `offset` in the window.
    pub fn read(&mut self, offset: u64, size: u8) -> Result<u64, MmioError> {
        let result = self.read_inner(offset, size);
        if result.is_err() {
            self.counters.mmio_errors = self.counters.mmio_errors.saturating_add(1);
        }
        result
    }

    /// A guest write of `size` bytes at `offset`; may map or unmap rings.
    pub fn write<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        offset: u64,
        size: u8,
        value: u64,
    ) -> Result<(), MmioError> {
        let result = self.write_inner(mem, offset, size, value);
        if result.is_err() {
            self.counters.mmio_errors = self.counters.mmio_errors.saturating_add(1);
        }
        result
    }

    fn read_inner(&mut self, offset: u64, size: u8) -> Result<u64, MmioError> {
        if let Some(at) = offset.checked_sub(CONFIG_START) {
            return self.read_config(offset, at, size);
        }
        check_register_width(offset, size)?;
        let sel = self.queue_sel as usize;
        let value = match offset {
            reg::MAGIC_VALUE => MAGIC,
            reg::VERSION => VERSION,
            reg::DEVICE_ID => self.device.device_id(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => self.offered_features() as u32,
                1 => (self.offered_features() >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => match self.queues.get(sel) {
                Some(_) => u32::from(self.device.queue_max_size(sel)),
                None => 0,
            },
            reg::QUEUE_READY => u32::from(self.queues.get(sel).is_some_and(|q| q.live.is_some())),
            reg::INTERRUPT_STATUS => self.interrupt_status,
            reg::STATUS => self.status,
            // No shared memory regions: length and base read as all ones.
            reg::SHM_LEN_LOW | reg::SHM_LEN_HIGH | reg::SHM_BASE_LOW | reg::SHM_BASE_HIGH => {
                u32::MAX
            }
            // Resets complete synchronously, so a reset is never seen in progress.
            reg::QUEUE_RESET => 0,
            reg::CONFIG_GENERATION => self.config_generation,
            reg::DEVICE_FEATURES_SEL
            | reg::DRIVER_FEATURES
            | reg::DRIVER_FEATURES_SEL
            | reg::QUEUE_SEL
            | reg::QUEUE_NUM
            | reg::QUEUE_NOTIFY
            | reg::INTERRUPT_ACK
            | reg::QUEUE_DESC_LOW
            | reg::QUEUE_DESC_HIGH
            | reg::QUEUE_DRIVER_LOW
            | reg::QUEUE_DRIVER_HIGH
            | reg::QUEUE_DEVICE_LOW
            | reg::QUEUE_DEVICE_HIGH
            | reg::SHM_SEL => return Err(MmioError::WrongDirection(offset)),
            _ => return Err(MmioError::OutOfRange(offset)),
        };
        Ok(u64::from(value))
    }

    /// The config field at `at` bytes into the config space (register `offset`).
    fn read_config(&self, offset: u64, at: u64, size: u8) -> Result<u64, MmioError> {
        if !matches!(size, 1 | 2 | 4 | 8) || !at.is_multiple_of(u64::from(size)) {
            return Err(MmioError::BadWidth { offset, size });
        }
        let mut bytes = [0u8; 64];
        let len = self.device.config_bytes(&mut bytes) as u64;
        let end = at.checked_add(u64::from(size)).filter(|&end| end <= len);
        let Some(end) = end else {
            return Err(MmioError::OutOfRange(offset));
        };
        let mut value = [0u8; 8];
        let field = bytes
            .get(at as usize..end as usize)
            .ok_or(MmioError::OutOfRange(offset))?;
        value
            .get_mut(..field.len())
            .ok_or(MmioError::OutOfRange(offset))?
            .copy_from_slice(field);
        Ok(u64::from_le_bytes(value))
    }

    fn write_inner<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        offset: u64,
        size: u8,
        value: u64,
    ) -> Result<(), MmioError> {
        if let Some(at) = offset.checked_sub(CONFIG_START) {
            // Every config field stubvirt offers is read-only for the driver.
            let _ = self.read_config(offset, at, size)?;
            return Err(MmioError::WrongDirection(offset));
        }
        check_register_width(offset, size)?;
        let value = value as u32;
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::DRIVER_FEATURES => self.write_driver_features(offset, value)?,
            reg::QUEUE_SEL => self.queue_sel = value,
            // A size past 16 bits is kept as one QueueReady refuses, not truncated into
            // a size that may pass (0x1_0008 is not 8).
            reg::QUEUE_NUM => {
                self.queue_config(offset)?.size = u16::try_from(value).unwrap_or(u16::MAX)
            }
            reg::QUEUE_DESC_LOW => set_low(&mut self.queue_config(offset)?.desc, value),
            reg::QUEUE_DESC_HIGH => set_high(&mut self.queue_config(offset)?.desc, value),
            reg::QUEUE_DRIVER_LOW => set_low(&mut self.queue_config(offset)?.driver, value),
            reg::QUEUE_DRIVER_HIGH => set_high(&mut self.queue_config(offset)?.driver, value),
            reg::QUEUE_DEVICE_LOW => set_low(&mut self.queue_config(offset)?.device, value),
            reg::QUEUE_DEVICE_HIGH => set_high(&mut self.queue_config(offset)?.device, value),
            reg::QUEUE_READY => self.write_queue_ready(mem, value)?,
            reg::QUEUE_NOTIFY => self.notify(value)?,
            reg::QUEUE_RESET => self.write_queue_reset(mem, value)?,
            reg::INTERRUPT_ACK => self.interrupt_status &= !value,
            reg::STATUS => self.write_status(mem, value)?,
            reg::SHM_SEL => {}
            reg::MAGIC_VALUE
            | reg::VERSION
            | reg::DEVICE_ID
            | reg::VENDOR_ID
            | reg::DEVICE_FEATURES
            | reg::QUEUE_NUM_MAX
            | reg::INTERRUPT_STATUS
            | reg::SHM_LEN_LOW
            | reg::SHM_LEN_HIGH
            | reg::SHM_BASE_LOW
            | reg::SHM_BASE_HIGH
            | reg::CONFIG_GENERATION => return Err(MmioError::WrongDirection(offset)),
            _ => return Err(MmioError::OutOfRange(offset)),
        }
        Ok(())
    }

    fn write_driver_features(&mut self, offset: u64, value: u32) -> Result<(), MmioError> {
        if self.status & status::DRIVER == 0 || self.status & status::FEATURES_OK != 0 {
            return Err(MmioError::NotNow(offset));
        }
        match self.driver_features_sel {
            0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(value),
            1 => {
                self.driver_features =
                    (self.driver_features & 0xffff_ffff) | (u64::from(value) << 32)
            }
            // Feature words past 63 are never offered, so any bit set there is refused.
            _ if value != 0 => return Err(MmioError::NotNow(offset)),
            _ => {}
        }
        Ok(())
    }

    fn write_status<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        value: u32,
    ) -> Result<(), MmioError> {
        if value == 0 {
            self.reset(mem);
            return Ok(());
        }
        let from = self.status;
        let bad = MmioError::BadStatus { from, to: value };
        // The driver only adds bits (NEEDS_RESET is the device's to set and stays).
        let added = value & !from;
        if (from & !status::NEEDS_RESET) & !value != 0 || added & status::NEEDS_RESET != 0 {
            return Err(bad);
        }
        let mut next = from | added;
        if added & status::FEATURES_OK != 0 {
            let wanted = self.driver_features;
            let offered = self.offered_features();
            if from & status::DRIVER == 0
                || wanted & !offered != 0
                || wanted & features::REQUIRED != features::REQUIRED
                || features::breaks_dependency(wanted, self.device.feature_dependencies())
            {
                log::warn!(
                    "refusing FEATURES_OK: driver wants {wanted:#x}, device offers {offered:#x}"
                );
                // Spec: leave FEATURES_OK clear so the driver sees the refusal.
                next &= !status::FEATURES_OK;
            }
        }
        if added & status::DRIVER_OK != 0 {
            if next & status::FEATURES_OK == 0 {
                return Err(bad);
            }
            self.device.activate(self.driver_features);
            // Chains made available before DRIVER_OK (their doorbells were ignored) are
            // looked at now.
            self.kick_all();
        }
        self.status = next;
        Ok(())
    }

    /// Device reset (status 0): every mapping released, every register cleared.
    pub fn reset<M: GuestMemory + ?Sized>(&mut self, mem: &mut M) {
        // Nothing is left in the scratch between passes; if something ever were, a reset
        // is where it must go.
        self.chain.release(mem, &mut self.counters);
        for slot in self.queues.iter_mut() {
            if let Some(queue) = slot.live.take() {
                queue.release(mem, &mut self.counters);
            }
            *slot = QueueSlot::default();
        }
        self.device.reset();
        self.status = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.interrupt_status = 0;
        self.interrupt_due = false;
    }

    /// Sets DEVICE_NEEDS_RESET and, once the driver is running, tells it through a
    /// configuration change interrupt.
    fn needs_reset(&mut self) {
        self.status |= status::NEEDS_RESET;
        if self.status & status::DRIVER_OK != 0 {
            self.raise(INT_CONFIG_CHANGE);
        }
    }

    /// The device's configuration changed (capacity, link): bump the generation and tell
    /// the driver.
    pub fn config_changed(&mut self) {
        self.config_generation = self.config_generation.wrapping_add(1);
        if self.status & status::DRIVER_OK != 0 {
            self.raise(INT_CONFIG_CHANGE);
        }
    }

    /// Whether [`Self::process`] has anything to do.
    pub fn has_pending(&self) -> bool {
        self.queues.iter().any(|q| q.pending)
    }

    /// Serves the device's queues (bounded per queue). Returns whether more work remains.
    pub fn process<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        context: &mut D::Context,
    ) -> ProcessOutcome {
        if self.status & status::DRIVER_OK == 0 {
            return ProcessOutcome::default();
        }
        let io = Io {
            queues: &mut self.queues,
            mem,
            counters: &mut self.counters,
            chain: &mut self.chain,
        };
        let outcome = self.device.process(io, context);
        if outcome.interrupt {
            self.raise(INT_USED_BUFFER);
        }
        if let Some(error) = outcome.broken {
            log::warn!(
                "device {}: queue broken: {error:?}",
                self.device.device_id()
            );
            self.needs_reset();
        }
        outcome
    }

    /// Marks every live queue pending (the host lost track, or after restore).
    pub fn kick_all(&mut self) {
        for slot in self.queues.iter_mut().filter(|q| q.live.is_some()) {
            slot.pending = true;
        }
    }
}

fn check_register_width(offset: u64, size: u8) -> Result<(), MmioError> {
    if size != 4 || !offset.is_multiple_of(4) {
        return Err(MmioError::BadWidth { offset, size });
    }
    Ok(())
}

fn set_low(field: &mut u64, value: u32) {
    *field = (*field & !0xffff_ffff) | u64::from(value);
}

fn set_high(field: &mut u64, value: u32) {
    *field = (*field & 0xffff_ffff) | (u64::from(value) << 32);
}

#[cfg(test)]
mod tests;
