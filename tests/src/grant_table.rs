//! A frontend domain's grant table as Xen keeps it: which frames it granted, to whom,
//! read-only or not, and how many mappings the backend holds on each.

use crate::host_pages::SharedRange;
use devices::backend::DomainId;

/// Linux reserves the first grant references; frontends allocate from here.
pub const FIRST_GREF: u32 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantEntry {
    /// Host address of the granted page (page-aligned).
    pub frame: usize,
    /// The bytes of that page the frontend actually shared.
    pub shared: SharedRange,
    pub readonly: bool,
    pub grantee: DomainId,
    /// Live backend mappings of this grant.
    pub mapped: u32,
}

/// Why the frontend could not end access to a grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndAccessError {
    NoSuchGrant,
    /// Linux: "Grant still in use by backend domain": the backend kept a mapping.
    StillMapped,
}

/// Indexed by grant reference, as Xen's own table is: a lookup is one array access.
#[derive(Debug)]
pub struct GrantTable {
    entries: Vec<Option<GrantEntry>>,
    live: usize,
    next: u32,
}

impl Default for GrantTable {
    fn default() -> Self {
        Self::new()
    }
}

impl GrantTable {
    pub fn new() -> Self {
        Self {
            entries: Vec::new(),
            live: 0,
            next: FIRST_GREF,
        }
    }

    /// Grants `frames` under consecutive references (as grant-dma does for a
    /// multi-page buffer); returns the first.
    pub fn grant_consecutive(
        &mut self,
        frames: &[(usize, SharedRange)],
        readonly: bool,
        grantee: DomainId,
    ) -> u32 {
        let first = self.next;
        for (index, &(frame, shared)) in frames.iter().enumerate() {
            let entry = GrantEntry {
                frame,
                shared,
                readonly,
                grantee,
                mapped: 0,
            };
            let gref = (first + index as u32) as usize;
            if self.entries.len() <= gref {
                self.entries.resize(gref + 1, None);
            }
            if let Some(slot) = self.entries.get_mut(gref) {
                self.live += usize::from(slot.is_none());
                *slot = Some(entry);
            }
        }
        self.next = first + frames.len() as u32;
        first
    }

    pub fn entry(&self, gref: u32) -> Option<&GrantEntry> {
        self.entries.get(gref as usize)?.as_ref()
    }

    pub fn entry_mut(&mut self, gref: u32) -> Option<&mut GrantEntry> {
        self.entries.get_mut(gref as usize)?.as_mut()
    }

    fn remove(&mut self, gref: u32) {
        if let Some(slot) = self.entries.get_mut(gref as usize) {
            self.live -= usize::from(slot.is_some());
            *slot = None;
        }
    }

    /// `gnttab_end_foreign_access`: fails while the backend maps the grant.
    pub fn end_access(&mut self, gref: u32) -> Result<(), EndAccessError> {
        let entry = self.entry(gref).ok_or(EndAccessError::NoSuchGrant)?;
        if entry.mapped > 0 {
            return Err(EndAccessError::StillMapped);
        }
        self.remove(gref);
        Ok(())
    }

    /// Revokes a grant even while mapped (a hostile or crashing frontend); later maps
    /// fail with GNTST_bad_gntref.
    pub fn revoke(&mut self, gref: u32) {
        self.remove(gref);
    }

    pub fn live_grants(&self) -> usize {
        self.live
    }

    pub fn mapped_grants(&self) -> usize {
        self.entries
            .iter()
            .flatten()
            .filter(|e| e.mapped > 0)
            .count()
    }
}
