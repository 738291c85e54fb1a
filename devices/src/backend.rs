//! The backend as the host sees it: devices registered at MMIO windows of frontend
//! domains, the net switch between them, and the two entry points an event loop needs:
//! answer a trapped register access, and serve the queues (bounded) with interrupts.
//!
//! The kernel drives this from Xen's ioreq slots; the host tests drive it from a
//! simulated Xen. Both supply guest memory per frontend through [`Frontends`].

use crate::blk::backend::{BlockBackend, Fill, StorageError, Ticket, TransferRoom};
use crate::blk::{BlkDevice, BlkOptions};
use crate::counters::Counters;
use crate::device::VirtioDevice;
use crate::memory::GuestMemory;
use crate::mmio::{MmioDevice, MmioError, WINDOW_SIZE};
use crate::net::switch::{PortStats, Switch};
use crate::net::uplink::{Uplink, UplinkStats};
use crate::net::{NetDevice, NetOptions};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// A Xen domain id.
pub type DomainId = u16;

/// Guest memory of each frontend domain, reached through its grants.
///
/// `Memory` is the concrete type the devices are compiled for, so the queue walk's
/// per-descriptor reads are direct calls the compiler can inline (a host with several
/// kinds of memory dispatches over an enum, or names `dyn GuestMemory`).
pub trait Frontends {
    type Memory: GuestMemory + ?Sized;

    fn memory(&mut self, domain: DomainId) -> Option<&mut Self::Memory>;
}

/// A trapped access of a register window, as an ioreq carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioRequest {
    pub frontend: DomainId,
    pub addr: u64,
    pub size: u8,
    pub write: bool,
    pub data: u64,
}

/// Why an access could not be served; the host still completes the ioreq (reads as 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendError {
    /// No device of this frontend at that address.
    NoDevice {
        frontend: DomainId,
        addr: u64,
    },
    /// The frontend's memory is not available (domain gone).
    NoMemory(DomainId),
    Register(MmioError),
}

/// Index of a registered device.
pub type DeviceIndex = usize;

enum Model {
    Blk(MmioDevice<BlkDevice<Box<dyn BlockBackend>>>),
    Net(MmioDevice<NetDevice>),
}

struct Registered {
    frontend: DomainId,
    base: u64,
    irq: u32,
    model: Model,
    /// The frontend is gone: the device answers no access and serves nothing; it stays
    /// registered so its index and counters still name it in reports.
    detached: bool,
}

/// What [`Backend::detach_frontend`] released.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Detached {
    /// Devices of the frontend that were still attached.
    pub devices: usize,
    /// Guest pages the devices still held after the release (0 unless an unmap was
    /// refused by an invalid token, which the memory counts as released anyway).
    pub pages_held: u64,
}

/// An interrupt to inject into a frontend: `XEN_DMOP_set_irq_level` on `irq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interrupt {
    pub frontend: DomainId,
    pub irq: u32,
}

pub struct Backend {
    devices: Vec<Registered>,
    switch: Switch,
    uplinks: Vec<Uplink>,
    /// Whether devices added from now on offer `VIRTIO_F_INDIRECT_DESC`.
    indirect_descriptors: bool,
}

/// Index of an uplink (a switch port the host connects to its own NIC).
pub type UplinkIndex = usize;

