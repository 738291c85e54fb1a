//! TCP segmentation offload done in software (virtio 1.2 section 5.1.6.2): the strict
//! check of a GSO frame a driver sent with HOST_TSO4/6, and its cutting into gso_size
//! segments for a port that cannot take it whole (a driver without GUEST_TSO4/6, the
//! uplink's NIC).
//!
//! Segments leave with a complete IPv4 header checksum and a partial TCP checksum (the
//! pseudo-header sum in the field, NEEDS_CSUM set): whoever receives them completes it
//! as it completes any partial checksum, unless the driver negotiated GUEST_CSUM and
//! does it itself. One pass over the payload is saved for such a driver.

use super::frame::{fold, ones_complement_sum, Frame, Offload, ETH_HEADER, HDR_F_NEEDS_CSUM};

pub const GSO_TCPV4: u8 = 1;
pub const GSO_UDP: u8 = 3;
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_ECN`: needs HOST_ECN, which is not offered.
pub const GSO_ECN: u8 = 0x80;
/// The largest GSO frame, without virtio header: an Ethernet header and 64 KiB of IP
/// packet. A driver with GUEST_TSO4/6 and without MRG_RXBUF posts rx buffers of 65562
/// bytes (5.1.6.3.1): exactly this and the virtio header.
pub const MAX_GSO_FRAME: usize = ETH_HEADER + 65536;
/// The smallest gso_size taken. Each segment costs its own copies per receiver and for
/// the wire: a gso_size of 1 would make a 64 KiB frame some 65,000 segments. Linux never
/// sends a TSO frame with an MSS below 48 bytes of payload plus options (tcp_min_snd_mss)
/// and real paths are far above this.
pub const MIN_GSO_SIZE: u16 = 64;
/// The most segments one frame may be cut into (implied by the two bounds above, and
/// checked so that it stays so).
pub const MAX_GSO_SEGMENTS: usize = 1024;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const VLAN_TAG: usize = 4;
const IPPROTO_TCP: u8 = 6;
const IPV4_MIN_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const TCP_MIN_HEADER: usize = 20;
const TCP_CHECKSUM_AT: usize = 16;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;
/// IPv4 flags and fragment offset: MF and the offset must be clear (DF may be set).
const IPV4_FRAGMENT_BITS: u16 = 0x3fff;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpVersion {
    V4,
    V6,
}

impl IpVersion {
    /// What a gso_type segments; None for the types not offered (UFO, USO, ECN).
    pub fn of_gso_type(gso_type: u8) -> Option<Self> {
        match gso_type {
            GSO_TCPV4 => Some(Self::V4),
            GSO_TCPV6 => Some(Self::V6),
            _ => None,
        }
    }
}

/// Why a GSO frame was refused at tx.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GsoError {
    /// A gso_type this device does not segment (UDP, USO, the ECN bit).
    UnsupportedType,
    /// The spec requires NEEDS_CSUM on every GSO frame.
    NoNeedsCsum,
    /// gso_size below [`MIN_GSO_SIZE`] (0 included).
    SmallGsoSize,
    /// More than [`MAX_GSO_SEGMENTS`] segments.
    TooManySegments,
    /// hdr_len beyond the frame.
    HeaderLength,
    /// csum_start/csum_offset do not name the TCP checksum.
    ChecksumField,
    /// The EtherType does not match the gso_type's IP version.
    NotIp,
    /// Wrong version, header length, a fragment, or a length beyond the frame.
    BadIpHeader,
    /// The IP packet does not carry TCP (IPv6 extension headers included).
    NotTcp,
    BadTcpHeader,
    /// Headers only: nothing to segment.
    NoPayload,
}

/// Where the headers of a checked GSO frame are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GsoLayout {
    ip: IpVersion,
    /// Offset of the IP header, past the Ethernet header (and VLAN tag).
    l3: usize,
    l4: usize,
    /// End of the TCP header: every segment starts with these bytes.
    headers: usize,
    /// End of the IP packet (any bytes after it are Ethernet padding).
    end: usize,
    mss: usize,
}

impl GsoLayout {
    /// Checks a GSO frame strictly and finds its headers.
    pub fn parse(offload: &Offload, frame: &[u8]) -> Result<Self, GsoError> {
        let ip = IpVersion::of_gso_type(offload.gso_type).ok_or(GsoError::UnsupportedType)?;
        if !offload.needs_csum() {
            return Err(GsoError::NoNeedsCsum);
        }
        if offload.gso_size < MIN_GSO_SIZE {
            return Err(GsoError::SmallGsoSize);
        }
        if usize::from(offload.hdr_len) > frame.len() {
            return Err(GsoError::HeaderLength);
        }
        let (ethertype, l3) = match be16(frame, 12) {
            Some(ETHERTYPE_VLAN) => (be16(frame, 16), ETH_HEADER + VLAN_TAG),
            other => (other, ETH_HEADER),
        };
        let (l4, end) = match (ip, ethertype) {
            (IpVersion::V4, Some(ETHERTYPE_IPV4)) => ipv4_extent(frame, l3)?,
            (IpVersion::V6, Some(ETHERTYPE_IPV6)) => ipv6_extent(frame, l3)?,
            _ => return Err(GsoError::NotIp),
        };
        // The data offset, in 32-bit words.
        let tcp = frame.get(l4..).unwrap_or(&[]);
        let tcp_header = byte(tcp, 12).map_or(0, |offset| usize::from(offset >> 4) << 2);
        let headers = l4.checked_add(tcp_header);
        let Some(headers) = headers.filter(|&h| tcp_header >= TCP_MIN_HEADER && h <= end) else {
            return Err(GsoError::BadTcpHeader);
        };
        if headers == end {
            return Err(GsoError::NoPayload);
        }
        // The checksum field is csum_offset bytes into the TCP header.
        if usize::from(offload.csum_start) != l4
            || usize::from(offload.csum_offset) != TCP_CHECKSUM_AT
        {
            return Err(GsoError::ChecksumField);
        }
        let layout = Self {
            ip,
            l3,
            l4,
            headers,
            end,
            mss: usize::from(offload.gso_size),
        };
        if layout.segments() > MAX_GSO_SEGMENTS {
            return Err(GsoError::TooManySegments);
        }
        Ok(layout)
    }

    pub fn ip(&self) -> IpVersion {
        self.ip
    }

    pub fn segments(&self) -> usize {
        self.payload().div_ceil(self.mss)
    }

    /// The longest segment: the headers and one MSS (or all the payload when shorter).
    pub fn largest_segment(&self) -> usize {
        // At most `end`: never saturates.
        self.headers.saturating_add(self.mss.min(self.payload()))
    }

    /// Payload bytes (`parse` checked that the headers end before the packet does).
    fn payload(&self) -> usize {
        self.end.saturating_sub(self.headers)
    }

    /// Writes segment `index` of `frame` into `out`; false when there is no such segment
    /// or `out` cannot hold it.
    pub fn write_segment(&self, frame: &[u8], index: usize, out: &mut Frame) -> bool {
        self.try_write_segment(frame, index, out).is_some()
    }

    fn try_write_segment(&self, frame: &[u8], index: usize, out: &mut Frame) -> Option<()> {
        let offset = index.checked_mul(self.mss)?;
        let start = self.headers.checked_add(offset).filter(|&s| s < self.end)?;
        let stop = start.saturating_add(self.mss).min(self.end);
        let headers = frame.get(..self.headers)?;
        let payload = frame.get(start..stop)?;
        let len = self.headers.checked_add(payload.len())?;
        let bytes = out.fill(len);
        if bytes.len() != len {
            return None;
        }
        let (head, body) = bytes.split_at_mut(self.headers);
        head.copy_from_slice(headers);
        body.copy_from_slice(payload);
        let tcp_len = u16::try_from(len.checked_sub(self.l4)?).ok()?;
        // Fields are addressed from the start of their header.
        match self.ip {
            IpVersion::V4 => {
                let total = u16::try_from(len.checked_sub(self.l3)?).ok()?;
                let ip = bytes.get_mut(self.l3..self.l4)?;
                set_be16(ip, 2, total)?;
                // The IP ID counts segments on, modulo 2^16.
                let id = be16(ip, 4)?.wrapping_add(index as u16);
                set_be16(ip, 4, id)?;
                set_be16(ip, 10, 0)?;
                let checksum = !fold(ones_complement_sum(ip));
                set_be16(ip, 10, checksum)?;
            }
            IpVersion::V6 => set_be16(bytes.get_mut(self.l3..)?, 4, tcp_len)?,
        }
        let ip = bytes.get(self.l3..)?;
        let addresses = match self.ip {
            IpVersion::V4 => ip.get(12..20)?,
            IpVersion::V6 => ip.get(8..IPV6_HEADER)?,
        };
        // Each term is below 2^16: nothing saturates.
        let pseudo_header = ones_complement_sum(addresses)
            .saturating_add(u32::from(IPPROTO_TCP))
            .saturating_add(u32::from(tcp_len));
        let tcp = bytes.get_mut(self.l4..)?;
        // Sequence numbers are modulo 2^32.
        let seq = be32(tcp, 4)?.wrapping_add(offset as u32);
        set_be32(tcp, 4, seq)?;
        let flags = tcp.get_mut(13)?;
        if stop != self.end {
            *flags &= !(TCP_FIN | TCP_PSH);
        }
        if index != 0 {
            *flags &= !TCP_CWR;
        }
        set_be16(tcp, TCP_CHECKSUM_AT, fold(pseudo_header))?;
        out.offload = Offload {
            flags: HDR_F_NEEDS_CSUM,
            csum_start: u16::try_from(self.l4).ok()?,
            csum_offset: TCP_CHECKSUM_AT as u16,
            ..Offload::default()
        };
        Some(())
    }
}

/// Writes the next segment of GSO frame `frame` not handed on yet into `out`. Returns
/// whether it is the last one; None when `frame` has none (not a valid GSO frame, all
/// went already) or `out` cannot hold it.
pub fn next_segment(frame: &Frame, out: &mut Frame) -> Option<bool> {
    let layout = GsoLayout::parse(&frame.offload, frame.bytes()).ok()?;
    let index = frame.segments_done;
    if !layout.write_segment(frame.bytes(), index, out) {
        return None;
    }
    // The last when none follows it.
    Some(layout.segments().saturating_sub(index) <= 1)
}

/// (offset of the TCP header, end of the packet) of an IPv4 packet at `l3`.
fn ipv4_extent(frame: &[u8], l3: usize) -> Result<(usize, usize), GsoError> {
    let ip = frame.get(l3..).unwrap_or(&[]);
    let version_ihl = byte(ip, 0).ok_or(GsoError::BadIpHeader)?;
    // The header length, in 32-bit words.
    let header = usize::from(version_ihl & 0xf) << 2;
    let total = be16(ip, 2).map_or(0, usize::from);
    let fragment = be16(ip, 6).ok_or(GsoError::BadIpHeader)?;
    if version_ihl >> 4 != 4
        || header < IPV4_MIN_HEADER
        || total < header
        || total > ip.len()
        || fragment & IPV4_FRAGMENT_BITS != 0
    {
        return Err(GsoError::BadIpHeader);
    }
    if byte(ip, 9) != Some(IPPROTO_TCP) {
        return Err(GsoError::NotTcp);
    }
    extent(l3, header, total)
}

/// The same for IPv6; extension headers are refused (Linux puts none before a TSO
/// packet's TCP header).
fn ipv6_extent(frame: &[u8], l3: usize) -> Result<(usize, usize), GsoError> {
    let ip = frame.get(l3..).unwrap_or(&[]);
    let version = byte(ip, 0).ok_or(GsoError::BadIpHeader)? >> 4;
    let payload = be16(ip, 4).map_or(0, usize::from);
    // A 16-bit payload length: nothing saturates.
    let total = IPV6_HEADER.saturating_add(payload);
    if version != 6 || total > ip.len() {
        return Err(GsoError::BadIpHeader);
    }
    if byte(ip, 6) != Some(IPPROTO_TCP) {
        return Err(GsoError::NotTcp);
    }
    extent(l3, IPV6_HEADER, total)
}

/// (offset of the TCP header, end of the packet) of a packet at `l3` whose IP header
/// is `header` bytes and which is `total` bytes long (inside the frame: checked).
fn extent(l3: usize, header: usize, total: usize) -> Result<(usize, usize), GsoError> {
    match (l3.checked_add(header), l3.checked_add(total)) {
        (Some(l4), Some(end)) => Ok((l4, end)),
        _ => Err(GsoError::BadIpHeader),
    }
}

fn byte(bytes: &[u8], at: usize) -> Option<u8> {
    bytes.get(at).copied()
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    let field = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes(field.try_into().ok()?))
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let field = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(field.try_into().ok()?))
}

fn set_be16(bytes: &mut [u8], at: usize, value: u16) -> Option<()> {
    bytes
        .get_mut(at..at.checked_add(2)?)?
        .copy_from_slice(&value.to_be_bytes());
    Some(())
}

fn set_be32(bytes: &mut [u8], at: usize, value: u32) -> Option<()> {
    bytes
        .get_mut(at..at.checked_add(4)?)?
        .copy_from_slice(&value.to_be_bytes());
    Some(())
}
