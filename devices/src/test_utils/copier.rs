//! [`TestCopier`]: `GNTTABOP_copy` over a [`TestMemory`]'s pages.

use super::memory::TestMemory;
use crate::copy_route::{GrantCopier, GrantPiece};
use crate::memory::AccessError;

/// Grant copies between the backend and a [`TestMemory`]: each call counted
/// ([`TestMemory::copies`]), its pieces checked and moved in order, stopping at the
/// first one refused. Made by [`TestMemory::copier`].
pub struct TestCopier(pub(super) TestMemory);

impl GrantCopier for TestCopier {
    fn copy_from_grants(&self, pieces: &[GrantPiece], dst: &mut [u8]) -> Result<(), AccessError> {
        self.0.grant_copy(pieces, false, |page, piece| {
            let from = &page[piece.offset..piece.offset + piece.len];
            dst[piece.local..piece.local + piece.len].copy_from_slice(from);
        })
    }

    fn copy_to_grants(&self, pieces: &[GrantPiece], src: &[u8]) -> Result<(), AccessError> {
        self.0.grant_copy(pieces, true, |page, piece| {
            let to = &mut page[piece.offset..piece.offset + piece.len];
            to.copy_from_slice(&src[piece.local..piece.local + piece.len]);
        })
    }
}
