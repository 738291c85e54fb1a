//! `grantbench=1` (arm64 under Xen): what reaching a frontend's bytes costs by each route a
//! backend has, timed on the real hypercall paths. Route "map": one
//! `GNTTABOP_map_grant_ref` batch for every page, copy through the mappings, one unmap
//! batch (what the devices do, through [`GrantMemory`]). Route "copy": one `GNTTABOP_copy`
//! naming every piece, no mapping. Self-granted frames stand in for a frontend's: the
//! hypercalls and Xen's checks are the same. One line per case:
//! `STUBVIRT-GRANTBENCH way=from|to bytes=N frames=F map_ns=.. copy_ns=.. ok=1`.

use crate::arch::{counter_ns, PAGE_SIZE};
use crate::mem;
use crate::xen::abi::DomainId;
use crate::xen::grant::{self, GrantPiece, GrantTable};
use crate::xen::guest_memory::GrantMemory;
use crate::xen::{evtchn, window};
use alloc::vec::Vec;
use core::fmt::Write;
use devices::grant::GrantRef;
use devices::memory::{Access, GuestMemory, MapError, MapRequest, MappedPage, PageUse};

/// Self-granted pages the cases draw from (64 KiB or 32 separate frames at most).
const POOL_PAGES: usize = 32;
/// (bytes per frame, frames per batch): net-sized frames alone and 32 at once (one rx
/// burst), a block sector, a page, and multi-page block requests.
const CASES: [(usize, usize); 8] = [
    (64, 1),
    (512, 1),
    (1500, 1),
    (4096, 1),
    (16384, 1),
    (65536, 1),
    (64, 32),
    (1500, 32),
];
/// Hypercall pairs (or copies) per case: enough for the 16 ns counter, bounded in time.
const ITERATIONS: u32 = 300;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Frontend to backend (tx, block writes).
    From,
    /// Backend to frontend (rx, block reads).
    To,
}

struct Pool {
    domid: DomainId,
    first_gref: u32,
    /// The granted frames themselves (VA == GPA), to check what the copies moved.
    frames: &'static mut [u8],
    /// The devices' route to grants, made once as a device's is.
    memory: GrantMemory,
}

/// Runs every case and prints one line each; returns whether every copy moved the right
/// bytes.
pub fn run(boot: &crate::arch::BootInfo) -> bool {
    window::init(boot.grant_window_gpa);
    let setup = evtchn::init_shared_info()
        .ok()
        .and_then(|()| evtchn::own_domid().ok())
        .zip(GrantTable::init().ok());
    let Some((domid, mut table)) = setup else {
        let _ = writeln!(crate::console::Writer, "STUBVIRT-GRANTBENCH setup=failed");
        return false;
    };
    let (Some(frames), Some(local)) = (
        mem::alloc_static(POOL_PAGES as u64),
        mem::alloc_static(POOL_PAGES as u64),
    ) else {
        let _ = writeln!(
            crate::console::Writer,
            "STUBVIRT-GRANTBENCH setup=no-memory"
        );
        return false;
    };
    for (i, byte) in frames.iter_mut().enumerate() {
        *byte = (i * 7 + i / 4096) as u8;
    }
    let frame_of = |i: usize| (frames.as_ptr() as u64 + (i * PAGE_SIZE) as u64) / PAGE_SIZE as u64;
    let grefs: Option<Vec<u32>> = (0..POOL_PAGES)
        .map(|i| table.grant_access(domid, frame_of(i), false))
        .collect();
    // A span of several pages needs consecutive references, as a frontend's would be.
    let Some(first_gref) = grefs
        .filter(|g| g.windows(2).all(|w| matches!(w, [a, b] if *b == a + 1)))
        .and_then(|g| g.first().copied())
    else {
        let _ = writeln!(
            crate::console::Writer,
            "STUBVIRT-GRANTBENCH setup=no-grants"
        );
        return false;
    };
    let mut pool = Pool {
        domid,
        first_gref,
        frames,
        memory: GrantMemory::new(domid),
    };
    let mut all_ok = true;
    for way in [Way::From, Way::To] {
        for (bytes, count) in CASES {
            let case = Case { way, bytes, count };
            let (map_ns, map_ok) = time(&mut pool, local, case, map_route);
            let (copy_ns, copy_ok) = time(&mut pool, local, case, copy_route);
            all_ok &= map_ok && copy_ok;
            let _ = writeln!(
                crate::console::Writer,
                "STUBVIRT-GRANTBENCH way={} bytes={bytes} frames={count} map_ns={map_ns} copy_ns={copy_ns} ok={}",
                if way == Way::From { "from" } else { "to" },
                u8::from(map_ok && copy_ok)
            );
        }
    }
    let _ = writeln!(
        crate::console::Writer,
        "STUBVIRT-GRANTBENCH done ok={} iterations={ITERATIONS}",
        u8::from(all_ok)
    );
    all_ok
}