impl<T: BlockBackend + ?Sized> BlockBackend for Box<T> {
    fn capacity_bytes(&self) -> u64 {
        (**self).capacity_bytes()
    }
    fn read_only(&self) -> bool {
        (**self).read_only()
    }
    fn read(
        &mut self,
        offset: u64,
        len: usize,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), StorageError> {
        (**self).read(offset, len, sink)
    }
    fn write(
        &mut self,
        offset: u64,
        len: usize,
        source: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<(), StorageError> {
        (**self).write(offset, len, source)
    }
    fn flush(&mut self) -> Result<(), StorageError> {
        (**self).flush()
    }
    fn discard(&mut self, offset: u64, len: u64) -> Result<(), StorageError> {
        (**self).discard(offset, len)
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), StorageError> {
        (**self).write_zeroes(offset, len)
    }
    fn serial(&self) -> &[u8] {
        (**self).serial()
    }
    fn in_memory(&self) -> bool {
        (**self).in_memory()
    }
    fn with_memory(&mut self, writing: bool, f: &mut dyn FnMut(&mut [u8]) -> u64) -> bool {
        (**self).with_memory(writing, f)
    }
    fn transfer_room(&self) -> Option<TransferRoom> {
        (**self).transfer_room()
    }
    fn start(&mut self, offset: u64, len: usize, fill: Fill<'_>) -> Result<Ticket, StorageError> {
        (**self).start(offset, len, fill)
    }
    fn finish(
        &mut self,
        ticket: Ticket,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), StorageError> {
        (**self).finish(ticket, sink)
    }
}

impl Backend {
    /// A backend whose switch has room for `net_ports` ports of frames up to `max_frame`.
    pub fn new(net_ports: usize, max_frame: usize) -> Self {
        Self {
            devices: Vec::new(),
            switch: Switch::new(net_ports, max_frame),
            uplinks: Vec::new(),
            indirect_descriptors: true,
        }
    }

    /// Whether devices added from now on offer indirect descriptors (they do by default).
    /// Without them a driver puts a request's descriptors in the ring itself, which on
    /// Xen saves mapping (or copying) each request's table before its header is read.
    pub fn offer_indirect_descriptors(&mut self, offer: bool) {
        self.indirect_descriptors = offer;
    }

    /// `device` behind its register file, offering what this backend's devices offer.
    fn behind_registers<D: VirtioDevice>(&self, device: D) -> MmioDevice<D> {
        let mmio = MmioDevice::new(device);
        if self.indirect_descriptors {
            mmio
        } else {
            mmio.without_indirect_descriptors()
        }
    }

    pub fn add_blk(
        &mut self,
        frontend: DomainId,
        base: u64,
        irq: u32,
        store: Box<dyn BlockBackend>,
        options: BlkOptions,
    ) -> DeviceIndex {
        let model = Model::Blk(self.behind_registers(BlkDevice::new(store, options)));
        self.register(frontend, base, irq, model)
    }

    /// Adds a net device on the next free switch port; None when the switch is full.
    pub fn add_net(
        &mut self,
        frontend: DomainId,
        base: u64,
        irq: u32,
        options: NetOptions,
    ) -> Option<DeviceIndex> {
        let port = self.free_port()?;
        if options.max_frame() > self.switch.frame_capacity() {
            return None;
        }
        let mac = options.mac;
        let model = Model::Net(self.behind_registers(NetDevice::new(port, options)));
        self.switch.attach(port, Some(mac));
        Some(self.register(frontend, base, irq, model))
    }

    /// The lowest switch port no attached net device or uplink holds: a detached
    /// device's port serves again (a frontend created anew gets its NIC back).
    fn free_port(&self) -> Option<usize> {
        let held = |port: usize| {
            self.uplinks.iter().any(|u| u.port() == port)
                || self.devices.iter().any(|d| match &d.model {
                    Model::Net(net) => !d.detached && net.device().port() == port,
                    Model::Blk(_) => false,
                })
        };
        (0..self.switch.port_count()).find(|&port| !held(port))
    }

    /// Adds an uplink on the next free switch port; None when the switch is full.
    pub fn add_uplink(&mut self) -> Option<UplinkIndex> {
        let port = self.free_port()?;
        let max_frame = self.switch.frame_capacity();
        self.switch.attach(port, None);
        let index = self.uplinks.len();
        self.uplinks.push(Uplink::new(port, max_frame));
        Some(index)
    }

