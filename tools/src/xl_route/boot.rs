//! Booting Xen with the Linux dom0 in QEMU (TCG) and reading what happened: the system
//! device tree (QEMU's own plus `/chosen` with dom0's kernel and initramfs and the FLASK
//! policy), the bounded run with its console in `target/logs/xl-dom0.log`, and the checks
//! of dom0's `XL-DOM0` lines and of what stubvirt and its frontends printed.

use crate::arm64;
use crate::arm64::sysdt::{Load, MODULE_BASE};
use crate::console::stall_probe::StallProbe;
use crate::console::{watch_and_type, End, Next, Transcript};
use crate::demo;
use crate::demo::layout::Module;
use crate::demo::parts::size_of;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Xen's command line: a dom0 large enough for Debian's kernel and the toolstack, one
/// vcpu (TCG runs every vcpu on the host's two cores); the scheduler option as for
/// `arm64::sysdt::XEN_ARGS`.
pub const XEN_ARGS: &str = "console=dtuart dom0_mem=512M dom0_max_vcpus=1 loglvl=all \
                            guest_loglvl=all noreboot sched_credit2_migrate_resist=0";
/// dom0's command line: the console is Xen's (hvc0), and a quiet kernel saves TCG time.
pub const DOM0_ARGS: &str = "console=hvc0 rdinit=/init loglevel=4";
/// Lines after which nothing more comes: init's last line, Xen's or dom0's panic.
const FINAL_MARKS: [&str; 3] = ["XL-DOM0 done", "Panic on CPU", "Kernel panic"];

/// Writes `dir/system.dtb` for Xen with `kernel` and `initramfs` as dom0 (command line
/// `dom0_args`) and `policy` as the FLASK policy it enforces; returns it and the loads
/// that put the modules where it says.
pub fn system_tree(
    dir: &Path,
    kernel: &Path,
    initramfs: &Path,
    policy: &Path,
    dom0_args: &str,
) -> Result<(PathBuf, Vec<Load>), String> {
    let files = [kernel, initramfs, policy];
    let sizes = files
        .iter()
        .map(|f| size_of(f))
        .collect::<Result<Vec<_>, _>>()?;
    let modules = demo::layout::layout(MODULE_BASE, &sizes)?;
    let [kernel_at, initramfs_at, policy_at] = modules[..] else {
        return Err("three boot modules expected".into());
    };
    let mut dts = arm64::sysdt::qemu_dts(dir)?;
    let chosen = chosen(kernel_at, initramfs_at, dom0_args);
    dts.push_str(&arm64::sysdt::with_xsm_policy(
        &chosen,
        policy_at.addr,
        policy_at.size,
    ));
    let dtb = arm64::sysdt::compile(dir, &dts)?;
    let loads = files
        .iter()
        .zip([kernel_at, initramfs_at, policy_at])
        .map(|(file, at)| Load {
            file: file.to_path_buf(),
            addr: at.addr,
        })
        .collect();
    Ok((dtb, loads))
}

/// `/chosen`: Xen's command line and dom0's kernel and ramdisk modules.
fn chosen(kernel: Module, initramfs: Module, dom0_args: &str) -> String {
    let mut out = String::from("/ {\n chosen {\n  #address-cells = <2>;\n  #size-cells = <2>;\n");
    let _ = writeln!(out, "  xen,xen-bootargs = \"{XEN_ARGS}\";");
    out.push_str(&demo::layout::module_node(
        "  ",
        "kernel",
        kernel,
        Some(dom0_args),
    ));
    out.push_str(&demo::layout::module_node("  ", "ramdisk", initramfs, None));
    out.push_str(" };\n};\n");
    out
}

/// Boots `xen` with the tree and loads, until init's last line, a panic, or `deadline`;
/// the console goes to `target/logs/<log>.log`.
pub fn run(
    xen: &Path,
    (dtb, loads): &(PathBuf, Vec<Load>),
    deadline: Duration,
    log: &str,
    tcg: arm64::sysdt::Tcg,
) -> Result<Transcript, String> {
    let mut command = arm64::sysdt::qemu_command(xen, dtb, loads, tcg);
    // A frontend's RCU stall (its console comes through dom0): Xen's view into the log.
    let mut probe = StallProbe::default();
    watch_and_type(log, &mut command, deadline, true, |line| {
        if FINAL_MARKS.iter().any(|mark| line.contains(mark)) {
            return Next::Stop;
        }
        probe.next(line)
    })
}

