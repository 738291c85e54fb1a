//! The test memory keeps Xen's rules, or the device tests over it prove nothing.

use super::*;
use crate::copy_route::{GrantCopier, GrantPiece};
use crate::grant::GrantAddress;
use crate::grant::GrantRef;
use crate::memory::{Access, AccessError, GuestMemory, MapError, MapRequest, MappedPage, PageUse};
use alloc::vec;

fn map(mem: &mut TestMemory, addr: u64, access: Access) -> Result<MappedPage, MapError> {
    let gref = GrantAddress::decode(addr).unwrap().gref;
    let request = MapRequest {
        gref,
        access,
        usage: PageUse::Buffer,
    };
    let mut result = [Err(MapError::Again)];
    mem.map_batch(&[request], &mut result);
    result[0]
}

#[test]
fn maps_follow_the_grant_and_are_counted() {
    let mut mem = TestMemory::new();
    let page = mem.buffer(0, 1, true);
    let missing = dma(GrantRef(0), 0);
    assert_eq!(
        map(&mut mem, missing, Access::ReadOnly),
        Err(MapError::BadGrantRef)
    );
    assert_eq!(
        map(&mut mem, page, Access::ReadWrite),
        Err(MapError::PermissionDenied)
    );
    let mapped = map(&mut mem, page, Access::ReadOnly).unwrap();
    assert_eq!((mem.live_mappings(), mem.maps_of(page)), (1, 1));
    mem.revoke(page);
    assert_eq!(
        map(&mut mem, page, Access::ReadOnly),
        Err(MapError::BadGrantRef)
    );
    // The live mapping keeps the page, as in Xen; a write through it is a device bug.
    let mut byte = [0];
    assert_eq!(mem.read(mapped, 0, &mut byte), Ok(()));
    assert_eq!(mem.write(mapped, 0, &[1]), Err(AccessError::ReadOnly));
    assert_eq!(mem.unmap_batch(&[mapped]), 0);
    assert_eq!(mem.unmap_batch(&[mapped]), 1, "a stale token");
    assert_eq!(mem.read(mapped, 0, &mut byte), Err(AccessError::NotMapped));
    assert_eq!(mem.live_mappings(), 0);
    assert_eq!(mem.violations().len(), 3, "{:?}", mem.violations());
}

#[test]
fn driver_bytes_cross_pages_and_copies_check_the_grant() {
    let mem = TestMemory::new();
    let addr = mem.buffer(4094, 4, false);
    mem.put(addr, b"abcd");
    assert_eq!(mem.get(addr + 2, 2), b"cd", "the next grant's first bytes");
    let copier = mem.copier();
    let piece = |offset, len| GrantPiece {
        gref: GrantRef(FIRST_GREF + 1),
        offset,
        len,
        local: 0,
    };
    let mut out = vec![0; 2];
    copier.copy_from_grants(&[piece(0, 2)], &mut out).unwrap();
    assert_eq!(out, b"cd");
    assert_eq!(
        copier.copy_from_grants(&[piece(4095, 2)], &mut out),
        Err(AccessError::Refused)
    );
    mem.set_read_only(addr + 2, true);
    assert_eq!(
        copier.copy_to_grants(&[piece(0, 2)], b"xy"),
        Err(AccessError::Refused)
    );
    assert_eq!(mem.copies(), 3);
    assert!(
        mem.violations().is_empty(),
        "a refused copy is the guest's doing"
    );
}
