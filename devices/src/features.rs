//! Feature bits (virtio 1.2, sections 5.2.3, 5.1.3 and 6).

pub const fn bit(n: u32) -> u64 {
    1 << n
}

pub const INDIRECT_DESC: u64 = bit(28);
pub const EVENT_IDX: u64 = bit(29);
pub const VERSION_1: u64 = bit(32);
pub const ACCESS_PLATFORM: u64 = bit(33);
pub const RING_RESET: u64 = bit(40);

/// What every stubvirt device offers and requires: modern virtio, and DMA through the
/// platform's translation (the grant references) rather than guest-physical addresses.
pub const REQUIRED: u64 = VERSION_1 | ACCESS_PLATFORM;
/// Transport features every device offers.
pub const TRANSPORT: u64 = REQUIRED | INDIRECT_DESC | EVENT_IDX | RING_RESET;

pub mod blk {
    use super::bit;
    pub const SIZE_MAX: u64 = bit(1);
    pub const SEG_MAX: u64 = bit(2);
    pub const RO: u64 = bit(5);
    pub const BLK_SIZE: u64 = bit(6);
    pub const FLUSH: u64 = bit(9);
    pub const MQ: u64 = bit(12);
    pub const DISCARD: u64 = bit(13);
    pub const WRITE_ZEROES: u64 = bit(14);
}

pub mod net {
    use super::bit;
    pub const CSUM: u64 = bit(0);
    pub const GUEST_CSUM: u64 = bit(1);
    pub const MTU: u64 = bit(3);
    pub const MAC: u64 = bit(5);
    pub const GUEST_TSO4: u64 = bit(7);
    pub const GUEST_TSO6: u64 = bit(8);
    pub const HOST_TSO4: u64 = bit(11);
    pub const HOST_TSO6: u64 = bit(12);
    pub const MRG_RXBUF: u64 = bit(15);
    pub const STATUS: u64 = bit(16);

    /// (feature, what it requires), section 5.1.3.1: segmentation offload needs the
    /// checksum offload of the same direction.
    pub const DEPENDENCIES: &[(u64, u64)] = &[
        (HOST_TSO4, CSUM),
        (HOST_TSO6, CSUM),
        (GUEST_TSO4, GUEST_CSUM),
        (GUEST_TSO6, GUEST_CSUM),
    ];
}

/// Whether `features` sets a feature of `dependencies` without what it requires.
pub fn breaks_dependency(features: u64, dependencies: &[(u64, u64)]) -> bool {
    dependencies
        .iter()
        .any(|&(feature, required)| features & feature != 0 && features & required != required)
}