/// What the run showed.
pub struct Findings {
    /// One line per check: its name, and whether it passed.
    pub checks: Vec<(String, bool)>,
    /// What `xl info` said Xen is (`xen_version`).
    pub xen_version: Option<String>,
    /// stubvirt's domain id, and each round's frontend's.
    pub backend: Option<String>,
    pub frontends: Vec<String>,
    /// The backend keys dom0 printed while each frontend was created (paused), and
    /// after it was gone.
    pub keys: Vec<String>,
    pub keys_after: Vec<String>,
    /// Every line stubvirt and its frontends printed (`STUBVIRT-...`).
    pub stubvirt: Vec<String>,
    /// FLASK denials Xen logged.
    pub denials: Vec<String>,
    /// The Linux frontends' figures, for the summary.
    pub figures: Vec<String>,
    /// Seconds from QEMU's start to dom0's init, and to its last line.
    pub dom0_up: Option<f64>,
    pub done: Option<f64>,
}

/// The rounds init runs: a frontend, then the same created again.
pub const ROUNDS: [u32; 2] = [1, 2];

/// Reads `transcript`: dom0's `XL-DOM0` lines and the guests' `STUBVIRT-` lines.
pub fn findings(transcript: &Transcript) -> Findings {
    let with = |label: &str| -> Vec<String> {
        let prefix = format!("XL-DOM0 {label} ");
        transcript
            .lines
            .iter()
            .filter_map(|(_, line)| line.split_once(&prefix).map(|(_, rest)| rest.to_string()))
            .collect()
    };
    let at = |needle: &str| transcript.find(needle).map(|(t, _)| t.as_secs_f64());
    let ok = |label: &str| with(label).iter().any(|rest| rest == "rc=0");
    let stubvirt: Vec<String> = transcript
        .lines
        .iter()
        .filter_map(|(_, line)| line.find("STUBVIRT-").map(|at| line[at..].to_string()))
        .collect();
    let printed = |needle: &str| stubvirt.iter().any(|l| l.starts_with(needle));
    let xen_version = with("info")
        .iter()
        .find_map(|rest| rest.strip_prefix("xen_version"))
        .map(|v| v.trim_start_matches([' ', ':']).to_string());
    let backend = with("backend")
        .into_iter()
        .find_map(|r| r.strip_prefix("domid=").map(str::to_string));
    let mut checks: Vec<(String, bool)> = vec![
        (
            "dom0 Linux reached its init".into(),
            at("XL-DOM0 dom0 up").is_some(),
        ),
        (
            "xenstored answers".into(),
            at("XL-DOM0 xenstored answering").is_some(),
        ),
        (
            "xl info works (Xen 4.20)".into(),
            ok("info")
                && xen_version
                    .as_deref()
                    .is_some_and(|v| v.starts_with("4.20")),
        ),
        (
            "Xen enforces stubvirt's FLASK policy".into(),
            at("Flask:  Starting in enforcing mode").is_some(),
        ),
        (
            "xl creates stubvirt (stubvirt_t), which watches xenstore".into(),
            ok("create-backend") && backend.is_some() && printed("STUBVIRT-XL-WATCHING"),
        ),
    ];
    let mut frontends = Vec::new();
    for round in ROUNDS {
        let domid = with(&format!("round {round} frontend"))
            .into_iter()
            .find_map(|r| r.strip_prefix("domid=").map(str::to_string))
            .filter(|d| !d.is_empty());
        let served = |line: &str| {
            domid
                .as_ref()
                .is_some_and(|d| printed(&format!("{line} frontend={d} ")))
        };
        let released = served("STUBVIRT-XL-RELEASED") || served("STUBVIRT-FRONTEND-GONE");
        let released_clean = stubvirt.iter().any(|l| {
            domid.as_ref().is_some_and(|d| {
                (l.starts_with(&format!("STUBVIRT-XL-RELEASED frontend={d} "))
                    || l.starts_with(&format!("STUBVIRT-FRONTEND-GONE frontend={d} ")))
                    && l.contains(" pages_held=0 ")
            })
        });
        checks.push((
            format!("round {round}: xl create waits for stubvirt's InitWait and succeeds"),
            ok(&format!("create-{round}")),
        ));
        let disk_and_nic = stubvirt.iter().any(|l| {
            domid.as_ref().is_some_and(|d| {
                l.starts_with(&format!("STUBVIRT-READY frontend={d} "))
                    && l.contains("blk@0x2000000")
                    && l.contains("net@0x2000200")
            })
        });
        checks.push((
            format!("round {round}: stubvirt serves the frontend (disk and NIC)"),
            disk_and_nic && printed("STUBVIRT-FRONTEND result=pass"),
        ));
        checks.push((
            format!("round {round}: the frontend passes its disk checks and is gone"),
            stubvirt
                .iter()
                .filter(|l| l.starts_with("STUBVIRT-FRONTEND result=pass"))
                .count()
                >= round as usize
                && at(&format!("XL-DOM0 round {round} frontend gone")).is_some(),
        ));
        checks.push((
            format!("round {round}: stubvirt released it, nothing held"),
            released && released_clean,
        ));
        frontends.extend(domid);
    }
    let denials: Vec<String> = transcript
        .lines
        .iter()
        .filter(|(_, l)| l.contains("avc:  denied"))
        .map(|(_, l)| l.clone())
        .collect();
    checks.push((
        "the second frontend is a new domain".into(),
        frontends.len() == 2 && frontends[0] != frontends[1],
    ));
    checks.push((
        "no FLASK denial of stubvirt_t or stubvirt_frontend_t".into(),
        !denials.iter().any(|d| d.contains("stubvirt")),
    ));
    let (linux, figures) = super::linux_checks::checks(transcript, &stubvirt);
    checks.extend(linux);
    checks.push((
        "dom0 init reported to the end".into(),
        matches!(transcript.end, End::Stopped(_)) && at("XL-DOM0 done").is_some(),
    ));
    Findings {
        checks,
        xen_version,
        backend,
        frontends,
        keys: ROUNDS
            .iter()
            .flat_map(|r| with(&format!("xs-{r}")))
            .collect(),
        keys_after: ROUNDS
            .iter()
            .flat_map(|r| with(&format!("xs-after-{r}")))
            .collect(),
        stubvirt,
        denials,
        figures,
        dom0_up: at("XL-DOM0 dom0 up"),
        done: at("XL-DOM0 done"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of a passing run (abridged; the guests' lines as Xen prints them).
    const PASSING: &[&str] = &[
        "XL-DOM0 dom0 up: 6.12.118+deb13-arm64",
        "(XEN) Flask:  Starting in enforcing mode.",
        "XL-DOM0 xenstored answering",
        "XL-DOM0 info xen_version            : 4.20.4",
        "XL-DOM0 info rc=0",
        "XL-DOM0 create-backend rc=0",
        "XL-DOM0 backend domid=1",
        "(d1) STUBVIRT-XL-WATCHING backend=dom1 dir=backend/virtio",
        "XL-DOM0 create-1 rc=0",
        "XL-DOM0 round 1 frontend domid=2",
        "(d1) STUBVIRT-READY frontend=2 vcpus=2 devices=blk@0x2000000 ramdisk_sectors=16384",
        "(d1) STUBVIRT-READY frontend=2 vcpus=2 devices=blk@0x2000000,net@0x2000200",
        "XL-DOM0 xs-1 /local/domain/1/backend/virtio_disk/2/51712/state = \"2\"",
        "(d2) STUBVIRT-FRONTEND result=pass checks=30 failed=0",
        "(d1) STUBVIRT-XL-RELEASED frontend=2 devices=2 pages_held=0 ioreq_server=released",
        "XL-DOM0 round 1 frontend gone after 12 s",
        "XL-DOM0 create-2 rc=0",
        "XL-DOM0 round 2 frontend domid=3",
        "(d1) STUBVIRT-READY frontend=3 vcpus=2 devices=blk@0x2000000,net@0x2000200",
        "(d3) STUBVIRT-FRONTEND result=pass checks=30 failed=0",
        "(d1) STUBVIRT-FRONTEND-GONE frontend=3 state=gone via=poll devices=2 pages_held=0 ",
        "XL-DOM0 round 2 frontend gone after 11 s",
        "XL-DOM0 fe1 domid=4",
        "XL-DOM0 fe2 domid=5",
        "(d1) STUBVIRT-XL-RELEASED frontend=4 devices=2 pages_held=0 ioreq_server=released",
        "XL-FE1 FRONTEND-RESULT stage=handshake backend=ready blk=ready net=ready disk=absent",
        "XL-FE1 FRONTEND-RESULT stage=blk dev=/dev/vda size_bytes=16777216 ro=0 ssz=512",
        "XL-FE1 FRONTEND-RESULT stage=blk_verify ok=1 bytes=16777216 regions=16",
        "XL-FE1 FRONTEND-RESULT stage=blk_perf rand4k_read_qd32_iops=20",
        "XL-FE1 FRONTEND-RESULT stage=fs mkfs=ext2 ok=1 files=48 fsck=clean",
        "XL-FE1 FRONTEND-RESULT stage=net ip=10.0.3.1 gw=10.0.3.2 ping_gw=1 ping_avg_ms=3.1",
        "XL-FE1 FRONTEND-RESULT stage=peer_send ip=10.0.3.2 ping=1 rc=0 tries=1 s=9.5",
        "XL-FE1 FRONTEND-RESULT stage=peer_send bytes=4194304 sha256=5f2a",
        "XL-FE1 FRONTEND-RESULT done=1 uptime=120.3",
        "XL-FE2 FRONTEND-RESULT stage=handshake backend=ready blk=ready net=ready disk=absent",
        "XL-FE2 FRONTEND-RESULT stage=blk dev=/dev/vda size_bytes=16777216 ro=0 ssz=512",
        "XL-FE2 FRONTEND-RESULT stage=blk_verify ok=1 bytes=16777216 regions=16",
        "XL-FE2 FRONTEND-RESULT stage=blk_perf rand4k_read_qd32_iops=22",
        "XL-FE2 FRONTEND-RESULT stage=fs mkfs=ext2 ok=1 files=48 fsck=clean",
        "XL-FE2 FRONTEND-RESULT stage=net ip=10.0.3.2 gw=10.0.3.1 ping_gw=1 ping_avg_ms=2.9",
        "XL-FE2 FRONTEND-RESULT stage=peer_recv bytes=4194304 waited_s=30.1",
        "XL-FE2 FRONTEND-RESULT stage=peer_recv sha256=5f2a",
        "XL-FE2 FRONTEND-RESULT done=1 uptime=121.0",
        "XL-DOM0 fe1 domid=6",
        "(d1) STUBVIRT-READY frontend=6 vcpus=2 devices=blk@0x2000000,net@0x2000200",
        "XL-DOM0 destroy rc=0",
        "(d1) STUBVIRT-XL-RELEASED frontend=6 devices=2 pages_held=0 ioreq_server=released",
        "XL-FE1-AGAIN FRONTEND-RESULT stage=handshake backend=ready blk=ready net=ready",
        "XL-FE1-AGAIN FRONTEND-RESULT stage=blk dev=/dev/vda size_bytes=16777216 ro=0",
        "XL-DOM0 done",
    ];

    #[test]
    fn a_passing_run_passes_every_check() {
        let found = findings(&Transcript::of(PASSING));
        let failed: Vec<_> = found.checks.iter().filter(|(_, ok)| !ok).collect();
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(found.xen_version.as_deref(), Some("4.20.4"));
        assert_eq!(found.frontends, ["2", "3"]);
        assert_eq!(found.keys.len(), 1);
    }

    #[test]
    fn each_missing_piece_fails_its_check() {
        for (dropped, check) in [
            (
                "XL-DOM0 create-1 rc=0",
                "round 1: xl create waits for stubvirt's InitWait and succeeds",
            ),
            (
                "STUBVIRT-READY frontend=3",
                "round 2: stubvirt serves the frontend (disk and NIC)",
            ),
            (
                "STUBVIRT-XL-RELEASED frontend=2",
                "round 1: stubvirt released it, nothing held",
            ),
            ("Flask:  Starting", "Xen enforces stubvirt's FLASK policy"),
            (
                "STUBVIRT-XL-WATCHING",
                "xl creates stubvirt (stubvirt_t), which watches xenstore",
            ),
            (
                "XL-FE2 FRONTEND-RESULT stage=peer_recv sha256",
                "Linux frontends: 4 MiB over TCP from one to the other, byte-exact",
            ),
            (
                "XL-FE1 FRONTEND-RESULT stage=net",
                "Linux frontends: each pings the other through stubvirt's switch",
            ),
            (
                "STUBVIRT-XL-RELEASED frontend=6",
                "Linux frontend created again: served (a new domain), then xl destroy while \
                 it uses its disk; stubvirt releases it",
            ),
        ] {
            let lines: Vec<&str> = PASSING
                .iter()
                .copied()
                .filter(|l| !l.contains(dropped))
                .collect();
            let found = findings(&Transcript::of(&lines));
            let failed: Vec<&str> = found
                .checks
                .iter()
                .filter(|(_, ok)| !ok)
                .map(|(c, _)| c.as_str())
                .collect();
            assert_eq!(failed, [check], "without {dropped}");
        }
        let denied = [
            PASSING,
            &["(XEN) avc:  denied  { map_read } for scontext=system_u:system_r:stubvirt_t"],
        ]
        .concat();
        let found = findings(&Transcript::of(&denied));
        assert!(found
            .checks
            .iter()
            .any(|(c, ok)| !ok && c.starts_with("no FLASK denial")));
    }

    #[test]
    fn chosen_boots_the_kernel_with_its_initramfs() {
        let kernel = Module {
            addr: 0x5000_0000,
            size: 0x240_bfc0,
        };
        let initramfs = Module {
            addr: 0x5260_0000,
            size: 0x2e_92f4,
        };
        let text = chosen(kernel, initramfs, DOM0_ARGS);
        assert!(text.contains(&format!("xen,xen-bootargs = \"{XEN_ARGS}\";")));
        assert!(text.contains(&format!("bootargs = \"{DOM0_ARGS}\";")));
        assert!(text.contains("\"multiboot,ramdisk\", \"multiboot,module\""));
        assert!(text.contains("reg = <0x0 0x52600000 0x0 0x2e92f4>;"));
        assert!(XEN_ARGS.contains("dom0_mem=512M") && DOM0_ARGS.contains("console=hvc0"));
    }
}
