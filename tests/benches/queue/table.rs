//! The "queue" table: chains/s of each shape for every stubvirt column and rust-vmm's,
//! from the medians of the "queue" group.

use crate::common;
use crate::layout::SHAPES;

pub fn print() {
    let mut rows = Vec::new();
    for shape in SHAPES {
        let chains = shape.chains() as f64;
        let rate = |id: &str| {
            common::median_ns("queue", &format!("{}/{id}", shape.name)).map(|ns| chains * 1e9 / ns)
        };
        let (fast, routed, sim, peer) = (
            rate("stubvirt_fast"),
            rate("stubvirt_routed"),
            rate("stubvirt_simxen"),
            rate("rust_vmm"),
        );
        let fmt = |r: Option<f64>| r.map_or("-".into(), |r| format!("{}/s", common::si(r)));
        let ratio = |ours: Option<f64>| match (ours, peer) {
            (Some(f), Some(p)) => format!("{:.2}x", f / p),
            _ => "-".into(),
        };
        rows.push(vec![
            shape.name.to_string(),
            format!("{}", shape.chains()),
            fmt(fast),
            fmt(peer),
            ratio(fast),
            fmt(routed),
            ratio(routed),
            fmt(sim),
        ]);
    }
    common::print_table(
        "queue",
        "Queue processing, chains/s (median; stubvirt vs rust-vmm virtio-queue 0.18)",
        &[
            "chain shape",
            "chains/pass",
            "stubvirt (free memory)",
            "rust-vmm virtio-queue",
            "ratio",
            "stubvirt (free memory in the kernel's BufferRoute)",
            "ratio",
            "stubvirt (simulated Xen)",
        ],
        &rows,
    );
}
