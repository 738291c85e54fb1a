//! A frontend vcpu's ioreq slot and our end of its event channel, as the ioreq loop of
//! `devices::ioreq_loop` sees them.

use super::abi::event_channel::Port;
use super::evtchn;
use super::ioreq_page::IoreqSlot;
use devices::ioreq::Ioreq;
use devices::ioreq_loop::VcpuChannel;

pub struct EventSlot {
    pub ioreq: IoreqSlot,
    /// Our port bound to the vcpu's `vp_eport` (masked: only ever polled).
    pub port: Port,
}

impl VcpuChannel for EventSlot {
    fn take_ready(&mut self) -> Option<Ioreq> {
        // The pending bit is cleared before the slot is read: an event Xen raises after
        // the read stays pending and ends the next SCHEDOP_poll at once.
        if evtchn::is_pending(self.port) {
            evtchn::clear_pending(self.port);
        }
        self.ioreq.take_ready()
    }

    fn complete(&mut self, data: u64) {
        self.ioreq.complete(data);
    }

    fn notify(&mut self) -> bool {
        evtchn::send(self.port).is_ok()
    }
}
