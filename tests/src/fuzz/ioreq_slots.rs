//! Target 5: ioreq slot contents as Xen would hand them over. Every slot is answered;
//! a read answer never has bits beyond its width; a good access afterwards works.

use crate::scenario::{self, FRONTEND};
use arbitrary::Unstructured;
use devices::blk::backend::RamDisk;
use devices::ioreq::{Ioreq, STATE_IOREQ_READY, STATE_IORESP_READY};

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let machine = scenario::machine(&[FRONTEND]);
    scenario::add_ram_disk(
        &machine,
        FRONTEND,
        0,
        RamDisk::new(8, "fz"),
        Default::default(),
    );
    let (base, _) = scenario::window(0);
    let mut m = machine.borrow_mut();
    while !u.is_empty() {
        let near = u.int_in_range(0..=0x2ffu64).unwrap_or(0);
        let slot = Ioreq {
            addr: if u.arbitrary().unwrap_or(true) {
                base + near
            } else {
                u.arbitrary().unwrap_or(0)
            },
            data: u.arbitrary().unwrap_or(0),
            count: if u.arbitrary().unwrap_or(true) {
                1
            } else {
                u.arbitrary().unwrap_or(0)
            },
            size: *u.choose(&[1u32, 2, 4, 8, 0, 3, 16, u32::MAX]).unwrap_or(&4),
            state: STATE_IOREQ_READY,
            data_is_ptr: u.ratio(1, 8).unwrap_or(false),
            dir: u.int_in_range(0..=1u8).unwrap_or(0),
            df: u.arbitrary().unwrap_or(false),
            kind: *u.choose(&[1u8, 1, 1, 0, 8, 2, 255]).unwrap_or(&1),
        };
        let vcpu = u.int_in_range(0..=1usize).unwrap_or(0);
        m.post_raw(FRONTEND, vcpu, slot);
        m.serve_slots();
        let answered = m.slot(FRONTEND, vcpu).expect("slot exists");
        assert_eq!(
            answered.state, STATE_IORESP_READY,
            "every ready slot is answered"
        );
        if slot.dir == devices::ioreq::IOREQ_READ
            && matches!(slot.size, 1 | 2 | 4)
            && slot.kind == 1
        {
            assert!(
                answered.data < 1u64 << (8 * slot.size),
                "read answer within its width"
            );
        }
        m.collect(FRONTEND, vcpu);
        m.run_until_idle();
    }
    assert_eq!(
        m.trap(FRONTEND, 0, base, 4, false, 0),
        0x7472_6976,
        "a good access still works"
    );
    drop(m);
    scenario::assert_no_violations();
}
