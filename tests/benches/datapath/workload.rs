//! The block workloads: request size, queue depth, direction and layout, each one's
//! bench id, and the set the blk bench and its tables run.

use devices::grant::PAGE_SIZE;

pub const T_IN: u32 = 0;
pub const T_OUT: u32 = 1;
/// Linux's split of a large request: SIZE_MAX (4 KiB) segments, at most SEG_MAX (254)
/// per request, so 1 MiB becomes 1016 KiB + 8 KiB.
const SEG_MAX: usize = 254;

/// A workload: request size, queue depth (in requests), read or write, random or
/// sequential, direct descriptors or indirect tables (Linux uses indirect).
#[derive(Clone, Copy)]
pub struct Workload {
    pub bytes: usize,
    pub depth: usize,
    pub kind: u32,
    pub random: bool,
    pub indirect: bool,
}

impl Workload {
    /// Chains per request: segments split as Linux would.
    pub fn chains(&self) -> Vec<usize> {
        let mut pages = self.bytes / PAGE_SIZE;
        let mut out = Vec::new();
        while pages > 0 {
            let n = pages.min(SEG_MAX);
            out.push(n);
            pages -= n;
        }
        out
    }

    pub fn name(&self) -> String {
        let size = if self.bytes >= 1 << 20 {
            format!("{}M", self.bytes >> 20)
        } else {
            format!("{}K", self.bytes >> 10)
        };
        format!(
            "{}{}_{}_qd{}{}",
            if self.random { "rand" } else { "seq" },
            if self.kind == T_IN { "read" } else { "write" },
            size,
            self.depth,
            if self.indirect { "" } else { "_direct" }
        )
    }
}

/// The bench id of `workload` over the copy route (the kernel's default) or mapped.
pub fn route_name(workload: &Workload, copy: bool) -> String {
    format!(
        "{}_{}",
        workload.name(),
        if copy { "copy" } else { "mapped" }
    )
}

pub fn blk_workloads() -> Vec<Workload> {
    let mut out = Vec::new();
    for depth in [1, 32] {
        for kind in [T_IN, T_OUT] {
            out.push(Workload {
                bytes: 4096,
                depth,
                kind,
                random: true,
                indirect: true,
            });
        }
        for bytes in [64 << 10, 1 << 20] {
            for kind in [T_IN, T_OUT] {
                out.push(Workload {
                    bytes,
                    depth,
                    kind,
                    random: false,
                    indirect: true,
                });
            }
        }
    }
    out
}