    /// A frame from the host's NIC enters the switch; false when it was dropped (counted).
    pub fn uplink_receive(&mut self, uplink: UplinkIndex, frame: &[u8]) -> bool {
        match self.uplinks.get_mut(uplink) {
            Some(u) => u.receive(&mut self.switch, frame),
            None => false,
        }
    }

    /// Hands frames waiting for the host's NIC to `send` (bounded; see
    /// [`Uplink::transmit`]). Returns how many left.
    pub fn uplink_transmit(
        &mut self,
        uplink: UplinkIndex,
        send: &mut dyn FnMut(&[u8]) -> bool,
    ) -> usize {
        match self.uplinks.get_mut(uplink) {
            Some(u) => u.transmit(&mut self.switch, send),
            None => 0,
        }
    }

    /// Whether frames wait for the host's NIC.
    pub fn uplink_pending(&self, uplink: UplinkIndex) -> bool {
        self.uplinks
            .get(uplink)
            .is_some_and(|u| u.has_frames(&self.switch))
    }

    pub fn uplink_stats(&self, uplink: UplinkIndex) -> Option<UplinkStats> {
        self.uplinks.get(uplink).map(|u| UplinkStats {
            dropped_full: self.switch.stats(u.port()).dropped_backlog_full,
            ..u.stats()
        })
    }

    fn register(&mut self, frontend: DomainId, base: u64, irq: u32, model: Model) -> DeviceIndex {
        let index = self.devices.len();
        self.devices.push(Registered {
            frontend,
            base,
            irq,
            model,
            detached: false,
        });
        index
    }

    /// Answers one trapped register access. Reads return the value; writes return 0.
    pub fn mmio<F: Frontends + ?Sized>(
        &mut self,
        request: &MmioRequest,
        frontends: &mut F,
    ) -> Result<u64, BackendError> {
        let found = self.devices.iter_mut().find_map(|d| {
            let offset = request.addr.checked_sub(d.base)?;
            let here = !d.detached && d.frontend == request.frontend && offset < WINDOW_SIZE;
            here.then_some((d, offset))
        });
        let Some((device, offset)) = found else {
            return Err(BackendError::NoDevice {
                frontend: request.frontend,
                addr: request.addr,
            });
        };
        if !request.write {
            let value = match &mut device.model {
                Model::Blk(d) => d.read(offset, request.size),
                Model::Net(d) => d.read(offset, request.size),
            };
            return value.map_err(BackendError::Register);
        }
        let mem = frontends
            .memory(device.frontend)
            .ok_or(BackendError::NoMemory(device.frontend))?;
        let result = match &mut device.model {
            Model::Blk(d) => d.write(mem, offset, request.size, request.data),
            Model::Net(d) => d.write(mem, offset, request.size, request.data),
        };
        result.map(|()| 0).map_err(BackendError::Register)
    }

    /// One bounded round over every device at host time `now_ns`: serve queues, move
    /// frames through the switch, and have `inject` deliver the interrupts due (it returns
    /// false when `set_irq_level` failed: the interrupt is retried next round). Returns
    /// whether work remains (call again before blocking; else block no later than
    /// [`Self::next_deadline`]).
    pub fn run<F: Frontends + ?Sized>(
        &mut self,
        frontends: &mut F,
        now_ns: u64,
        inject: &mut dyn FnMut(Interrupt) -> bool,
    ) -> bool {
        let mut more = false;
        self.switch.set_now(now_ns);
        let enqueued_before = self.switch.enqueued();
        for device in self.devices.iter_mut().filter(|d| !d.detached) {
            let Some(mem) = frontends.memory(device.frontend) else {
                continue;
            };
            let (outcome, interrupt) = match &mut device.model {
                Model::Blk(d) => {
                    let outcome = d.process(mem, &mut ());
                    (outcome, d.take_interrupt())
                }
                Model::Net(d) => {
                    let outcome = d.process(mem, &mut self.switch);
                    (outcome, d.take_interrupt())
                }
            };
            more |= outcome.more;
            let target = Interrupt {
                frontend: device.frontend,
                irq: device.irq,
            };
            if interrupt && !inject(target) {
                match &mut device.model {
                    Model::Blk(d) => d.defer_interrupt(),
                    Model::Net(d) => d.defer_interrupt(),
                }
            }
        }
        // Frames switched this round may be for ports served before they arrived, and a
        // receiver served after its sender may have drained what the sender waits for.
        more || self.switch.enqueued() != enqueued_before || self.net_tx_ready()
    }

