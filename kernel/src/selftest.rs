//! The self-test under Xen: everything stubvirt can exercise without a frontend. Prints
//! one machine-readable line, `STUBVIRT-SELFTEST <arch> result=pass|fail checks=N
//! failed=M ...`, that the xtask parses.

use crate::arch::{Arch, BootInfo, Current, PAGE_SIZE};
use crate::mem;
use crate::xen::abi::grant_table::status;
use crate::xen::abi::DomainId;
use crate::xen::grant::{self, GrantPiece, GrantTable, MapOne};
use crate::xen::grant_copier::XenCopier;
use crate::xen::guest_memory::GrantMemory;
use crate::xen::{evtchn, window};
use core::fmt::Write;
use devices::copy_route::CopyRoute;
use devices::grant::GrantRef;
use devices::memory::{Access, AccessError, GuestMemory, MapError, MapRequest, PageUse};

/// Counts checks and reports each failure as it happens.
struct Checks {
    total: u32,
    failed: u32,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool) -> bool {
        self.total += 1;
        if ok {
            log::info!("selftest: ok   {name}");
        } else {
            self.failed += 1;
            log::error!("selftest: FAIL {name}");
        }
        ok
    }
}

/// Runs every check; prints the result line; returns whether all passed.
pub fn run(boot: &BootInfo) -> bool {
    let mut c = Checks {
        total: 0,
        failed: 0,
    };
    window::init(boot.grant_window_gpa);
    let domid = run_all(&mut c);
    let passed = c.failed == 0 && c.total > 0;
    let _ = writeln!(
        crate::console::Writer,
        "STUBVIRT-SELFTEST {} result={} checks={} failed={} domid={}",
        Current::NAME,
        if passed { "pass" } else { "fail" },
        c.total,
        c.failed,
        domid.map_or(-1, i32::from),
    );
    passed
}

fn run_all(c: &mut Checks) -> Option<DomainId> {
    c.check(
        "shared-info page mapped in the grant window",
        evtchn::init_shared_info().is_ok(),
    );
    let domid = evtchn::own_domid();
    c.check("own domid via EVTCHNOP_status", domid.is_ok());
    let domid = domid.ok()?;
    log::info!("selftest: we are domain {domid}");
    event_channels(c, domid);
    let size = grant::query_size();
    c.check(
        "GNTTABOP_query_size",
        size.is_ok_and(|(_, max)| max as usize >= window::GRANT_FRAMES),
    );
    let table = GrantTable::init();
    c.check("grant table v1 frames placed and mapped", table.is_ok());
    if let Ok(mut table) = table {
        grant_copies(c, &mut table, domid);
        copy_route(c, &mut table, domid);
        self_grants(c, &mut table, domid);
        guest_memory(c, &mut table, domid);
    }
    c.check(
        "EVTCHNOP_send on a port never allocated returns an error, not a crash",
        evtchn::send(evtchn::MAX_PORTS - 1).is_err(),
    );
    c.check(
        "dm_op on our own domain is refused with an error (Xen needs a remote domain)",
        crate::xen::dm_op::nr_vcpus(domid).is_err(),
    );
    Some(domid)
}

