//! Serve mode end to end without Linux: stubvirt as dom0 in serve mode (`serve=1`) and a
//! second stubvirt as dom0less domU1 in frontend test mode (`frontend_test=1`, 2 vcpus).
//! The domU's register accesses of 0x02000000 / 0x02000200 trap to Xen and reach the dom0
//! backend as ioreqs. Passes when dom0 printed `STUBVIRT-READY`, the domU printed
//! `STUBVIRT-FRONTEND result=pass` and dom0 then printed a `STUBVIRT-COUNTERS` line with
//! ioreqs answered. The frontend then powers off: stubvirt must report it gone with
//! everything released, destroy it and see Xen free it. The domU also writes two pages to the RAM disk and reads them back
//! through a hand-built virtqueue whose rings and buffers it grants to dom0, and starts its
//! second vcpu for one register read, so both vcpus' ioreq slots are exercised.

use super::sysdt::{self, Images};
use crate::console::{watch, End, Transcript};
use crate::process::{step, workspace_root};
use crate::xen::privilege_checks::{
    privileges, privileges_are, unexpected_denials, PRIVILEGES_UNDER_POLICY,
    PRIVILEGES_WITHOUT_POLICY,
};
use std::path::Path;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(120);
pub const DOM0_ARGS: &str =
    "loglevel=info serve=1 ramdisk_mb=16 frontend_exit=destroy privilege_test=1 privilege_bystander=2";
pub const DOMU_ARGS: &str = "loglevel=info frontend_test=1";
const DOMU_VCPUS: u32 = 2;
/// The backend's command line with no dom0: it is domU1, its frontend domU2.
const CONTROL_DOMU_ARGS: &str =
    "loglevel=info frontend=2 ramdisk_mb=16 frontend_exit=destroy privilege_test=1 privilege_bystander=3";
/// Lines after which nothing useful follows.
const FAILURE_MARKS: [&str; 6] = [
    "Panic on CPU",
    "Hardware Dom0 crashed",
    " x28 ",
    "STUBVIRT-SERVE-FAILED",
    "STUBVIRT-FRONTEND result=fail",
    "PANIC: ",
];

/// The number after `key=` in `line`.
fn field(line: &str, key: &str) -> Option<u64> {
    let rest = line.split(&format!(" {key}=")).nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Whether the counter line's `per_vcpu=a/b/...` has `vcpus` entries, none of them 0:
/// every ioreq slot of the frontend was answered at least once.
fn every_vcpu_served(line: &str, vcpus: u32) -> bool {
    let Some(list) = line
        .split(" per_vcpu=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
    else {
        return false;
    };
    let counts: Vec<u64> = list.split('/').filter_map(|n| n.parse().ok()).collect();
    counts.len() == vcpus as usize && counts.iter().all(|&n| n > 0)
}

/// Stops at a failure, or once the frontend passed, stubvirt destroyed it after it powered
/// off, and a later counter line shows ioreqs.
fn until_done() -> impl FnMut(&str) -> bool {
    let mut frontend_done = false;
    let mut destroyed = false;
    move |line| {
        if FAILURE_MARKS.iter().any(|m| line.contains(m)) {
            return true;
        }
        if line.contains("STUBVIRT-FRONTEND result=pass") {
            frontend_done = true;
        }
        if line.contains("STUBVIRT-FRONTEND-DESTROYED ") {
            destroyed = true;
        }
        frontend_done
            && destroyed
            && line.contains("STUBVIRT-COUNTERS ")
            && field(line, "ioreqs").is_some_and(|n| n > 0)
    }
}

/// With the copy route, the request buffers went by grant copy (each request copies its
/// header, data pages and status) and none was refused; without it, no copy was made.
fn copied_as_asked(line: &str, copy: bool) -> bool {
    match (copy, field(line, "copies"), field(line, "copy_refused")) {
        (true, Some(copies), Some(0)) => copies >= 6,
        (false, None, None) => true,
        _ => false,
    }
}

/// Who serves: stubvirt as dom0 (Xen 4.17+), or as control domU1 with no dom0 (Xen 4.21+).
#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Dom0,
    ControlDomU,
}

impl Backend {
    fn frontend_domid(self) -> u32 {
        match self {
            Backend::Dom0 => 1,
            Backend::ControlDomU => 2,
        }
    }
}

/// One serve boot: who serves with what command line, the FLASK policy Xen enforces
/// (`None`: Xen's default XSM), and what Xen must then have allowed.
struct Run<'a> {
    name: &'a str,
    backend: Backend,
    backend_args: String,
    /// Request buffers by grant copy (else mapped).
    copy: bool,
    policy: Option<&'a Path>,
    privileges: &'a [(&'a str, &'a str)],
    /// `result=` of stubvirt's destroy of the frontend once it powered off.
    destroyed: &'a str,
}

