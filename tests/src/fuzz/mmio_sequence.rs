//! Target 1: sequences of register accesses (offset, size, direction, value) against a
//! blk and a net device, with the fuzzer also scribbling over the memory the rings live
//! in. Oracle: after a final reset no mapping is left, and no access left the grants.

use super::address;
use crate::rings::Granted;
use crate::scenario::{self, FRONTEND};
use crate::world;
use arbitrary::Unstructured;
use devices::blk::backend::RamDisk;
use devices::mmio::reg;

const PAGES: usize = 8;
const REGISTERS: [u64; 22] = [
    reg::DEVICE_FEATURES,
    reg::DEVICE_FEATURES_SEL,
    reg::DRIVER_FEATURES,
    reg::DRIVER_FEATURES_SEL,
    reg::QUEUE_SEL,
    reg::QUEUE_NUM_MAX,
    reg::QUEUE_NUM,
    reg::QUEUE_READY,
    reg::QUEUE_NOTIFY,
    reg::INTERRUPT_STATUS,
    reg::INTERRUPT_ACK,
    reg::STATUS,
    reg::QUEUE_DESC_LOW,
    reg::QUEUE_DESC_HIGH,
    reg::QUEUE_DRIVER_LOW,
    reg::QUEUE_DRIVER_HIGH,
    reg::QUEUE_DEVICE_LOW,
    reg::QUEUE_DEVICE_HIGH,
    reg::QUEUE_RESET,
    reg::CONFIG_GENERATION,
    reg::CONFIG,
    reg::CONFIG + 8,
];

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let machine = scenario::machine(&[FRONTEND]);
    super::pick_route(&machine, &[FRONTEND], data);
    scenario::add_ram_disk(
        &machine,
        FRONTEND,
        0,
        RamDisk::new(64, "fz"),
        Default::default(),
    );
    scenario::add_net(&machine, FRONTEND, 1, [2, 0, 0, 0, 0, 1]);
    let mem = Granted::new(FRONTEND, PAGES, false);
    let offered = devices::features::TRANSPORT | 0xffff_ffff;
    while !u.is_empty() {
        let device = u.int_in_range(0..=1u64).unwrap_or(0);
        let base = scenario::window(device).0;
        let offset = if u.ratio(7, 8).unwrap_or(true) {
            *u.choose(&REGISTERS).unwrap_or(&reg::STATUS)
        } else {
            u.int_in_range(0..=0x1ffu64).unwrap_or(0)
        };
        let size = if u.ratio(7, 8).unwrap_or(true) {
            4
        } else {
            *u.choose(&[1u32, 2, 8, 3]).unwrap_or(&4)
        };
        match u.int_in_range(0..=9u8).unwrap_or(0) {
            0..=5 => {
                let value: u64 = match offset {
                    reg::QUEUE_DESC_LOW | reg::QUEUE_DRIVER_LOW | reg::QUEUE_DEVICE_LOW => {
                        address(&mut u, &mem, PAGES) & 0xffff_ffff
                    }
                    reg::QUEUE_DESC_HIGH | reg::QUEUE_DRIVER_HIGH | reg::QUEUE_DEVICE_HIGH => {
                        address(&mut u, &mem, PAGES) >> 32
                    }
                    reg::QUEUE_NUM => *u
                        .choose(&[1u64, 2, 4, 8, 16, 256, 0, 3, 1024])
                        .unwrap_or(&8),
                    reg::STATUS => *u.choose(&[0u64, 1, 3, 11, 15, 0x80, 0x40, 7]).unwrap_or(&0),
                    reg::DRIVER_FEATURES => {
                        u.arbitrary::<u64>().unwrap_or(0) & (offered >> 32 | offered & 0xffff_ffff)
                    }
                    _ => u.arbitrary().unwrap_or(0),
                };
                machine
                    .borrow_mut()
                    .trap(FRONTEND, 0, base + offset, size, true, value);
            }
            6 | 7 => {
                let value = machine
                    .borrow_mut()
                    .trap(FRONTEND, 0, base + offset, size, false, 0);
                if size == 4 {
                    assert!(value <= u64::from(u32::MAX));
                }
            }
            8 => {
                let at = u.int_in_range(0..=PAGES * 4096 - 16).unwrap_or(0);
                let bytes: [u8; 16] = u.arbitrary().unwrap_or([0; 16]);
                mem.write(at, &bytes);
            }
            _ => machine.borrow_mut().run_until_idle(),
        }
    }
    for device in 0..2 {
        machine.borrow_mut().trap(
            FRONTEND,
            0,
            scenario::window(device).0 + reg::STATUS,
            4,
            true,
            0,
        );
    }
    let m = machine.borrow();
    for device in 0..2 {
        let c = m.backend.counters(device).expect("device");
        assert_eq!(
            c.pages_held(),
            0,
            "device {device} holds mappings after reset: {c:?}"
        );
    }
    assert_eq!(
        world::with(|w| w.live_mappings()),
        0,
        "Xen sees no mapping left"
    );
    drop(m);
    scenario::assert_no_violations();
}
