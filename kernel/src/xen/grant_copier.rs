//! [`GrantCopier`] for one frontend: each copy is one `GNTTABOP_copy`, which lets
//! `devices::copy_route::CopyRoute` reach request buffers without mapping them.

use super::abi::DomId;
use super::grant::{self, CopyFailure, GrantPiece};
use devices::copy_route::GrantCopier;
use devices::grant::GrantRef;
use devices::memory::AccessError;

pub struct XenCopier {
    pub frontend: DomId,
}

fn piece(gref: GrantRef, offset: usize, len: usize) -> Result<GrantPiece, AccessError> {
    Ok(GrantPiece {
        gref: gref.0,
        offset: u16::try_from(offset).map_err(|_| AccessError::OutOfPage)?,
        len: u16::try_from(len).map_err(|_| AccessError::OutOfPage)?,
    })
}

fn access_error(failure: CopyFailure) -> AccessError {
    match failure {
        // A local buffer that is not identity-mapped RAM: our bug, not the frontend's.
        CopyFailure::Local => AccessError::NotMapped,
        CopyFailure::Refused(_) => AccessError::Refused,
    }
}

impl GrantCopier for XenCopier {
    fn copy_from_grant(
        &self,
        gref: GrantRef,
        offset: usize,
        dst: &mut [u8],
    ) -> Result<(), AccessError> {
        let one = [piece(gref, offset, dst.len())?];
        grant::copy_from_grants(self.frontend, &one, dst).map_err(access_error)
    }

    fn copy_to_grant(&self, gref: GrantRef, offset: usize, src: &[u8]) -> Result<(), AccessError> {
        let one = [piece(gref, offset, src.len())?];
        grant::copy_to_grants(self.frontend, &one, src).map_err(access_error)
    }
}
