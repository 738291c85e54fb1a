//! Ethernet frames in flight between switch ports, with the offload metadata of their
//! `virtio_net_hdr_v1`.

use alloc::boxed::Box;
use alloc::vec;

/// `struct virtio_net_hdr_v1` is 12 bytes.
pub const NET_HDR_SIZE: usize = 12;
pub const ETH_HEADER: usize = 14;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at csum_start/csum_offset is partial.
pub const HDR_F_NEEDS_CSUM: u8 = 1;

/// `VIRTIO_NET_HDR_GSO_NONE`: not a GSO frame.
pub const GSO_NONE: u8 = 0;

/// The parts of a `virtio_net_hdr_v1` a frame carries through the switch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offload {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl Offload {
    /// A sending driver's header. Of its flags only NEEDS_CSUM means anything from a
    /// driver; DATA_VALID and RSC_INFO are the device's to set, so they are dropped here
    /// and never reach a receiver (virtio 1.2 5.1.6.4.2: flags 0 for a driver without
    /// GUEST_CSUM).
    pub fn parse(bytes: &[u8; NET_HDR_SIZE]) -> Self {
        let [flags, gso_type, h0, h1, g0, g1, s0, s1, o0, o1, _, _] = *bytes;
        let flags = flags & HDR_F_NEEDS_CSUM;
        // hdr_len and gso_size mean nothing without GSO: they are not passed on.
        let gso = gso_type != GSO_NONE;
        let if_gso = |value: u16| if gso { value } else { 0 };
        Self {
            flags,
            gso_type,
            hdr_len: if_gso(u16::from_le_bytes([h0, h1])),
            gso_size: if_gso(u16::from_le_bytes([g0, g1])),
            csum_start: u16::from_le_bytes([s0, s1]),
            csum_offset: u16::from_le_bytes([o0, o1]),
        }
    }

    /// The header to hand a receiving driver, with `num_buffers` for MRG_RXBUF.
    pub fn header(&self, num_buffers: u16) -> [u8; NET_HDR_SIZE] {
        let [h0, h1] = self.hdr_len.to_le_bytes();
        let [g0, g1] = self.gso_size.to_le_bytes();
        let [s0, s1] = self.csum_start.to_le_bytes();
        let [o0, o1] = self.csum_offset.to_le_bytes();
        let [n0, n1] = num_buffers.to_le_bytes();
        [
            self.flags,
            self.gso_type,
            h0,
            h1,
            g0,
            g1,
            s0,
            s1,
            o0,
            o1,
            n0,
            n1,
        ]
    }

    pub fn needs_csum(&self) -> bool {
        self.flags & HDR_F_NEEDS_CSUM != 0
    }

    pub fn is_gso(&self) -> bool {
        self.gso_type != GSO_NONE
    }
}

/// A frame buffer of fixed capacity, allocated once when the switch is built.
pub struct Frame {
    data: Box<[u8]>,
    len: usize,
    pub offload: Offload,
    /// GSO frames cut into segments for a port: how many segments already went, so a
    /// frame that waits for rx buffers half way resumes where it stopped.
    pub segments_done: usize,
}

impl Frame {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            data: vec![0; capacity].into_boxed_slice(),
            len: 0,
            offload: Offload::default(),
            segments_done: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn bytes(&self) -> &[u8] {
        self.data.get(..self.len).unwrap_or(&[])
    }

    /// The first `len` bytes as a writable slice (clamped to the capacity); sets the length.
    pub fn fill(&mut self, len: usize) -> &mut [u8] {
        self.len = len.min(self.data.len());
        self.segments_done = 0;
        self.data.get_mut(..self.len).unwrap_or(&mut [])
    }

    pub fn destination(&self) -> [u8; 6] {
        mac_at(self.bytes(), 0)
    }

    pub fn source(&self) -> [u8; 6] {
        mac_at(self.bytes(), 6)
    }

