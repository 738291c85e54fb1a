//! Every frontend's guest memory as the devices reach it, and the grant-copy totals,
//! which keep counting frontends that went away.

use crate::xen::abi::DomainId;
use crate::xen::grant_copier::XenCopier;
use crate::xen::guest_memory::GrantMemory;
use alloc::vec::Vec;
use devices::backend::Frontends;
use devices::buffer_route::BufferRoute;
use devices::copy_route::{CopyRoute, CopyStats};

/// Every frontend's memory, reached through its grants: everything mapped, or request
/// buffers copied (the default; `grant_route=map` maps them).
pub struct Memories {
    live: Vec<(DomainId, BufferRoute<GrantMemory, XenCopier>)>,
    /// The copies made for frontends that went away, still counted in the totals.
    departed: Option<CopyStats>,
}

impl Memories {
    pub fn new(domids: impl Iterator<Item = DomainId>, copy_buffers: bool) -> Self {
        let mut memories = Self {
            live: Vec::new(),
            departed: None,
        };
        for domid in domids {
            memories.add(domid, copy_buffers);
        }
        memories
    }

    /// A frontend found while serving (the xl route); nothing if it has memory already.
    pub fn add(&mut self, domid: DomainId, copy_buffers: bool) {
        if self.live.iter().any(|(live, _)| *live == domid) {
            return;
        }
        let mapped = GrantMemory::new(domid);
        let memory = if copy_buffers {
            BufferRoute::Copied(CopyRoute::new(mapped, XenCopier { frontend: domid }))
        } else {
            BufferRoute::Mapped(mapped)
        };
        self.live.push((domid, memory));
    }

    /// Grant copies made and refused, over every frontend (copy route only).
    pub fn copy_stats(&self) -> Option<CopyStats> {
        let mut total = self.departed;
        for (_, memory) in &self.live {
            if let Some(s) = memory.copy_route().map(|route| route.stats()) {
                add(total.get_or_insert_with(CopyStats::default), s);
            }
        }
        total
    }

    /// Forgets a frontend's memory (its devices are detached); its copies stay counted.
    pub fn remove(&mut self, domain: DomainId) {
        let Some(at) = self.live.iter().position(|(domid, _)| *domid == domain) else {
            return;
        };
        let (_, memory) = self.live.remove(at);
        if let Some(s) = memory.copy_route().map(|route| route.stats()) {
            add(self.departed.get_or_insert_with(CopyStats::default), s);
        }
    }
}

fn add(total: &mut CopyStats, more: CopyStats) {
    total.copies += more.copies;
    total.refused += more.refused;
    total.bytes += more.bytes;
}

impl Frontends for Memories {
    type Memory = BufferRoute<GrantMemory, XenCopier>;

    fn memory(&mut self, domain: DomainId) -> Option<&mut Self::Memory> {
        self.live
            .iter_mut()
            .find(|(domid, _)| *domid == domain)
            .map(|(_, memory)| memory)
    }
}
