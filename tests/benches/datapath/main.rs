//! The block and net data paths through the simulated Xen, the hypercalls and exits
//! they cost per request, and the devices' memory footprint.
//!
//! Frontends are hand-built rings (`stubvirt_tests::rings`). The simulation is
//! synchronous: a notification is served completely before the driver continues, so
//! "queue depth 32" means 32 requests made available together and announced with one
//! notification (what Linux's blk-mq does when it plugs a batch).

#[path = "../common/mod.rs"]
mod common;

mod alloc_count;
mod blk;
mod blk_exits;
mod blk_rig;
mod footprint;
mod gso_rig;
mod net;
mod workload;

fn main() {
    let mut criterion = common::criterion();

    // Block data path, plus memcpy of the same sizes.
    blk::bench(&mut criterion);
    // Net: A -> switch -> B, 8 frames per notification.
    let gso_frame_len = net::bench(&mut criterion);
    criterion.final_summary();

    // Tables.
    blk::table();
    blk_exits::tables();
    net::table(gso_frame_len);

    footprint::footprint();
}
