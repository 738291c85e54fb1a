//! The ring both queues serve: the page layout, the chain shapes benched, and the
//! driver's side that lays the chains out and makes them available.

use devices::grant::PAGE_SIZE;
use devices::queue::{DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE};

pub const QUEUE_SIZE: u16 = 256;
pub const DESC_PAGE: usize = 0;
pub const AVAIL_PAGE: usize = 1;
pub const USED_PAGE: usize = 2;
const HEADER_PAGE: usize = 3;
const STATUS_PAGE: usize = 4;
const INDIRECT_PAGE: usize = 5;
const MAX_CHAINS: usize = 64;
const DATA_PAGE: usize = INDIRECT_PAGE + MAX_CHAINS;
const MAX_DATA_SEGMENTS: usize = 16;
pub const TOTAL_PAGES: usize = DATA_PAGE + MAX_CHAINS * MAX_DATA_SEGMENTS;

/// A chain shape: how many 4 KiB data segments, with or without the blk header and
/// status descriptors, direct or through an indirect table.
#[derive(Clone, Copy)]
pub struct Shape {
    pub name: &'static str,
    data_segments: usize,
    blk: bool,
    indirect: bool,
}

pub const SHAPES: [Shape; 5] = [
    Shape {
        name: "1desc",
        data_segments: 1,
        blk: false,
        indirect: false,
    },
    Shape {
        name: "blk_3desc",
        data_segments: 1,
        blk: true,
        indirect: false,
    },
    Shape {
        name: "blk_16seg",
        data_segments: 16,
        blk: true,
        indirect: false,
    },
    Shape {
        name: "blk_3desc_indirect",
        data_segments: 1,
        blk: true,
        indirect: true,
    },
    Shape {
        name: "blk_16seg_indirect",
        data_segments: 16,
        blk: true,
        indirect: true,
    },
];

impl Shape {
    fn descriptors(&self) -> usize {
        self.data_segments + if self.blk { 2 } else { 0 }
    }

    /// Chains made available per pass: as many as the descriptor table holds, at most 64.
    pub fn chains(&self) -> usize {
        if self.indirect {
            MAX_CHAINS
        } else {
            MAX_CHAINS.min(usize::from(QUEUE_SIZE) / self.descriptors())
        }
    }

    /// The descriptors of chain `i`: (page, offset, len, flags) with NEXT left to the layout.
    fn chain(&self, i: usize) -> Vec<(usize, usize, u32, u16)> {
        let mut descs = Vec::new();
        if self.blk {
            descs.push((HEADER_PAGE, 16 * i, 16, 0));
        }
        for s in 0..self.data_segments {
            descs.push((
                DATA_PAGE + i * MAX_DATA_SEGMENTS + s,
                0,
                PAGE_SIZE as u32,
                DESC_F_WRITE,
            ));
        }
        if self.blk {
            descs.push((STATUS_PAGE, i, 1, DESC_F_WRITE));
        }
        descs
    }
}

fn desc_bytes(addr: u64, len: u32, flags: u16, next: u16) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&addr.to_le_bytes());
    b[8..12].copy_from_slice(&len.to_le_bytes());
    b[12..14].copy_from_slice(&flags.to_le_bytes());
    b[14..].copy_from_slice(&next.to_le_bytes());
    b
}

/// The driver's side of one memory: how to name a byte and how to write bytes.
pub trait DriverView {
    fn addr(&self, page: usize, offset: usize) -> u64;
    fn put(&mut self, page: usize, offset: usize, bytes: &[u8]);
}

/// Lays out the descriptor table (and indirect tables); returns the chains' heads.
pub fn lay_out(view: &mut dyn DriverView, shape: Shape) -> Vec<u16> {
    let mut heads = Vec::new();
    let mut next_free = 0usize;
    for i in 0..shape.chains() {
        let descs = shape.chain(i);
        let count = descs.len();
        let (table_page, first) = if shape.indirect {
            let head = next_free as u16;
            let table = desc_bytes(
                view.addr(INDIRECT_PAGE + i, 0),
                16 * count as u32,
                DESC_F_INDIRECT,
                0,
            );
            view.put(DESC_PAGE, 16 * next_free, &table);
            next_free += 1;
            heads.push(head);
            (INDIRECT_PAGE + i, 0)
        } else {
            heads.push(next_free as u16);
            let first = next_free;
            next_free += count;
            (DESC_PAGE, first)
        };
        for (k, &(page, offset, len, flags)) in descs.iter().enumerate() {
            let last = k + 1 == count;
            let flags = if last { flags } else { flags | DESC_F_NEXT };
            let next = if last { 0 } else { (first + k + 1) as u16 };
            let bytes = desc_bytes(view.addr(page, offset), len, flags, next);
            view.put(table_page, 16 * (first + k), &bytes);
        }
    }
    heads
}

/// Makes every chain available once more and publishes avail.idx. Never inlined, so
/// callgrind can subtract the driver's side from the timed rounds (`instructions.sh`).
#[inline(never)]
pub fn make_available(view: &mut dyn DriverView, heads: &[u16], avail_idx: &mut u16) {
    for &head in heads {
        let slot = usize::from(*avail_idx % QUEUE_SIZE);
        view.put(AVAIL_PAGE, 4 + 2 * slot, &head.to_le_bytes());
        *avail_idx = avail_idx.wrapping_add(1);
    }
    view.put(AVAIL_PAGE, 2, &avail_idx.to_le_bytes());
}
