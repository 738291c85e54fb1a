//! virtio-blk request layouts (virtio 1.2 section 5.2.6).

pub const HEADER_SIZE: usize = 16;
pub const RANGE_SEGMENT_SIZE: usize = 16;
/// `VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP`.
pub const FLAG_UNMAP: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestType {
    In,
    Out,
    Flush,
    GetId,
    Discard,
    WriteZeroes,
    Unsupported(u32),
}

impl RequestType {
    fn from_raw(raw: u32) -> Self {
        match raw {
            0 => Self::In,
            1 => Self::Out,
            4 => Self::Flush,
            8 => Self::GetId,
            11 => Self::Discard,
            13 => Self::WriteZeroes,
            other => Self::Unsupported(other),
        }
    }
}

/// `struct virtio_blk_req`'s header: type, reserved, sector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    pub kind: RequestType,
    pub sector: u64,
}

impl RequestHeader {
    pub fn parse(bytes: &[u8; HEADER_SIZE]) -> Self {
        let [t0, t1, t2, t3, _, _, _, _, s0, s1, s2, s3, s4, s5, s6, s7] = *bytes;
        Self {
            kind: RequestType::from_raw(u32::from_le_bytes([t0, t1, t2, t3])),
            sector: u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]),
        }
    }
}

/// `struct virtio_blk_discard_write_zeroes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeSegment {
    pub sector: u64,
    pub num_sectors: u32,
    pub flags: u32,
}

impl RangeSegment {
    pub fn parse(bytes: &[u8; RANGE_SEGMENT_SIZE]) -> Self {
        let [s0, s1, s2, s3, s4, s5, s6, s7, n0, n1, n2, n3, f0, f1, f2, f3] = *bytes;
        Self {
            sector: u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]),
            num_sectors: u32::from_le_bytes([n0, n1, n2, n3]),
            flags: u32::from_le_bytes([f0, f1, f2, f3]),
        }
    }
}