/// An event channel between two of our own ports: send, observe pending, poll, unmask.
fn event_channels(c: &mut Checks, domid: DomainId) {
    let Ok(a) = evtchn::alloc_unbound(domid) else {
        c.check("EVTCHNOP_alloc_unbound", false);
        return;
    };
    let Ok(b) = evtchn::bind_interdomain(domid, a) else {
        c.check("EVTCHNOP_bind_interdomain to ourselves", false);
        return;
    };
    c.check("alloc_unbound + bind_interdomain to ourselves", a != b);
    // Masked: Xen marks the port pending without an upcall (we take no interrupts).
    evtchn::mask(a);
    evtchn::clear_pending(a);
    c.check("EVTCHNOP_send", evtchn::send(b).is_ok());
    c.check(
        "send shows as pending in shared_info",
        evtchn::is_pending(a),
    );
    c.check(
        "SCHEDOP_poll returns for the pending port",
        evtchn::wait(a, 1_000_000_000) == Ok(true),
    );
    c.check(
        "masked port not reported by the pending scan",
        evtchn::next_pending() != Some(a),
    );
    c.check(
        "EVTCHNOP_send (other direction, to the unmasked end)",
        evtchn::unmask(b).is_ok() && evtchn::send(a).is_ok(),
    );
    c.check(
        "pending scan finds the unmasked port",
        evtchn::next_pending() == Some(b),
    );
    evtchn::clear_pending(b);
    evtchn::clear_pending(a);
    c.check(
        "EVTCHNOP_unmask",
        evtchn::unmask(a).is_ok() && !evtchn::is_masked(a),
    );
    c.check("pending bit cleared", !evtchn::is_pending(a));
    c.check(
        "close both ports",
        evtchn::close(b).is_ok() && evtchn::close(a).is_ok(),
    );
}

const PATTERN: u8 = 0x5a;

/// Two of our pages granted to ourselves, mapped with one batched hypercall together with
/// a bad reference, read back, written through, unmapped.
fn self_grants(c: &mut Checks, table: &mut GrantTable, domid: DomainId) {
    let (Some(rw_frame), Some(ro_frame)) = (mem::alloc_frames(1), mem::alloc_frames(1)) else {
        c.check("frames for the self-grant", false);
        return;
    };
    fill(rw_frame, PATTERN);
    fill(ro_frame, !PATTERN);
    let page = PAGE_SIZE as u64;
    let (Some(rw), Some(ro)) = (
        table.grant_access(domid, rw_frame / page, false),
        table.grant_access(domid, ro_frame / page, true),
    ) else {
        c.check("grant entries written", false);
        return;
    };
    let bad = u32::MAX >> 4;
    let requests = [
        MapOne {
            dom: domid,
            gref: rw,
            readonly: false,
        },
        MapOne {
            dom: domid,
            gref: ro,
            readonly: true,
        },
        MapOne {
            dom: domid,
            gref: bad,
            readonly: true,
        },
    ];
    let mut results = [Err(status::GENERAL_ERROR); 3];
    let mut scratch = grant::BatchScratch::new();
    grant::map_batch(&mut scratch, &requests, &mut results);
    let [rw_map, ro_map, bad_map] = results;
    c.check("batched map: writable self-grant", rw_map.is_ok());
    c.check("batched map: read-only self-grant", ro_map.is_ok());
    c.check(
        "batched map: bad gref gives GNTST_bad_gntref",
        bad_map == Err(status::BAD_GNTREF),
    );
    let (Ok(rw_map), Ok(ro_map)) = (rw_map, ro_map) else {
        return;
    };
    c.check(
        "read back through the window (rw)",
        mem::read_byte(Current::window_va(rw_map.slot) + 100) == PATTERN,
    );
    c.check(
        "read back through the window (ro)",
        mem::read_byte(Current::window_va(ro_map.slot) + 4095) == !PATTERN,
    );
    mem::write_byte(Current::window_va(rw_map.slot) + 7, 0xa5);
    c.check(
        "write through the writable mapping",
        mem::read_byte(Current::window_va(rw_map.slot) + 7) == 0xa5,
    );
    // Xen on x86 treats mapping our own page at a second gfn as an alias and removes the
    // original gfn from our physmap (it reads as all-ones, and stays so after the unmap),
    // so the self-granted frames are never touched through the identity map again: they
    // are leaked on purpose. Foreign grants (another owner) are not affected.
    c.check(
        "batched unmap",
        grant::unmap_batch(&mut scratch, &[rw_map, ro_map]) == 0,
    );
    c.check(
        "grants revocable after unmap",
        table.end_access(rw) && table.end_access(ro),
    );
}

