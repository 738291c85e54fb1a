//! The xenstore wire protocol (`io/xs_wire.h`): the shared ring page a domain is given
//! and the message header both sides write into it.

/// `enum xsd_sockmsg_type`, the kinds stubvirt sends or receives.
pub mod msg {
    pub const DIRECTORY: u32 = 1;
    pub const READ: u32 = 2;
    pub const WATCH: u32 = 4;
    pub const UNWATCH: u32 = 5;
    pub const TRANSACTION_START: u32 = 6;
    pub const TRANSACTION_END: u32 = 7;
    pub const GET_DOMAIN_PATH: u32 = 10;
    pub const WRITE: u32 = 11;
    pub const MKDIR: u32 = 12;
    pub const RM: u32 = 13;
    pub const WATCH_EVENT: u32 = 15;
    pub const ERROR: u32 = 16;
    /// `XS_TYPE_COUNT`: every valid type is below it.
    pub const TYPE_COUNT: u32 = 23;
}

/// Each ring's size in bytes; indices run free and are masked with `RING_SIZE - 1`.
pub const RING_SIZE: usize = 1024;
/// The largest payload either side may send (`XENSTORE_PAYLOAD_MAX`).
pub const PAYLOAD_MAX: usize = 4096;
/// The longest absolute path xenstored accepts (`XENSTORE_ABS_PATH_MAX`).
pub const ABS_PATH_MAX: usize = 3072;

/// `struct xsd_sockmsg`, followed on the ring by `len` payload bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XsdSockmsg {
    pub type_: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub len: u32,
}

pub const HEADER_SIZE: usize = core::mem::size_of::<XsdSockmsg>();

impl XsdSockmsg {
    pub fn to_bytes(self) -> [u8; HEADER_SIZE] {
        let mut bytes = [0; HEADER_SIZE];
        for (chunk, word) in
            bytes
                .chunks_exact_mut(4)
                .zip([self.type_, self.req_id, self.tx_id, self.len])
        {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        bytes
    }

    pub fn from_bytes(bytes: &[u8; HEADER_SIZE]) -> Self {
        let word = |at: usize| {
            let mut w = [0; 4];
            if let Some(src) = bytes.get(at..at + 4) {
                w.copy_from_slice(src);
            }
            u32::from_le_bytes(w)
        };
        Self {
            type_: word(0),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        }
    }
}

/// `struct xenstore_domain_interface`: the page shared with xenstored.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XenstoreDomainInterface {
    pub req: [u8; RING_SIZE],
    pub rsp: [u8; RING_SIZE],
    pub req_cons: u32,
    pub req_prod: u32,
    pub rsp_cons: u32,
    pub rsp_prod: u32,
    pub server_features: u32,
    pub connection: u32,
    pub error: u32,
}

/// Byte offsets of the interface's fields, for volatile access to the shared page.
pub mod offset {
    use super::XenstoreDomainInterface as I;
    use core::mem::offset_of;
    pub const REQ: usize = offset_of!(I, req);
    pub const RSP: usize = offset_of!(I, rsp);
    pub const REQ_CONS: usize = offset_of!(I, req_cons);
    pub const REQ_PROD: usize = offset_of!(I, req_prod);
    pub const RSP_CONS: usize = offset_of!(I, rsp_cons);
    pub const RSP_PROD: usize = offset_of!(I, rsp_prod);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_little_endian() {
        let header = XsdSockmsg {
            type_: msg::WRITE,
            req_id: 0x0102_0304,
            tx_id: 7,
            len: 4096,
        };
        let bytes = header.to_bytes();
        assert_eq!(&bytes[..4], &[11, 0, 0, 0]);
        assert_eq!(&bytes[4..8], &[4, 3, 2, 1]);
        assert_eq!(XsdSockmsg::from_bytes(&bytes), header);
    }
}
