//! TCP packets as a TSO sender hands them to virtio-net (one large frame and its
//! `virtio_net_hdr` with GSO fields), and a reference check of the segments a receiver
//! gets, written from RFC 791/793/8200 and independent of the device code: every
//! checksum recomputed from scratch, lengths, IPv4 ids, sequence numbers and flags
//! checked, the payload reassembled.

pub const TCP_FIN: u8 = 0x01;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_CWR: u8 = 0x80;
const IPV4_SRC: [u8; 4] = [10, 0, 0, 1];
const IPV4_DST: [u8; 4] = [10, 0, 0, 2];
const IPV6_SRC: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const IPV6_DST: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
/// The first sequence number: close to 2^32, so a 64 KiB packet's segments wrap it.
pub const FIRST_SEQ: u32 = 0xffff_8000;
pub const FIRST_IP_ID: u16 = 0xfff0;
/// TCP header with 12 bytes of options (NOP, NOP, timestamp), as Linux sends.
const TCP_HEADER: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ip {
    V4,
    V6,
}

impl Ip {
    fn header_len(self) -> usize {
        match self {
            Ip::V4 => 20,
            Ip::V6 => 40,
        }
    }
}

/// A GSO frame and its virtio header, as a Linux driver with HOST_TSO4/6 builds them.
#[derive(Clone, Debug)]
pub struct GsoFrame {
    pub ip: Ip,
    pub header: [u8; 12],
    pub frame: Vec<u8>,
    pub payload: Vec<u8>,
    pub mss: u16,
    /// Where the TCP header starts (csum_start).
    pub l4: usize,
    /// The TCP flags of the large packet.
    pub tcp_flags: u8,
}

