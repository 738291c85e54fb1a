//! Hypercalls, exits and interrupts per block request, counted by the simulated Xen
//! over the mapped and copy routes, and their two tables.

use crate::blk_rig::BlkRig;
use crate::common;
use crate::workload::{blk_workloads, Workload, T_IN};
use stubvirt_tests::scenario::FRONTEND;
use stubvirt_tests::world::{self, HypercallStats};

/// What one request costs in hypercalls, exits and interrupts, over `rounds` batches.
struct PerRequest {
    map_batches: f64,
    unmap_batches: f64,
    pages_mapped: f64,
    copy_calls: f64,
    pages_copied: f64,
    exits: f64,
    interrupts: f64,
}

/// Counts `workload` with request buffers mapped, or copied (`copy`: the kernel's
/// default route; rings and indirect tables are still mapped).
fn count(workload: &Workload, rounds: u64, copy: bool) -> PerRequest {
    let mut rig = BlkRig::new(workload.depth * workload.bytes, copy);
    let mut position = 0;
    let _ = rig.round(workload, &mut position); // warm: first notification, first interrupt
    let stats_before: HypercallStats = world::with(|w| w.stats);
    let exits_before = rig.machine.borrow().ioreq_stats.ioreqs;
    let irq_before = rig.machine.borrow().interrupts_for(FRONTEND, rig.irq);
    for _ in 0..rounds {
        let _ = rig.round(workload, &mut position);
    }
    rig.check_status(workload.depth * workload.chains().len());
    let stats = world::with(|w| w.stats);
    let requests = (rounds as usize * workload.depth) as f64;
    let m = rig.machine.borrow();
    PerRequest {
        map_batches: (stats.map_batches - stats_before.map_batches) as f64 / requests,
        unmap_batches: (stats.unmap_batches - stats_before.unmap_batches) as f64 / requests,
        pages_mapped: (stats.map_entries - stats_before.map_entries) as f64 / requests,
        copy_calls: (stats.copy_calls - stats_before.copy_calls) as f64 / requests,
        pages_copied: (stats.copies - stats_before.copies) as f64 / requests,
        exits: (m.ioreq_stats.ioreqs - exits_before) as f64 / requests,
        interrupts: (m.interrupts_for(FRONTEND, rig.irq) - irq_before) as f64 / requests,
    }
}

/// The "blk-exits" and "blk-exits-copy" tables.
pub fn tables() {
    let mut rows = Vec::new();
    let mut counted = blk_workloads();
    counted.push(Workload {
        bytes: 4096,
        depth: 1,
        kind: T_IN,
        random: true,
        indirect: false,
    });
    counted.push(Workload {
        bytes: 4096,
        depth: 32,
        kind: T_IN,
        random: true,
        indirect: false,
    });
    counted.push(Workload {
        bytes: 64 << 10,
        depth: 1,
        kind: T_IN,
        random: false,
        indirect: false,
    });
    counted.push(Workload {
        bytes: 64 << 10,
        depth: 8,
        kind: T_IN,
        random: false,
        indirect: false,
    });
    let mut copied_rows = Vec::new();
    for workload in counted {
        let copied = count(&workload, 20, true);
        copied_rows.push(vec![
            workload.name(),
            format!("{:.3}", copied.map_batches),
            format!("{:.3}", copied.unmap_batches),
            format!("{:.1}", copied.pages_mapped),
            format!("{:.3}", copied.copy_calls),
            format!("{:.1}", copied.pages_copied),
        ]);
        let per = count(&workload, 20, false);
        let chains = workload.chains().len();
        rows.push(vec![
            workload.name(),
            format!("{chains}"),
            format!("{:.3}", per.map_batches),
            format!("{:.3}", per.unmap_batches),
            format!("{:.1}", per.pages_mapped),
            format!("{:.3}", per.exits),
            format!("{:.3}", per.interrupts),
        ]);
    }
    common::print_table(
        "blk-exits",
        "Hypercalls and exits per request (simulated Xen counts; EVENT_IDX on)",
        &[
            "workload",
            "chains/request",
            "map batches",
            "unmap batches",
            "pages mapped",
            "ioreq exits",
            "interrupts",
        ],
        &rows,
    );
    common::print_table(
        "blk-exits-copy",
        "The same with request buffers by GNTTABOP_copy (the kernel's default; exits and interrupts unchanged)",
        &[
            "workload",
            "map batches",
            "unmap batches",
            "pages mapped",
            "copy hypercalls",
            "page pieces copied",
        ],
        &copied_rows,
    );
}