fn pages_per_frame(bytes: usize) -> usize {
    bytes.div_ceil(PAGE_SIZE)
}

/// Fills `local` with a pattern unlike the pool's, and the pool with its own again, so
/// each timed route must really move the bytes for the check to pass.
fn reset(pool: &mut Pool, local: &mut [u8]) {
    local.fill(0x5a);
    for (i, byte) in pool.frames.iter_mut().enumerate() {
        *byte = (i * 7 + i / 4096) as u8;
    }
}

/// Whether every frame arrived: `reset` made both sides differ, so equal bytes now mean
/// the route moved them (into `local`, or into the pool).
fn moved(pool: &Pool, local: &[u8], bytes: usize, count: usize) -> bool {
    (0..count).all(|f| {
        let granted = f * pages_per_frame(bytes) * PAGE_SIZE;
        let ours = f * bytes;
        let (Some(g), Some(o)) = (
            pool.frames.get(granted..granted + bytes),
            local.get(ours..ours + bytes),
        ) else {
            return false;
        };
        g == o
    })
}

/// One measurement: which way, frames of how many bytes, how many in one batch.
#[derive(Clone, Copy)]
struct Case {
    way: Way,
    bytes: usize,
    count: usize,
}

/// Mean ns per batch of `route` over [`ITERATIONS`], and whether the bytes arrived.
fn time(
    pool: &mut Pool,
    local: &mut [u8],
    case: Case,
    route: fn(&mut Pool, &mut [u8], Case) -> bool,
) -> (u64, bool) {
    reset(pool, local);
    let start = counter_ns();
    let mut ok = true;
    for _ in 0..ITERATIONS {
        ok &= route(pool, local, case);
    }
    let elapsed = counter_ns().saturating_sub(start);
    (
        elapsed / u64::from(ITERATIONS),
        ok && moved(pool, local, case.bytes, case.count),
    )
}

/// One map batch for every page, copies through the mappings, one unmap batch.
fn map_route(pool: &mut Pool, local: &mut [u8], case: Case) -> bool {
    let ppf = pages_per_frame(case.bytes);
    let access = if case.way == Way::From {
        Access::ReadOnly
    } else {
        Access::ReadWrite
    };
    let requests: heapless::Vec<MapRequest, POOL_PAGES> = (0..case.count * ppf)
        .map(|i| MapRequest {
            gref: GrantRef(pool.first_gref + i as u32),
            access,
            usage: PageUse::Buffer,
        })
        .collect();
    let mut results = [Err(MapError::Other(0)); POOL_PAGES];
    let Some(results) = results.get_mut(..requests.len()) else {
        return false;
    };
    let memory = &mut pool.memory;
    memory.map_batch(&requests, results);
    let pages: heapless::Vec<MappedPage, POOL_PAGES> =
        results.iter().filter_map(|r| r.ok()).collect();
    let mut ok = pages.len() == requests.len();
    for f in 0..case.count {
        let mut left = case.bytes;
        let mut at = f * case.bytes;
        for page in pages.iter().skip(f * ppf).take(ppf) {
            let chunk = left.min(PAGE_SIZE);
            let Some(ours) = local.get_mut(at..at + chunk) else {
                return false;
            };
            ok &= match case.way {
                Way::From => memory.read(*page, 0, ours).is_ok(),
                Way::To => memory.write(*page, 0, ours).is_ok(),
            };
            at += chunk;
            left -= chunk;
        }
    }
    ok & (memory.unmap_batch(&pages) == 0)
}

/// One `GNTTABOP_copy` naming every piece.
fn copy_route(pool: &mut Pool, local: &mut [u8], case: Case) -> bool {
    let ppf = pages_per_frame(case.bytes);
    let mut pieces: heapless::Vec<GrantPiece, POOL_PAGES> = heapless::Vec::new();
    for f in 0..case.count {
        let mut left = case.bytes;
        for p in 0..ppf {
            let len = left.min(PAGE_SIZE);
            let piece = GrantPiece {
                gref: pool.first_gref + (f * ppf + p) as u32,
                offset: 0,
                len: len as u16,
                local: f * case.bytes + p * PAGE_SIZE,
            };
            if pieces.push(piece).is_err() {
                return false;
            }
            left -= len;
        }
    }
    let Some(ours) = local.get_mut(..case.count * case.bytes) else {
        return false;
    };
    match case.way {
        Way::From => grant::copy_from_grants(pool.domid, &pieces, ours).is_ok(),
        Way::To => grant::copy_to_grants(pool.domid, &pieces, ours).is_ok(),
    }
}
