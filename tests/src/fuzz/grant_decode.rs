//! Target 6: grant-address decoding and chain-to-batch mapping, checked against an
//! independent computation of what Linux's encoding means.

use arbitrary::Unstructured;
use devices::grant::{AddressError, GrantAddress, GrantSpan};
use devices::mapping::{BatchError, PageBatch};
use devices::memory::{Access, PageUse};

const BATCH: usize = 64;

/// What decoding must say, computed the long way round.
fn expected(addr: u64, len: u32) -> Result<(u64, u64, u64), AddressError> {
    if len == 0 {
        return Err(AddressError::Empty);
    }
    if addr & (1 << 63) == 0 {
        return Err(AddressError::NotGrantEncoded);
    }
    let gref = (addr & !(1 << 63)) / 4096;
    if gref > u64::from(u32::MAX) {
        return Err(AddressError::GrantRefTooLarge);
    }
    let offset = addr % 4096;
    let pages = (offset + u64::from(len)).div_ceil(4096);
    if gref + pages - 1 > u64::from(u32::MAX) {
        return Err(AddressError::Overflow);
    }
    Ok((gref, offset, pages))
}

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut batch: PageBatch<BATCH> = PageBatch::new();
    let mut queued = 0usize;
    // `arbitrary` yields zeroes forever once the data runs out: stop at the end.
    while u.len() >= 12 {
        let (Ok(addr), Ok(len)) = (u.arbitrary::<u64>(), u.arbitrary::<u32>()) else {
            break;
        };
        let span = GrantSpan::new(addr, len);
        match (span, expected(addr, len)) {
            (Err(got), Err(want)) => assert_eq!(got, want, "addr {addr:#x} len {len}"),
            (Ok(span), Ok((gref, offset, pages))) => {
                assert_eq!(u64::from(span.first.0), gref);
                assert_eq!(u64::from(span.offset), offset);
                assert_eq!(u64::from(span.page_count()), pages);
                assert_eq!(GrantAddress::encode(span.first, span.offset), addr);
                let last = span.gref(span.page_count() - 1);
                assert_eq!(u64::from(last.0), gref + pages - 1, "consecutive grefs");
                match batch.add_span(&span, Access::ReadOnly, PageUse::Buffer) {
                    Ok(first) => {
                        assert_eq!(first, queued);
                        queued += pages as usize;
                    }
                    Err(BatchError::Full) => assert!(queued + pages as usize > BATCH),
                }
                assert_eq!(batch.len(), queued);
            }
            (got, want) => panic!("addr {addr:#x} len {len}: decoded {got:?}, expected {want:?}"),
        }
    }
}
