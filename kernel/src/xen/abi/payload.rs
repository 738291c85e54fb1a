//! The union of a tools-only hypercall argument (`xen_domctl`, `xen_sysctl`,
//! `xen_flask_op`) as bytes: each op writes and reads the leading fields of its member,
//! little-endian on both our architectures. Offsets past the union read as 0 and are not
//! written.

#[repr(transparent)]
#[derive(Clone, Copy, Debug)]
pub struct Payload<const N: usize>(pub [u8; N]);

impl<const N: usize> Payload<N> {
    pub const fn zeroed() -> Self {
        Self([0; N])
    }

    /// Writes `bytes` at `offset`.
    pub fn put(&mut self, offset: usize, bytes: &[u8]) {
        if let Some(dst) = self.0.get_mut(offset..offset + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }

    fn bytes<const W: usize>(&self, offset: usize) -> [u8; W] {
        let mut out = [0; W];
        if let Some(src) = self.0.get(offset..offset + W) {
            out.copy_from_slice(src);
        }
        out
    }

    pub fn u16_at(&self, offset: usize) -> u16 {
        u16::from_le_bytes(self.bytes(offset))
    }

    pub fn u32_at(&self, offset: usize) -> u32 {
        u32::from_le_bytes(self.bytes(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_stay_inside() {
        let mut p = Payload::<8>::zeroed();
        p.put(2, &0x1234_5678u32.to_le_bytes());
        assert_eq!(p.u32_at(2), 0x1234_5678);
        assert_eq!(p.u16_at(2), 0x5678);
        p.put(6, &[1, 2, 3]);
        assert_eq!(p.0, [0, 0, 0x78, 0x56, 0x34, 0x12, 0, 0]);
        assert_eq!(p.u32_at(6), 0);
    }
}