/// `GNTTABOP_copy` both ways over self-grants, without mapping: bytes arrive, a piece
/// crossing a local page boundary is split, a read-only grant refuses to be written, a
/// bad reference is reported. (Run before `self_grants`: on x86 a self-mapping takes
/// the frame out of our physmap.)
fn grant_copies(c: &mut Checks, table: &mut GrantTable, domid: DomainId) {
    let (Some(granted), Some(local)) = (mem::alloc_static(2), mem::alloc_static(2)) else {
        c.check("frames for the grant copies", false);
        return;
    };
    for (i, byte) in granted.iter_mut().enumerate() {
        *byte = (i % 251) as u8;
    }
    let page = PAGE_SIZE as u64;
    let base = granted.as_ptr() as u64 / page;
    let (Some(rw), Some(ro)) = (
        table.grant_access(domid, base, false),
        table.grant_access(domid, base + 1, true),
    ) else {
        c.check("grant entries for the copies", false);
        return;
    };
    let piece = |gref, offset, len, local| GrantPiece {
        gref,
        offset,
        len,
        local,
    };
    // 300 bytes from each grant, landing across the boundary of our two local pages.
    let dest = local
        .get_mut(PAGE_SIZE - 150..PAGE_SIZE + 450)
        .unwrap_or_default();
    let copied = grant::copy_from_grants(
        domid,
        &[piece(rw, 10, 300, 0), piece(ro, 20, 300, 300)],
        dest,
    );
    let expect = |at: usize| granted.get(at..at + 300).map(<[u8]>::to_vec);
    c.check(
        "GNTTABOP_copy from grants (rw and ro, split at a local page boundary)",
        copied.is_ok()
            && dest.get(..300).map(<[u8]>::to_vec) == expect(10)
            && dest.get(300..).map(<[u8]>::to_vec) == expect(PAGE_SIZE + 20),
    );
    let src = [0xc3u8; 64];
    c.check(
        "GNTTABOP_copy to a writable grant",
        grant::copy_to_grants(domid, &[piece(rw, 4000, 64, 0)], &src).is_ok()
            && granted.get(4000..4064) == Some(&src[..]),
    );
    c.check(
        "GNTTABOP_copy to a read-only grant refused, nothing written",
        grant::copy_to_grants(domid, &[piece(ro, 0, 64, 0)], &src).is_err()
            && granted.get(PAGE_SIZE..PAGE_SIZE + 64) != Some(&src[..]),
    );
    c.check(
        "GNTTABOP_copy with a bad reference gives GNTST_bad_gntref",
        grant::copy_from_grants(domid, &[piece(u32::MAX >> 4, 0, 8, 0)], dest)
            == Err(grant::CopyFailure::Refused(status::BAD_GNTREF)),
    );
    c.check(
        "copy grants revocable (never mapped)",
        table.end_access(rw) && table.end_access(ro),
    );
}

