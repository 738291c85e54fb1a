//! A frontend's memory by either route, chosen when the backend starts: request buffers
//! mapped, or copied with `GNTTABOP_copy` ([`CopyRoute`]).
//!
//! An enum rather than `dyn GuestMemory`: the devices are compiled for this one concrete
//! type, so the queue walk's per-descriptor reads are calls the compiler can inline, and
//! the route costs one predictable branch per access instead of an indirect call.

use crate::copy_route::{CopyRoute, GrantCopier};
use crate::memory::{
    AccessError, Barrier, DescriptorWords, GuestMemory, MapError, MapRequest, MappedPage, Piece,
    Placed,
};

pub enum BufferRoute<M, C> {
    /// Every page mapped, request buffers included.
    Mapped(M),
    /// Request buffers by grant copy; rings and indirect tables mapped by `M`.
    Copied(CopyRoute<M, C>),
}

impl<M: GuestMemory, C: GrantCopier> BufferRoute<M, C> {
    /// The copy route, when it is the one in use (for its statistics).
    pub fn copy_route(&self) -> Option<&CopyRoute<M, C>> {
        match self {
            Self::Copied(route) => Some(route),
            Self::Mapped(_) => None,
        }
    }
}

/// Forwards one call to whichever route is in use.
macro_rules! either {
    ($self:expr, $memory:ident => $call:expr) => {
        match $self {
            BufferRoute::Mapped($memory) => $call,
            BufferRoute::Copied($memory) => $call,
        }
    };
}

// Every method is forwarded, the defaulted ones too: each route may override them.
impl<M: GuestMemory, C: GrantCopier> GuestMemory for BufferRoute<M, C> {
    // Both routes map rings and tables with `M`.
    type Rings = M;

    #[inline]
    fn rings(&self) -> &M {
        match self {
            Self::Mapped(memory) => memory,
            Self::Copied(route) => route.rings(),
        }
    }

    #[inline]
    fn rings_mut(&mut self) -> &mut M {
        match self {
            Self::Mapped(memory) => memory,
            Self::Copied(route) => route.rings_mut(),
        }
    }

    #[inline]
    fn map_batch(&mut self, requests: &[MapRequest], results: &mut [Result<MappedPage, MapError>]) {
        either!(self, m => m.map_batch(requests, results))
    }

    #[inline]
    fn unmap_batch(&mut self, pages: &[MappedPage]) -> usize {
        either!(self, m => m.unmap_batch(pages))
    }

    #[inline]
    fn read(&self, page: MappedPage, offset: usize, dst: &mut [u8]) -> Result<(), AccessError> {
        either!(self, m => m.read(page, offset, dst))
    }

    #[inline]
    fn write(&mut self, page: MappedPage, offset: usize, src: &[u8]) -> Result<(), AccessError> {
        either!(self, m => m.write(page, offset, src))
    }

    #[inline]
    fn barrier(&self, kind: Barrier) {
        either!(self, m => m.barrier(kind))
    }

    #[inline]
    fn read_u16(&self, page: MappedPage, offset: usize) -> Result<u16, AccessError> {
        either!(self, m => m.read_u16(page, offset))
    }

    #[inline]
    fn read_descriptor(
        &self,
        page: MappedPage,
        offset: usize,
    ) -> Result<DescriptorWords, AccessError> {
        either!(self, m => m.read_descriptor(page, offset))
    }

    #[inline]
    fn read_pieces(&self, pieces: &[Piece], dst: &mut [u8]) -> Result<(), AccessError> {
        either!(self, m => m.read_pieces(pieces, dst))
    }

    #[inline]
    fn moves_pieces_together(&self) -> bool {
        either!(self, m => m.moves_pieces_together())
    }

    #[inline]
    fn write_pieces(&mut self, pieces: &[Piece], src: &[u8]) -> Result<(), AccessError> {
        either!(self, m => m.write_pieces(pieces, src))
    }

    #[inline]
    fn read_placed(&self, pieces: &[Placed], local: &mut [u8]) -> Result<(), AccessError> {
        either!(self, m => m.read_placed(pieces, local))
    }

    #[inline]
    fn write_placed(&mut self, pieces: &[Placed], local: &[u8]) -> Result<(), AccessError> {
        either!(self, m => m.write_placed(pieces, local))
    }

    #[inline]
    fn write_u16(
        &mut self,
        page: MappedPage,
        offset: usize,
        value: u16,
    ) -> Result<(), AccessError> {
        either!(self, m => m.write_u16(page, offset, value))
    }
}
