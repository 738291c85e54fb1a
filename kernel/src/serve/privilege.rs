//! The privilege self-test (`privilege_test=1`): once its frontends are registered and
//! before it serves, stubvirt tries what a grant backend never needs and prints one line
//! per attempt, `STUBVIRT-PRIVILEGE op=... target=N result=allowed|refused|skipped ...`,
//! so a run shows what Xen lets the backend do on its route. What succeeds is undone at
//! once (the foreign mapping removed, the frontend unpaused). docs/privilege.md has the
//! table per route.

use crate::mem;
use crate::xen::abi::DomainId;
use crate::xen::grant::{self, GrantTable, MapOne};
use crate::xen::hypercall::XenError;
use crate::xen::{dm_op, domain_control, memory, sysctl};
use core::fmt::Write;

/// A guest frame every Arm guest has: the first page of its RAM (`GUEST_RAM0_BASE`).
const GUEST_RAM_GFN: u64 = 0x4_0000;

fn line(op: &str, target: &str, result: Result<(), XenError>) {
    let _ = match result {
        Ok(()) => writeln!(
            crate::console::Writer,
            "STUBVIRT-PRIVILEGE op={op} target={target} result=allowed"
        ),
        Err(e) => writeln!(
            crate::console::Writer,
            "STUBVIRT-PRIVILEGE op={op} target={target} result=refused err=-{}",
            e.0
        ),
    };
}

/// Every attempt against `frontend`, Xen and `bystander` (a domain stubvirt does not
/// serve, `privilege_bystander=N`); `own` is stubvirt's domid.
pub fn run(own: DomainId, frontend: DomainId, bystander: Option<DomainId>) {
    let target = alloc::format!("{frontend}");
    // Reaching a frontend's memory without its grant.
    line(
        "foreign_map",
        &target,
        memory::try_foreign_mapping(frontend, GUEST_RAM_GFN),
    );
    // Stopping a frontend: only its toolstack should.
    let paused = domain_control::pause(frontend);
    if paused.is_ok() {
        if let Err(e) = domain_control::unpause(frontend) {
            log::error!("privilege test: frontend {frontend} stays paused: {e}");
        }
    }
    line("pause", &target, paused);
    // Xen's console ring: other domains' output.
    let mut ring = [0u8; 64];
    line(
        "read_console",
        "xen",
        sysctl::read_console(&mut ring).map(|_| ()),
    );
    line(
        "memory_size",
        &target,
        memory::current_reservation(frontend).map(|_| ()),
    );
    foreign_grant(own, frontend);
    let Some(other) = bystander else {
        let _ = writeln!(
            crate::console::Writer,
            "STUBVIRT-PRIVILEGE op=bystander target=none result=skipped"
        );
        return;
    };
    let target = alloc::format!("{other}");
    // Being the device model of a domain it does not serve.
    line("dm_op_other", &target, dm_op::nr_vcpus(other).map(|_| ()));
    // Watching a domain it does not serve.
    line(
        "state_other",
        &target,
        domain_control::state(other).map(|_| ()),
    );
    line(
        "foreign_map_other",
        &target,
        memory::try_foreign_mapping(other, GUEST_RAM_GFN),
    );
}

/// Maps a grant offered to another domain: stubvirt offers one of its pages to
/// `frontend`, then asks Xen to map that grant for itself.
fn foreign_grant(own: DomainId, frontend: DomainId) {
    let target = alloc::format!("{own} offered_to={frontend}");
    let Ok(mut table) = GrantTable::init() else {
        let _ = writeln!(
            crate::console::Writer,
            "STUBVIRT-PRIVILEGE op=foreign_grant target={target} result=skipped reason=no-grant-table"
        );
        return;
    };
    let page = crate::arch::PAGE_SIZE as u64;
    let Some(gref) =
        mem::alloc_frames(1).and_then(|f| table.grant_access(frontend, f / page, true))
    else {
        return;
    };
    let request = [MapOne {
        dom: own,
        gref,
        readonly: true,
    }];
    let mut result = [Err(0)];
    let mut scratch = grant::BatchScratch::new();
    grant::map_batch(&mut scratch, &request, &mut result);
    let outcome = match result[0] {
        Ok(mapping) => {
            grant::unmap_batch(&mut scratch, &[mapping]);
            Ok(())
        }
        Err(status) => Err(XenError(-i64::from(status))),
    };
    table.end_access(gref);
    line("foreign_grant", &target, outcome);
}