impl<'a> Run<'a> {
    /// The run with no XSM policy: `backend_args`, buffers copied.
    fn unconfined(name: &'a str, backend: Backend, backend_args: &str) -> Self {
        Self {
            name,
            backend,
            backend_args: backend_args.to_string(),
            copy: true,
            policy: None,
            privileges: &PRIVILEGES_WITHOUT_POLICY,
            destroyed: "freed",
        }
    }

    /// The same run with request buffers mapped.
    fn mapped(mut self, name: &'a str) -> Self {
        self.name = name;
        self.backend_args.push_str(" grant_route=map");
        self.copy = false;
        self
    }
}

fn boot(images: &Images, xen: &Path, run: &Run) -> Result<Transcript, String> {
    let dir = workspace_root().join("target/arm64-boot").join(run.name);
    let (dtb, loads) = match run.backend {
        Backend::Dom0 => {
            sysdt::build_dom0_and_domu(&dir, images, &run.backend_args, DOMU_ARGS, DOMU_VCPUS)?
        }
        Backend::ControlDomU => sysdt::build_control_and_frontend(
            &dir,
            images,
            crate::demo::layout::xen_args(crate::demo::layout::Route::ControlDomU),
            &run.backend_args,
            (&format!("{DOMU_ARGS} backend=1"), DOMU_VCPUS),
            run.policy,
        )?,
    };
    let mut command = sysdt::qemu_command(xen, &dtb, &loads, sysdt::Tcg::OneThread);
    watch(run.name, &mut command, DEADLINE, until_done())
}

/// Runs the dom0 + domU serve test with request buffers copied (the default), then with
/// them mapped (`grant_route=map`); prints the three lines of each with their times.
pub fn serve_test(images: &Images, xen: &Path) -> Result<(), String> {
    step("arm64 serve mode: stubvirt dom0 (serve=1) answering a stubvirt domU frontend (2 vcpus) over IOREQ, request buffers by GNTTABOP_copy (the default)");
    let run = Run::unconfined("arm64-xen-serve", Backend::Dom0, DOM0_ARGS);
    serve_once(images, xen, &run)?;
    step("the same with request buffers mapped (grant_route=map)");
    serve_once(images, xen, &run.mapped("arm64-xen-serve-map"))
}

/// The serve test with no dom0 (Xen 4.21+ as `xen`): stubvirt as control domU1 serving
/// the stubvirt frontend domU2, whose grants name backend 1; both buffer routes.
pub fn serve_test_without_dom0(images: &Images, xen: &Path) -> Result<(), String> {
    step("arm64 serve mode with no dom0: stubvirt control domU1 answering a stubvirt domU2 frontend (2 vcpus), buffers copied, then mapped");
    let run = Run::unconfined(
        "arm64-xen-serve-nodom0",
        Backend::ControlDomU,
        CONTROL_DOMU_ARGS,
    );
    serve_once(images, xen, &run)?;
    serve_once(images, xen, &run.mapped("arm64-xen-serve-nodom0-map"))
}

/// The no-dom0 serve test with Xen enforcing stubvirt's FLASK policy (`policy`) and
/// stubvirt confining itself (`confine=flask`): serving works on both buffer routes, every
/// privileged attempt is refused, and so is destroying the frontend.
pub fn serve_test_confined(images: &Images, xen: &Path, policy: &Path) -> Result<(), String> {
    step("arm64 serve mode with no dom0 under FLASK (flask=enforcing, stubvirt's policy, confine=flask): buffers copied, then mapped");
    let run = Run {
        name: "arm64-xen-serve-flask",
        backend: Backend::ControlDomU,
        backend_args: format!("{CONTROL_DOMU_ARGS} confine=flask"),
        copy: true,
        policy: Some(policy),
        privileges: &PRIVILEGES_UNDER_POLICY,
        destroyed: "refused(errno13)",
    };
    serve_once(images, xen, &run)?;
    serve_once(images, xen, &run.mapped("arm64-xen-serve-flask-map"))
}

