//! The footprint table: heap of a backend and its devices, the copy route per frontend,
//! the structs' sizes, and the allocations made while serving I/O.

use crate::alloc_count::{UncountedMemory, ALLOCATIONS, LIVE_BYTES};
use crate::blk_rig::{BlkRig, DATA_PAGE};
use crate::common;
use crate::workload::{Workload, T_IN};
use devices::backend::Backend;
use devices::blk::backend::RamDisk;
use devices::blk::BlkOptions;
use devices::copy_route::CopyRoute;
use devices::ioreq::{self, Ioreq, IOREQ_TYPE_COPY, IOREQ_WRITE, STATE_IOREQ_READY};
use devices::mmio::reg;
use devices::net::NetOptions;
use std::sync::atomic::Ordering;
use stubvirt_tests::net_fixture::MAC_A;
use stubvirt_tests::scenario::{self, FRONTEND, MAX_FRAME, NET_PORTS};
use stubvirt_tests::world::{GrantedMemory, SimCopier};

/// Heap allocated by building a backend with one RAM disk and one net device, and by a
/// frontend's copy route, the structs' own sizes, and allocations made while serving
/// I/O. (The images' sizes are `cargo xtask bench`'s own table, from a fresh build.)
pub fn footprint() {
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let mut backend = Backend::new(NET_PORTS, MAX_FRAME);
    let after_backend = LIVE_BYTES.load(Ordering::Relaxed);
    let disk = Box::new(RamDisk::new(1, "tiny"));
    let with_disk = LIVE_BYTES.load(Ordering::Relaxed);
    backend.add_blk(FRONTEND, 0x0200_0000, 33, disk, BlkOptions::default());
    let after_blk = LIVE_BYTES.load(Ordering::Relaxed);
    let _ = backend.add_net(
        FRONTEND,
        0x0200_0200,
        34,
        NetOptions {
            mac: MAC_A,
            mtu: 1500,
        },
    );
    let after_net = LIVE_BYTES.load(Ordering::Relaxed);
    let devices_heap = (after_blk - with_disk) + (after_net - after_blk);
    // The kernel's default route, one per frontend: its token table and the scratch of
    // the pages passed through, for as many buffer pages as may be outstanding at once
    // (`MAX_COPIED_PAGES`). The memory and copier it wraps are handles that allocate
    // nothing, so this is the kernel's figure too.
    let before_route = LIVE_BYTES.load(Ordering::Relaxed);
    let route = CopyRoute::new(
        GrantedMemory { frontend: FRONTEND },
        SimCopier { frontend: FRONTEND },
    );
    let copy_route_heap = LIVE_BYTES.load(Ordering::Relaxed) - before_route;
    drop(route);
    let total = (after_backend - before) + devices_heap + std::mem::size_of::<Backend>();
    drop(backend);

    // Allocations while serving a warm QD32 batch of 4 KiB reads: the notification and
    // the backend's loop, with the simulated Xen's own bookkeeping (its grant and
    // mapping maps allocate) left out by pausing the count inside guest-memory calls.
    let workload = Workload {
        bytes: 4096,
        depth: 32,
        kind: T_IN,
        random: true,
        indirect: true,
    };
    let mut rig = BlkRig::new(workload.depth * workload.bytes, false);
    let mut position = 0;
    let _ = rig.round(&workload, &mut position);
    let mut next_desc = 0;
    for slot in 0..32 {
        let head = rig.place(
            slot,
            (T_IN, slot as u64 * 8),
            (DATA_PAGE + slot, 1),
            true,
            &mut next_desc,
        );
        rig.queue.push(head);
    }
    let (base, _) = scenario::window(0);
    let notify = Ioreq {
        addr: base + reg::QUEUE_NOTIFY,
        data: 0,
        count: 1,
        size: 4,
        state: STATE_IOREQ_READY,
        data_is_ptr: false,
        dir: IOREQ_WRITE,
        df: false,
        kind: IOREQ_TYPE_COPY,
    };
    let mut frontends = UncountedMemory(GrantedMemory { frontend: FRONTEND });
    let io_allocations = {
        let mut m = rig.machine.borrow_mut();
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let _ = ioreq::serve(&mut m.backend, &mut frontends, FRONTEND, &notify);
        while m.backend.run(&mut frontends, 0, &mut |_| true) {}
        ALLOCATIONS.load(Ordering::Relaxed) - before
    };
    let served = rig.queue.used_idx().wrapping_sub(rig.reaped);
    assert_eq!(served, 32, "the batch was served");
    rig.reaped = rig.queue.used_idx();

    let rows = vec![
        vec![
            "Backend (switch: 4 ports, 264 frames of 1518 B and 8 GSO frames of 65550 B), heap"
                .into(),
            format!("{}", after_backend - before),
        ],
        vec![
            "virtio-blk device (RAM disk storage excluded), heap".into(),
            format!("{}", after_blk - with_disk),
        ],
        vec![
            "virtio-net device, heap".into(),
            format!("{}", after_net - after_blk),
        ],
        vec![
            "size_of::<ChainBatch>() (per-device batch scratch, inside the device heap above)"
                .into(),
            format!(
                "{}",
                std::mem::size_of::<devices::queue::chain::ChainBatch>()
            ),
        ],
        vec![
            "size_of::<blk::Gather>() (per blk device: a batch's gathered data copies, inside the device heap above)"
                .into(),
            format!("{}", std::mem::size_of::<devices::blk::Gather>()),
        ],
        vec![
            "CopyRoute per frontend (the kernel's default route: token table and scratch), heap"
                .into(),
            format!("{copy_route_heap}"),
        ],
        vec![
            "size_of::<Backend>()".into(),
            format!("{}", std::mem::size_of::<Backend>()),
        ],
        vec![
            "total at construction (two devices, idle)".into(),
            format!("{total}"),
        ],
        vec![
            "heap allocations by the backend serving 32 x 4 KiB reads (simulated Xen excluded)"
                .into(),
            format!("{io_allocations}"),
        ],
    ];
    common::print_table("footprint", "Footprint (bytes)", &["what", "bytes"], &rows);
}