    fn net_devices(&self) -> impl Iterator<Item = &NetDevice> {
        self.devices
            .iter()
            .filter(|d| !d.detached)
            .filter_map(|d| match &d.model {
                Model::Net(net) => Some(net.device()),
                Model::Blk(_) => None,
            })
    }

    /// Whether a net device's tx queue waited for a receiver that can go on now.
    fn net_tx_ready(&self) -> bool {
        self.net_devices().any(|d| d.tx_ready(&self.switch))
    }

    /// The host time by which [`Self::run`] must run again though nothing happens: the
    /// earliest end of a tx queue's wait for a receiver (see
    /// [`crate::net::TX_BLOCK_LIMIT_NS`]). None: only events bring work.
    pub fn next_deadline(&self) -> Option<u64> {
        self.net_devices().filter_map(NetDevice::tx_deadline).min()
    }

    /// Stops serving `frontend` for good (its domain shut down, crashed or is gone):
    /// each of its devices is reset, which releases through `memory` every page its
    /// queues held; its switch ports drop the frames waiting for them and get no more;
    /// its windows answer no more accesses and it raises no more interrupts. The other
    /// frontends' devices are untouched.
    pub fn detach_frontend<M: GuestMemory + ?Sized>(
        &mut self,
        frontend: DomainId,
        memory: &mut M,
    ) -> Detached {
        let mut detached = Detached::default();
        for device in self
            .devices
            .iter_mut()
            .filter(|d| d.frontend == frontend && !d.detached)
        {
            let counters = match &mut device.model {
                Model::Blk(d) => {
                    d.reset(memory);
                    *d.counters()
                }
                Model::Net(d) => {
                    d.reset(memory);
                    self.switch.detach(d.device().port());
                    *d.counters()
                }
            };
            device.detached = true;
            detached.devices = detached.devices.saturating_add(1);
            detached.pages_held = detached.pages_held.saturating_add(counters.pages_held());
        }
        detached
    }

    /// Whether the device still serves its frontend.
    pub fn is_attached(&self, index: DeviceIndex) -> bool {
        self.devices.get(index).is_some_and(|d| !d.detached)
    }

    pub fn counters(&self, index: DeviceIndex) -> Option<Counters> {
        self.devices.get(index).map(|d| match &d.model {
            Model::Blk(m) => *m.counters(),
            Model::Net(m) => *m.counters(),
        })
    }

    /// Device status register (for tests and the end-of-run report).
    pub fn status(&self, index: DeviceIndex) -> Option<u32> {
        self.devices.get(index).map(|d| match &d.model {
            Model::Blk(m) => m.status(),
            Model::Net(m) => m.status(),
        })
    }

    /// The switch between the net devices and the uplink (read only: for its figures).
    pub fn switch(&self) -> &Switch {
        &self.switch
    }

    pub fn port_stats(&self, index: DeviceIndex) -> Option<PortStats> {
        match &self.devices.get(index)?.model {
            Model::Net(m) => Some(self.switch.stats(m.device().port())),
            Model::Blk(_) => None,
        }
    }

    /// The backing store of a block device.
    pub fn block_store(&mut self, index: DeviceIndex) -> Option<&mut dyn BlockBackend> {
        match &mut self.devices.get_mut(index)?.model {
            Model::Blk(m) => Some(m.device_mut().backend_mut().as_mut()),
            Model::Net(_) => None,
        }
    }

    pub fn device_count(&self) -> usize {
        self.devices.len()
    }
}