fn serve_once(images: &Images, xen: &Path, run: &Run) -> Result<(), String> {
    let transcript = boot(images, xen, run)?;
    let backend = run.backend;
    let copy = run.copy;
    let expected_ready = format!("frontend={} vcpus=2", backend.frontend_domid());
    let found = |needle: &str| transcript.find(needle).cloned();
    let ready = found("STUBVIRT-READY ");
    let frontend = found("STUBVIRT-FRONTEND ");
    let gone = found("STUBVIRT-FRONTEND-GONE ");
    let destroyed = found("STUBVIRT-FRONTEND-DESTROYED ");
    let confined = found("STUBVIRT-CONFINED ");
    let frontend_domid = format!("frontend={} ", backend.frontend_domid());
    let destroy_result = format!(" result={} ", run.destroyed);
    let counters = match transcript.end {
        End::Stopped(i) => transcript.lines.get(i).cloned(),
        _ => None,
    };
    // Two blk requests (a 2-page write, then its read-back), every grant unmapped again,
    // every ioreq and interrupt injection accepted.
    let ok = matches!(&ready, Some((_, l)) if l.contains(&expected_ready))
        && matches!(&frontend, Some((_, l)) if l.contains("result=pass") && l.contains("blk_io=pass"))
        && matches!(&counters, Some((_, l)) if l.contains("STUBVIRT-COUNTERS ")
            && l.contains(" ioreq_errors=0 send_errors=0 irq_errors=0 ")
            && l.contains(" blk=req:2,in:8192,out:8192,")
            && l.contains(",held:0,")
            && every_vcpu_served(l, DOMU_VCPUS)
            && copied_as_asked(l, copy))
        && matches!(&gone, Some((_, l)) if l.contains(&frontend_domid)
            && l.contains(" state=shutdown ")
            && l.contains(" pages_held=0 ioreq_server=released channels=2/2"))
        && matches!(&destroyed, Some((_, l)) if l.contains(&frontend_domid)
            && l.contains(&destroy_result))
        && confined.is_some() == run.policy.is_some()
        && unexpected_denials(&transcript).is_empty()
        && privileges_are(&transcript, run.privileges);
    if !ok {
        return Err(format!(
            "serve test did not pass ({}); log {}; last lines:\n{}",
            match transcript.end {
                End::TimedOut => format!("nothing conclusive within {DEADLINE:?}"),
                End::Exited(status) => format!("QEMU exited: {status}"),
                End::Stopped(_) => "stopped at the last line below".to_string(),
            },
            transcript.log.display(),
            transcript.tail(40)
        ));
    }
    for (op, result) in privileges(&transcript) {
        println!("              STUBVIRT-PRIVILEGE op={op} result={result}");
    }
    for (time, line) in [confined, ready, frontend, gone, destroyed, counters]
        .into_iter()
        .flatten()
    {
        let text = line.split("STUBVIRT-").nth(1).unwrap_or(&line);
        println!("    {:6.2} s  STUBVIRT-{text}", time.as_secs_f64());
    }
    Ok(())
}

/// `cargo xtask serve-arm64 [IMAGE]`: the serve test alone.
pub fn command(args: &[String]) -> Result<(), String> {
    // IMAGE, one with the test modes, in every role; else the product serves the test
    // image's frontend and bystander.
    let images = match args.first() {
        Some(path) => Images::one(Path::new(path)),
        None => Images {
            backend: super::image::build()?,
            guests: super::image::build_test()?,
        },
    };
    let xen = super::xen::hypervisor()?;
    serve_test(&images, &xen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_after_frontend_and_counters() {
        let mut stop = until_done();
        assert!(!stop(
            "STUBVIRT-READY frontend=1 vcpus=2 devices=blk@0x2000000"
        ));
        assert!(!stop("STUBVIRT-COUNTERS ioreqs=3 ioreq_errors=0"));
        assert!(!stop(
            "(XEN) DOM1: STUBVIRT-FRONTEND result=pass checks=3 failed=0"
        ));
        assert!(!stop("STUBVIRT-COUNTERS ioreqs=0 ioreq_errors=0"));
        assert!(!stop("STUBVIRT-COUNTERS ioreqs=40 ioreq_errors=0"));
        assert!(!stop(
            "STUBVIRT-FRONTEND-DESTROYED frontend=1 result=freed ms=3"
        ));
        assert!(stop("STUBVIRT-COUNTERS ioreqs=40 ioreq_errors=0"));
        let mut stop = until_done();
        assert!(stop(
            "(XEN) DOM1: STUBVIRT-FRONTEND result=fail checks=3 failed=1"
        ));
    }

    #[test]
    fn every_slot_must_be_served() {
        assert!(every_vcpu_served(
            "X ioreqs=34 per_vcpu=33/1 ioreq_errors=0",
            2
        ));
        assert!(!every_vcpu_served(
            "X ioreqs=34 per_vcpu=34/0 ioreq_errors=0",
            2
        ));
        assert!(!every_vcpu_served(
            "X ioreqs=34 per_vcpu=34 ioreq_errors=0",
            2
        ));
        assert!(!every_vcpu_served("X ioreqs=34", 2));
    }

    #[test]
    fn reads_numeric_fields() {
        assert_eq!(field("X ioreqs=12 b=3", "ioreqs"), Some(12));
        assert_eq!(field("X ioreq_errors=1", "ioreqs"), None);
    }
}