    /// Copies another frame's contents (for flooding to several ports).
    pub fn copy_from(&mut self, other: &Frame) {
        let len = other.len.min(self.data.len());
        if let (Some(dst), Some(src)) = (self.data.get_mut(..len), other.data.get(..len)) {
            dst.copy_from_slice(src);
        }
        self.len = len;
        self.offload = other.offload;
        self.segments_done = other.segments_done;
    }

    /// Completes a partial checksum in software (for a driver without GUEST_CSUM):
    /// the ones' complement sum from csum_start to the end, stored at
    /// csum_start + csum_offset, which holds the pseudo-header sum on entry.
    pub fn complete_checksum(&mut self) -> bool {
        let start = usize::from(self.offload.csum_start);
        let field = start
            .checked_add(usize::from(self.offload.csum_offset))
            .and_then(|at| Some(at..at.checked_add(2)?));
        let Some(field) = field.filter(|field| start < self.len && field.end <= self.len) else {
            return false;
        };
        let covered = self.data.get(start..self.len).unwrap_or(&[]);
        let checksum = !fold(ones_complement_sum(covered));
        if let Some(field) = self.data.get_mut(field) {
            field.copy_from_slice(&checksum.to_be_bytes());
        }
        self.offload.flags &= !HDR_F_NEEDS_CSUM;
        true
    }
}

fn mac_at(bytes: &[u8], at: usize) -> [u8; 6] {
    let mut mac = [0u8; 6];
    if let Some(src) = bytes.get(at..).and_then(|from| from.get(..6)) {
        mac.copy_from_slice(src);
    }
    mac
}

/// The ones' complement sum of big-endian 16-bit words (odd tail padded), folded to 16
/// bits. Added up four bytes at a time: 2^16 is 1 in ones' complement arithmetic, so a
/// 32-bit word counts as the sum of its two halves, and a u64 cannot overflow here.
pub fn ones_complement_sum(bytes: &[u8]) -> u32 {
    let mut sum: u64 = 0;
    let mut words = bytes.chunks_exact(4);
    for word in &mut words {
        if let [a, b, c, d] = *word {
            sum = add_around(sum, u64::from(u32::from_be_bytes([a, b, c, d])));
        }
    }
    let mut tail = [0u8; 4];
    let rest = words.remainder();
    if let Some(start) = tail.get_mut(..rest.len()) {
        start.copy_from_slice(rest);
    }
    sum = add_around(sum, u64::from(u32::from_be_bytes(tail)));
    fold_to_16(sum) as u32
}

pub fn fold(sum: u32) -> u16 {
    fold_to_16(u64::from(sum)) as u16
}

/// Ones' complement addition: a carry out of the top bit comes back in at the bottom.
/// (Never taken for a frame: 2^14 words of under 2^32 stay far below 2^64.)
fn add_around(a: u64, b: u64) -> u64 {
    let (sum, carry) = a.overflowing_add(b);
    // After a carry the sum is below `b`: adding the carry back cannot carry again.
    sum.wrapping_add(u64::from(carry))
}

/// A ones' complement sum folded to 16 bits (end-around carries added in).
fn fold_to_16(mut sum: u64) -> u64 {
    while sum > 0xffff {
        sum = add_around(sum & 0xffff, sum >> 16);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 as written: 16-bit words, carries folded at the end.
    fn word_by_word(bytes: &[u8]) -> u16 {
        let mut sum: u64 = 0;
        for pair in bytes.chunks(2) {
            sum += u64::from(pair[0]) << 8 | pair.get(1).map_or(0, |&b| u64::from(b));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn four_bytes_at_a_time_sums_as_sixteen_bit_words() {
        let mut bytes = [0u8; 67];
        let mut x: u32 = 0x1234_5678;
        for b in bytes.iter_mut() {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *b = (x >> 24) as u8;
        }
        for len in 0..=bytes.len() {
            let part = &bytes[..len];
            assert_eq!(
                fold(ones_complement_sum(part)),
                word_by_word(part),
                "{len} bytes"
            );
        }
        assert_eq!(fold(ones_complement_sum(&[0xff; 64])), 0xffff);
    }
}
