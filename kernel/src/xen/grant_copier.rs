//! [`GrantCopier`] for one frontend: each copy is one `GNTTABOP_copy`, which lets
//! `devices::copy_route::CopyRoute` reach request buffers without mapping them.

use super::abi::DomainId;
use super::grant::{self, CopyFailure, GrantPiece};
use devices::copy_route::{GrantCopier, GrantPiece as CopyPiece};
use devices::memory::{AccessError, PIECES_PER_ACCESS};

pub struct XenCopier {
    pub frontend: DomainId,
}

/// Our pieces as the hypercall's (a piece never leaves its page, so it fits 16 bits).
fn pieces(
    grants: &[CopyPiece],
) -> Result<heapless::Vec<GrantPiece, PIECES_PER_ACCESS>, AccessError> {
    let mut out = heapless::Vec::new();
    for g in grants {
        let piece = GrantPiece {
            gref: g.gref.0,
            offset: u16::try_from(g.offset).map_err(|_| AccessError::OutOfPage)?,
            len: u16::try_from(g.len).map_err(|_| AccessError::OutOfPage)?,
            local: g.local,
        };
        out.push(piece).map_err(|_| AccessError::OutOfPage)?;
    }
    Ok(out)
}

fn access_error(failure: CopyFailure) -> AccessError {
    match failure {
        // A local buffer that is not identity-mapped RAM: our bug, not the frontend's.
        CopyFailure::Local => AccessError::NotMapped,
        CopyFailure::Refused(_) => AccessError::Refused,
    }
}

/// Each call is one `GNTTABOP_copy`: [`PIECES_PER_ACCESS`] pieces split at most once
/// each at a local page boundary fit its [`grant::MAX_COPY_OPS`] operations.
const _: () = assert!(2 * PIECES_PER_ACCESS <= grant::MAX_COPY_OPS);

impl GrantCopier for XenCopier {
    fn copy_from_grants(&self, grants: &[CopyPiece], dst: &mut [u8]) -> Result<(), AccessError> {
        grant::copy_from_grants(self.frontend, &pieces(grants)?, dst).map_err(access_error)
    }

    fn copy_to_grants(&self, grants: &[CopyPiece], src: &[u8]) -> Result<(), AccessError> {
        grant::copy_to_grants(self.frontend, &pieces(grants)?, src).map_err(access_error)
    }
}