/// The devices' copy route over the kernel's grant copier: buffer pages cost no mapping
/// and are read and written by `GNTTABOP_copy`; ring pages are still mapped.
fn copy_route(c: &mut Checks, table: &mut GrantTable, domid: DomainId) {
    let Some(frame) = mem::alloc_static(1) else {
        return;
    };
    frame.fill(0x11);
    let (Some(rw), Some(ro)) = (
        table.grant_access(domid, frame.as_ptr() as u64 / PAGE_SIZE as u64, false),
        table.grant_access(domid, frame.as_ptr() as u64 / PAGE_SIZE as u64, true),
    ) else {
        return;
    };
    let mut memory = CopyRoute::new(GrantMemory::new(domid), XenCopier { frontend: domid });
    let request = |gref, access| MapRequest {
        gref: GrantRef(gref),
        access,
        usage: PageUse::Buffer,
    };
    let requests = [
        request(rw, Access::ReadWrite),
        request(ro, Access::ReadOnly),
        request(ro, Access::ReadWrite),
    ];
    let mut results = [Err(MapError::Other(0)); 3];
    memory.map_batch(&requests, &mut results);
    let [Ok(rw_page), Ok(ro_page), Ok(ro_asked_rw)] = results else {
        c.check("copy route: buffer pages handed out without mapping", false);
        return;
    };
    c.check(
        "copy route: buffer pages handed out without mapping",
        memory.copied_pages_live() == 3,
    );
    let mut back = [0u8; 4];
    c.check(
        "copy route: write then read by GNTTABOP_copy",
        memory.write(rw_page, 2000, b"copy").is_ok()
            && memory.read(ro_page, 2000, &mut back).is_ok()
            && &back == b"copy"
            && frame.get(2000..2004) == Some(&b"copy"[..]),
    );
    c.check(
        "copy route: read-only grant asked writable refused at the write",
        memory.write(ro_asked_rw, 0, b"x") == Err(AccessError::Refused),
    );
    c.check(
        "copy route: unmap frees the pages, no hypercall left to make",
        memory.unmap_batch(&[rw_page, ro_page, ro_asked_rw]) == 0
            && memory.copied_pages_live() == 0
            && memory.stats().copies == 3
            && memory.stats().refused == 1,
    );
    c.check(
        "copy grants revocable",
        table.end_access(rw) && table.end_access(ro),
    );
}

/// The devices crate's GuestMemory over a self-grant.
fn guest_memory(c: &mut Checks, table: &mut GrantTable, domid: DomainId) {
    let Some(frame) = mem::alloc_frames(1) else {
        return;
    };
    fill(frame, 0);
    mem::write_byte(frame as usize + 10, 0x34);
    mem::write_byte(frame as usize + 11, 0x12);
    let Some(gref) = table.grant_access(domid, frame / PAGE_SIZE as u64, false) else {
        return;
    };
    let mut memory = GrantMemory::new(domid);
    let requests = [
        MapRequest {
            gref: GrantRef(gref),
            access: Access::ReadWrite,
            usage: PageUse::Ring,
        },
        MapRequest {
            gref: GrantRef(gref),
            access: Access::ReadOnly,
            usage: PageUse::Ring,
        },
        MapRequest {
            gref: GrantRef(u32::MAX >> 4),
            access: Access::ReadOnly,
            usage: PageUse::Ring,
        },
    ];
    let mut results = [Err(MapError::Other(0)); 3];
    memory.map_batch(&requests, &mut results);
    let [rw, ro, bad] = results;
    c.check(
        "GuestMemory::map_batch: bad gref is MapError::BadGrantRef",
        bad == Err(MapError::BadGrantRef),
    );
    let (Ok(rw), Ok(ro)) = (rw, ro) else {
        c.check("GuestMemory::map_batch maps rw and ro", false);
        return;
    };
    c.check(
        "GuestMemory::read_u16",
        memory.read_u16(ro, 10) == Ok(0x1234),
    );
    c.check(
        "GuestMemory::write then read via the other mapping",
        memory.write(rw, 4090, b"stub!!").is_ok() && {
            let mut back = [0; 6];
            memory.read(ro, 4090, &mut back).is_ok() && &back == b"stub!!"
        },
    );
    c.check(
        "GuestMemory: write to a read-only page refused",
        memory.write(ro, 0, b"x") == Err(AccessError::ReadOnly),
    );
    c.check(
        "GuestMemory: access past the page refused",
        memory.read(rw, 4095, &mut [0; 2]) == Err(AccessError::OutOfPage),
    );
    c.check(
        "GuestMemory::unmap_batch",
        memory.unmap_batch(&[rw, ro]) == 0,
    );
    c.check(
        "GuestMemory: unmapped token refused",
        memory.read(rw, 0, &mut [0; 1]) == Err(AccessError::NotMapped),
    );
    c.check("self-grant revoked", table.end_access(gref));
}

fn fill(frame: u64, value: u8) {
    for offset in 0..PAGE_SIZE {
        mem::write_byte(frame as usize + offset, value);
    }
}