impl GsoFrame {
    /// A frame of `payload` from `src` to `dst` to be cut into `mss`-byte segments.
    pub fn new(ip: Ip, dst: [u8; 6], src: [u8; 6], payload: &[u8], mss: u16) -> Self {
        let tcp_flags = TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR;
        let l4 = 14 + ip.header_len();
        let tcp_len = TCP_HEADER + payload.len();
        let mut f = Vec::with_capacity(l4 + tcp_len);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        match ip {
            Ip::V4 => {
                f.extend_from_slice(&0x0800u16.to_be_bytes());
                let total = (20 + tcp_len) as u16;
                f.extend_from_slice(&[0x45, 0]);
                f.extend_from_slice(&total.to_be_bytes());
                f.extend_from_slice(&FIRST_IP_ID.to_be_bytes());
                f.extend_from_slice(&[0x40, 0, 64, 6, 0, 0]); // DF, TTL 64, TCP
                f.extend_from_slice(&IPV4_SRC);
                f.extend_from_slice(&IPV4_DST);
                let check = checksum(&[&f[14..34]]);
                f[24..26].copy_from_slice(&check.to_be_bytes());
            }
            Ip::V6 => {
                f.extend_from_slice(&0x86ddu16.to_be_bytes());
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&(tcp_len as u16).to_be_bytes());
                f.extend_from_slice(&[6, 64]);
                f.extend_from_slice(&IPV6_SRC);
                f.extend_from_slice(&IPV6_DST);
            }
        }
        f.extend_from_slice(&40000u16.to_be_bytes());
        f.extend_from_slice(&5201u16.to_be_bytes());
        f.extend_from_slice(&FIRST_SEQ.to_be_bytes());
        f.extend_from_slice(&1u32.to_be_bytes()); // ack
        f.extend_from_slice(&[(TCP_HEADER as u8 / 4) << 4, tcp_flags]);
        f.extend_from_slice(&0xfaf0u16.to_be_bytes()); // window
                                                       // Linux leaves the pseudo-header sum (not complemented) for the device.
        let seed = !checksum(&[&pseudo_header(ip, &f, tcp_len)]);
        f.extend_from_slice(&seed.to_be_bytes());
        f.extend_from_slice(&[0, 0, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        f.extend_from_slice(payload);
        let mut header = [0u8; 12];
        header[0] = 1; // NEEDS_CSUM
        header[1] = match ip {
            Ip::V4 => 1,
            Ip::V6 => 4,
        };
        header[2..4].copy_from_slice(&((l4 + TCP_HEADER) as u16).to_le_bytes());
        header[4..6].copy_from_slice(&mss.to_le_bytes());
        header[6..8].copy_from_slice(&(l4 as u16).to_le_bytes());
        header[8..10].copy_from_slice(&16u16.to_le_bytes());
        Self {
            ip,
            header,
            frame: f,
            payload: payload.to_vec(),
            mss,
            l4,
            tcp_flags,
        }
    }

    pub fn segment_count(&self) -> usize {
        self.payload.len().div_ceil(usize::from(self.mss))
    }

    /// Checks the frames a receiver got for this one against a from-scratch
    /// segmentation: one per MSS, every checksum valid, fields as RFC 793 TSO sets them,
    /// the payload whole and in order.
    pub fn check_segments(&self, segments: &[Vec<u8>]) {
        assert_eq!(segments.len(), self.segment_count(), "segment count");
        let headers = self.l4 + TCP_HEADER;
        let mut payload = Vec::new();
        for (i, seg) in segments.iter().enumerate() {
            let what = format!("segment {i} of {}", segments.len());
            let last = i + 1 == segments.len();
            let expected_len =
                (self.payload.len() - i * usize::from(self.mss)).min(self.mss.into());
            assert_eq!(seg.len(), headers + expected_len, "{what}: length");
            assert_eq!(&seg[..14], &self.frame[..14], "{what}: Ethernet header");
            let tcp_len = seg.len() - self.l4;
            match self.ip {
                Ip::V4 => {
                    assert_eq!(checksum(&[&seg[14..34]]), 0, "{what}: IPv4 header checksum");
                    assert_eq!(
                        be16(seg, 16) as usize,
                        seg.len() - 14,
                        "{what}: total length"
                    );
                    let id = FIRST_IP_ID.wrapping_add(i as u16);
                    assert_eq!(be16(seg, 18), id, "{what}: IPv4 id");
                    assert_eq!(
                        &seg[20..24],
                        &self.frame[20..24],
                        "{what}: flags, TTL, protocol"
                    );
                    assert_eq!(&seg[26..34], &self.frame[26..34], "{what}: addresses");
                }
                Ip::V6 => {
                    assert_eq!(be16(seg, 18) as usize, tcp_len, "{what}: payload length");
                    assert_eq!(&seg[14..18], &self.frame[14..18], "{what}: version, flow");
                    assert_eq!(
                        &seg[20..54],
                        &self.frame[20..54],
                        "{what}: next, hops, addresses"
                    );
                }
            }
            let tcp = &seg[self.l4..];
            let pseudo = pseudo_header(self.ip, seg, tcp_len);
            assert_eq!(checksum(&[&pseudo, tcp]), 0, "{what}: TCP checksum");
            let seq = FIRST_SEQ.wrapping_add((i * usize::from(self.mss)) as u32);
            assert_eq!(be32(tcp, 4), seq, "{what}: sequence number");
            let mut flags = self.tcp_flags;
            if !last {
                flags &= !(TCP_FIN | TCP_PSH);
            }
            if i != 0 {
                flags &= !TCP_CWR;
            }
            assert_eq!(tcp[13], flags, "{what}: TCP flags");
            assert_eq!(
                &tcp[..4],
                &self.frame[self.l4..self.l4 + 4],
                "{what}: ports"
            );
            assert_eq!(
                &tcp[8..13],
                &self.frame[self.l4 + 8..self.l4 + 13],
                "{what}: ack"
            );
            assert_eq!(
                &tcp[14..16],
                &self.frame[self.l4 + 14..self.l4 + 16],
                "{what}: window"
            );
            assert_eq!(
                &tcp[18..TCP_HEADER],
                &self.frame[self.l4 + 18..headers],
                "{what}: options"
            );
            payload.extend_from_slice(&seg[headers..]);
        }
        assert!(
            payload == self.payload,
            "reassembled payload differs from what was sent"
        );
    }
}

/// What a driver with GUEST_CSUM does with a partial checksum: the ones' complement of
/// the sum from `start` to the end, stored at `start + offset`.
pub fn complete_partial(frame: &mut [u8], start: usize, offset: usize) {
    let sum = checksum(&[&frame[start..]]);
    frame[start + offset..start + offset + 2].copy_from_slice(&sum.to_be_bytes());
}

/// The TCP pseudo-header of the packet in `frame` for a TCP length of `tcp_len`.
fn pseudo_header(ip: Ip, frame: &[u8], tcp_len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    match ip {
        Ip::V4 => {
            p.extend_from_slice(&frame[26..34]);
            p.extend_from_slice(&[0, 6]);
            p.extend_from_slice(&(tcp_len as u16).to_be_bytes());
        }
        Ip::V6 => {
            p.extend_from_slice(&frame[22..54]);
            p.extend_from_slice(&(tcp_len as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 6]);
        }
    }
    p
}

/// The Internet checksum (RFC 1071) of the concatenated parts: 0 when a packet that
/// carries its checksum verifies.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    // Parts are summed as one byte stream: a part of odd length leaves its last byte as
    // the high half of a word the next part completes.
    let mut pending_high: Option<u8> = None;
    for part in parts.iter().filter(|part| !part.is_empty()) {
        let mut rest = *part;
        if let (Some(high), Some((&low, after))) = (pending_high, rest.split_first()) {
            sum += u64::from(u16::from_be_bytes([high, low]));
            rest = after;
        }
        let words = rest.chunks_exact(2);
        pending_high = words.remainder().first().copied();
        sum += words
            .map(|w| u64::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u64>();
    }
    if let Some(high) = pending_high {
        sum += u64::from(high) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn be32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::checksum;

    /// RFC 1071's worked example (section 3): the words sum to 0xddf2 in one's
    /// complement, however the bytes are split into parts.
    #[test]
    fn checksum_is_rfc1071_for_any_split_of_the_bytes() {
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        for split in 0..=bytes.len() {
            let (first, second) = bytes.split_at(split);
            assert_eq!(checksum(&[first, second]), !0xddf2, "split at {split}");
        }
        assert_eq!(checksum(&[&[0x01], &[0x02], &[0x03]]), !0x0402);
        assert_eq!(checksum(&[&[0x01], &[], &[0x02]]), !0x0102);
    }
}
