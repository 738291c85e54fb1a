//! The queue registers of the register file: selecting and configuring a queue, making
//! it ready (its rings checked and mapped), resetting it alone (RING_RESET), and the
//! doorbell.

use super::{reg, status, MmioDevice, MmioError};
use crate::device::{QueueSlot, VirtioDevice};
use crate::features;
use crate::memory::GuestMemory;
use crate::queue::SplitQueue;

impl<D: VirtioDevice> MmioDevice<D> {
    /// The selected queue's registers, writable only between FEATURES_OK and QueueReady.
    pub(super) fn queue_config(
        &mut self,
        offset: u64,
    ) -> Result<&mut crate::queue::QueueConfig, MmioError> {
        let features_ok = self.status & status::FEATURES_OK != 0;
        match self.queues.get_mut(self.queue_sel as usize) {
            Some(slot) if features_ok && slot.live.is_none() => Ok(&mut slot.config),
            _ => Err(MmioError::NotNow(offset)),
        }
    }

    pub(super) fn write_queue_ready<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        value: u32,
    ) -> Result<(), MmioError> {
        let index = self.queue_sel as usize;
        let negotiated = self.negotiated();
        let features_ok = self.status & status::FEATURES_OK != 0;
        let max = self.device.queue_max_size(index);
        let Some(slot) = self.queues.get_mut(index) else {
            return Err(MmioError::NotNow(reg::QUEUE_READY));
        };
        if value == 0 {
            if let Some(queue) = slot.live.take() {
                queue.release(mem, &mut self.counters);
            }
            slot.pending = false;
            return Ok(());
        }
        if !features_ok {
            return Err(MmioError::NotNow(reg::QUEUE_READY));
        }
        if slot.live.is_some() {
            return Ok(());
        }
        let activated = SplitQueue::activate(
            mem,
            &slot.config,
            max,
            negotiated & features::EVENT_IDX != 0,
            negotiated & features::INDIRECT_DESC != 0,
            &mut self.counters,
        );
        match activated {
            Ok(queue) => {
                slot.live = Some(queue);
                Ok(())
            }
            Err(error) => {
                log::warn!("queue {index}: setup refused: {error:?}");
                self.counters.queue_errors = self.counters.queue_errors.saturating_add(1);
                self.needs_reset();
                Ok(())
            }
        }
    }

    pub(super) fn write_queue_reset<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        value: u32,
    ) -> Result<(), MmioError> {
        if self.negotiated() & features::RING_RESET == 0 {
            return Err(MmioError::NotNow(reg::QUEUE_RESET));
        }
        let Some(slot) = self.queues.get_mut(self.queue_sel as usize) else {
            return Err(MmioError::NotNow(reg::QUEUE_RESET));
        };
        if value == 1 {
            if let Some(queue) = slot.live.take() {
                queue.release(mem, &mut self.counters);
            }
            *slot = QueueSlot::default();
        }
        Ok(())
    }

    pub(super) fn notify(&mut self, value: u32) -> Result<(), MmioError> {
        self.counters.notifications = self.counters.notifications.saturating_add(1);
        let driver_ok = self.status & status::DRIVER_OK != 0;
        // Without VIRTIO_F_NOTIFICATION_DATA the value is the queue index.
        match self.queues.get_mut(value as usize) {
            Some(slot) if driver_ok && slot.live.is_some() => {
                slot.pending = true;
                Ok(())
            }
            _ => {
                self.counters.ignored_notifications =
                    self.counters.ignored_notifications.saturating_add(1);
                Err(MmioError::NotNow(reg::QUEUE_NOTIFY))
            }
        }
    }
}
