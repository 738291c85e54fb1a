//! A simulated Xen for host tests of stubvirt's devices: grant tables that enforce what
//! Xen enforces, the ioreq path from frontend vcpus to the backend, interrupt injection
//! and hypercall accounting; plus the frontend side (a grant-DMA `Hal` and an ioreq
//! `Transport`) that lets the independent `virtio-drivers` crate drive the devices.

pub mod blk_fixture;
pub mod faulty_disk;
pub mod fuzz;
pub mod grant_table;
pub mod hal;
pub mod host_pages;
pub mod machine;
pub mod metered_disk;
pub mod net_fixture;
pub mod queued_disk;
pub mod rings;
pub mod scenario;
pub mod tcp_packets;
pub mod transport;
pub mod world;
