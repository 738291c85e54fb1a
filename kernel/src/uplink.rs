//! The switch's uplink in the serve loop: the host NIC ([`HostNic`]) moved to and from
//! its switch port every pass, woken by the NIC's interrupt where the GIC could be set up
//! for it, polled otherwise.

use crate::arch::{host_irq, BootInfo};
use crate::hostdev::HostNic;
use alloc::string::String;
use core::fmt::Write;
use devices::backend::{Backend, UplinkIndex};

/// Poll timeouts without the NIC's interrupt: a frame from the wire waits at most this
/// long: short while frames flow, longer once the link was quiet for [`ACTIVE_NS`]
/// (fewer wake-ups of an idle backend).
const BUSY_POLL_NS: u64 = 1_000_000;
const IDLE_POLL_NS: u64 = 20_000_000;
const ACTIVE_NS: u64 = 200_000_000;
/// With the NIC's interrupt ending the poll: a look anyway this often, so a lost edge
/// costs a delay, never the link.
const IRQ_POLL_NS: u64 = 100_000_000;

/// Drives the host NIC for the switch's uplink port (the port itself, its frames and
/// counters, is `devices::net::uplink::Uplink`).
pub struct UplinkDriver {
    index: UplinkIndex,
    nic: HostNic,
    /// The NIC's INTID when its interrupt wakes the loop.
    interrupt: Option<u32>,
    /// Until when frames count as flowing (polled mode).
    active_until: u64,
    /// Interrupts of the NIC acknowledged.
    irqs: u64,
}

impl UplinkDriver {
    /// Connects `nic` to a new switch port (None when the switch is full) and, unless
    /// `use_irq` is false, sets up its interrupt.
    pub fn new(
        backend: &mut Backend,
        nic: HostNic,
        boot: &BootInfo,
        use_irq: bool,
    ) -> Option<Self> {
        let index = backend.add_uplink()?;
        let interrupt = nic.intid.filter(|_| use_irq).filter(|&intid| {
            host_irq::init(boot.gic_distributor as usize);
            host_irq::enable_spi(intid)
        });
        Some(Self {
            index,
            nic,
            interrupt,
            active_until: 0,
            irqs: 0,
        })
    }

    /// ` uplink=<mac> uplink_irq=<INTID or polled>` for the READY line.
    pub fn describe(&self, out: &mut String) {
        let [a, b, c, d, e, f] = self.nic.mac();
        let _ = write!(
            out,
            " uplink={a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}"
        );
        let _ = match self.interrupt {
            Some(intid) => write!(out, " uplink_irq={intid}"),
            None => write!(out, " uplink_irq=polled"),
        };
    }

    /// One pass: acknowledges the NIC's interrupt, then moves frames both ways. Returns
    /// whether there is work at once: frames entered the switch (the frontends' rx queues
    /// have it), or frames left for the wire while a tx queue waits (perhaps for the wire).
    pub fn service(&mut self, backend: &mut Backend, now: u64) -> bool {
        if let Some(intid) = self.interrupt {
            let nic = &mut self.nic;
            let acknowledged = host_irq::acknowledge_all(intid, || nic.acknowledge());
            self.irqs += acknowledged as u64;
        }
        let moved = self.nic.pump(backend, self.index);
        if moved.received > 0 || moved.sent > 0 {
            self.active_until = now.saturating_add(ACTIVE_NS);
        }
        moved.received > 0 || (moved.sent > 0 && backend.next_deadline().is_some())
    }

    /// How long the loop may sleep before the NIC needs a look.
    pub fn poll_timeout(&self, now: u64) -> u64 {
        match self.interrupt {
            Some(_) => IRQ_POLL_NS,
            None if now < self.active_until => BUSY_POLL_NS,
            None => IDLE_POLL_NS,
        }
    }

    /// ` uplink=in:..,out:..,seg:..,drop:..,full:..,csum:..,tx_err:..,irqs:..` for the
    /// counters line (`seg`: segments cut from GSO frames for the wire; `drop`: frames
    /// from the wire dropped; `full`: frames for the wire dropped at a full backlog).
    pub fn counters(&self, backend: &Backend, out: &mut String) {
        if let Some(u) = backend.uplink_stats(self.index) {
            let _ = write!(
                out,
                " uplink=in:{},out:{},seg:{},drop:{},full:{},csum:{},tx_err:{},irqs:{}",
                u.frames_in,
                u.frames_out,
                u.segments_out,
                u.dropped_in,
                u.dropped_full,
                u.checksums_completed,
                self.nic.tx_errors,
                self.irqs
            );
        }
    }
}
