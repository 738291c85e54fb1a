//! Ready-made machines for the suites: a backend with devices at the frontend's
//! virtio-mmio windows, as the dom0less device tree would place them.

use crate::machine::Machine;
use crate::world;
use devices::backend::{Backend, DeviceIndex, DomainId};
use devices::blk::backend::{BlockBackend, RamDisk};
use devices::blk::BlkOptions;
use devices::net::NetOptions;
use std::cell::RefCell;
use std::rc::Rc;

pub const FRONTEND: DomainId = 1;
pub const OTHER_FRONTEND: DomainId = 2;
/// Room in the switch for this many ports of MTU 1500 (+ VLAN-tagged Ethernet header).
pub const NET_PORTS: usize = 4;
pub const MAX_FRAME: usize = devices::topology::MAX_FRAME;

/// Where device `n` of a frontend sits: window `n` of Xen's layout.
pub fn window(n: u64) -> (u64, u32) {
    let window = devices::topology::Window::nth(n as u32);
    (window.base, window.spi)
}

pub type Shared = Rc<RefCell<Machine>>;

/// A fresh simulated Xen for this thread with the given frontends (2 vcpus each).
pub fn machine(frontends: &[DomainId]) -> Shared {
    world::reset();
    let mut machine = Machine::new(Backend::new(NET_PORTS, MAX_FRAME));
    for &domain in frontends {
        machine.add_frontend(domain, 2);
    }
    Rc::new(RefCell::new(machine))
}

/// Adds a RAM disk at window `n` of `domain`.
pub fn add_ram_disk(
    machine: &Shared,
    domain: DomainId,
    n: u64,
    disk: RamDisk,
    options: BlkOptions,
) -> DeviceIndex {
    add_disk(machine, domain, n, Box::new(disk), options)
}

/// Adds a block device over any backing store at window `n` of `domain`.
pub fn add_disk(
    machine: &Shared,
    domain: DomainId,
    n: u64,
    disk: Box<dyn BlockBackend>,
    options: BlkOptions,
) -> DeviceIndex {
    let (base, irq) = window(n);
    machine.borrow_mut().backend.add_blk(
        domain,
        base,
        irq,
        Box::new(crate::metered_disk::MeteredDisk::new(disk)),
        options,
    )
}

pub fn add_net(machine: &Shared, domain: DomainId, n: u64, mac: [u8; 6]) -> DeviceIndex {
    let (base, irq) = window(n);
    machine
        .borrow_mut()
        .backend
        .add_net(domain, base, irq, NetOptions { mac, mtu: 1500 })
        .expect("switch has a free port")
}

/// An Ethernet frame of `len` bytes from `src` to `dst` with `ether_type` and a random
/// payload.
pub fn frame(dst: [u8; 6], src: [u8; 6], ether_type: u16, len: usize, rng: &mut Rng) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    bytes[..6].copy_from_slice(&dst);
    bytes[6..12].copy_from_slice(&src);
    bytes[12..14].copy_from_slice(&ether_type.to_be_bytes());
    rng.fill(&mut bytes[14..]);
    bytes
}

/// Asserts the simulated Xen saw no refused or wrong access.
pub fn assert_no_violations() {
    let violations = world::with(|w| w.violations.clone());
    assert!(violations.is_empty(), "grant violations: {violations:#?}");
}

/// A small deterministic generator for test data and offsets (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    pub fn fill(&mut self, bytes: &mut [u8]) {
        for chunk in bytes.chunks_mut(8) {
            let value = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&value[..chunk.len()]);
        }
    }
}
