//! Grant-encoded DMA addresses, as Linux `xen-grant-dma` hands them to a device.
//!
//! A frontend with `xen,grant-dma` never shows the backend a guest-physical address: every
//! DMA address is `1 << 63 | gref << 12 | offset`, and a buffer spanning several pages uses
//! consecutive grant references. A plain address is refused: stubvirt never maps foreign
//! memory by frame number.

/// Size of a page and of a granted frame.
pub const PAGE_SIZE: usize = 4096;
const PAGE_SHIFT: u32 = 12;
const OFFSET_MASK: u64 = PAGE_SIZE as u64 - 1;
const GRANT_BIT: u64 = 1 << 63;
/// Grant references occupy bits 62..12 but Xen's `grant_ref_t` is 32 bits wide.
const MAX_GREF: u64 = u32::MAX as u64;

/// A grant reference of the frontend domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantRef(pub u32);

/// Why a DMA address cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressError {
    /// Bit 63 is clear: a guest-physical address, which a grant-only backend cannot reach.
    NotGrantEncoded,
    /// The grant reference does not fit Xen's 32-bit `grant_ref_t`.
    GrantRefTooLarge,
    /// `addr + len` wraps, or the buffer runs past the last possible grant reference.
    Overflow,
    /// A zero-length buffer where data was required.
    Empty,
}

/// A decoded grant DMA address: the first page's grant and the offset into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantAddress {
    pub gref: GrantRef,
    pub offset: u16,
}

impl GrantAddress {
    /// Decodes a DMA address the frontend wrote into a register or a descriptor.
    pub fn decode(dma_address: u64) -> Result<Self, AddressError> {
        if dma_address & GRANT_BIT == 0 {
            return Err(AddressError::NotGrantEncoded);
        }
        let gref = (dma_address & !GRANT_BIT) >> PAGE_SHIFT;
        if gref > MAX_GREF {
            return Err(AddressError::GrantRefTooLarge);
        }
        Ok(Self {
            gref: GrantRef(gref as u32),
            // Masked to 12 bits, so the cast is lossless.
            offset: (dma_address & OFFSET_MASK) as u16,
        })
    }

    /// The grant DMA address of `gref` + `offset`, as the frontend would build it.
    pub fn encode(gref: GrantRef, offset: u16) -> u64 {
        GRANT_BIT | (u64::from(gref.0) << PAGE_SHIFT) | u64::from(offset & 0xfff)
    }
}

/// A guest buffer of `len` bytes at a grant DMA address: which pages it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantSpan {
    pub first: GrantRef,
    pub offset: u16,
    pub len: u32,
}

impl GrantSpan {
    /// Decodes a buffer; refuses empty ones, plain addresses and reference overflow.
    pub fn new(dma_address: u64, len: u32) -> Result<Self, AddressError> {
        if len == 0 {
            return Err(AddressError::Empty);
        }
        let start = GrantAddress::decode(dma_address)?;
        let span = Self {
            first: start.gref,
            offset: start.offset,
            len,
        };
        // The last gref must exist too: consecutive refs may not wrap past u32::MAX (a
        // non-empty span touches at least one page).
        let after_first = span.page_count().saturating_sub(1);
        if span.first.0.checked_add(after_first).is_none() {
            return Err(AddressError::Overflow);
        }
        Ok(span)
    }

    /// How many pages (consecutive grants) the buffer touches.
    pub fn page_count(&self) -> u32 {
        pages_touched(self.offset, self.len)
    }

    /// The grant reference of the buffer's `index`-th page (wraps as the grant table's
    /// references do; [`Self::new`] refused a span whose references wrap).
    pub fn gref(&self, index: u32) -> GrantRef {
        GrantRef(self.first.0.wrapping_add(index))
    }
}

/// How many pages `len` bytes from `offset` in the first page touch.
pub fn pages_touched(offset: u16, len: u32) -> u32 {
    // A u16 and a u32 added in 64 bits: never near saturating.
    let end = u64::from(offset).saturating_add(u64::from(len));
    end.div_ceil(PAGE_SIZE as u64) as u32
}

/// Where byte `at` of consecutive pages lies: the page's index, the offset in that page,
/// and the bytes from there to the page's end (1 to `PAGE_SIZE`).
pub fn page_position(at: usize) -> (usize, usize, usize) {
    let offset = at % PAGE_SIZE;
    // `offset` is below PAGE_SIZE: exact.
    (at / PAGE_SIZE, offset, PAGE_SIZE.saturating_sub(offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_linux_grant_addresses() {
        let a = GrantAddress::decode(0x8000_0000_0000_8010).unwrap();
        assert_eq!(a.gref, GrantRef(8));
        assert_eq!(a.offset, 0x10);
        assert_eq!(
            GrantAddress::encode(GrantRef(8), 0x10),
            0x8000_0000_0000_8010
        );
    }

    #[test]
    fn refuses_plain_and_oversized_addresses() {
        assert_eq!(
            GrantAddress::decode(0x4000_0000),
            Err(AddressError::NotGrantEncoded)
        );
        assert_eq!(
            GrantAddress::decode(GRANT_BIT | ((MAX_GREF + 1) << 12)),
            Err(AddressError::GrantRefTooLarge)
        );
        assert_eq!(GrantSpan::new(GRANT_BIT, 0), Err(AddressError::Empty));
        let last = GrantAddress::encode(GrantRef(u32::MAX), 0);
        assert!(GrantSpan::new(last, 4096).is_ok());
        assert_eq!(GrantSpan::new(last, 4097), Err(AddressError::Overflow));
    }

    #[test]
    fn counts_pages_touched() {
        let span =
            |off: u16, len| GrantSpan::new(GrantAddress::encode(GrantRef(5), off), len).unwrap();
        assert_eq!(span(0, 4096).page_count(), 1);
        assert_eq!(span(1, 4096).page_count(), 2);
        assert_eq!(span(4095, 2).page_count(), 2);
        assert_eq!(span(0, 3 * 4096 + 1).page_count(), 4);
        assert_eq!(span(0, 8192).gref(1), GrantRef(6));
    }
}
