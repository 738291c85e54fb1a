//! Several frontends from a topology node, without Linux: stubvirt as control domU1 of
//! Xen 4.21+ (no dom0) reads a `stubvirt,backend` node from its partial device tree and
//! serves two stubvirt frontends (domU2 and domU3, `frontend_test=1`, 2 vcpus each), one
//! IOREQ server each. Passes when both are READY, both frontends pass their register and
//! RAM disk round trip, and a counters line shows each frontend's own disk served with
//! nothing left mapped. A second boot describes two NICs with one MAC: stubvirt must
//! refuse it with `STUBVIRT-CONFIG-REFUSED` before it registers anything.

use super::sysdt::{self, Images};
use crate::console::{watch, End, Transcript};
use crate::process::{run, step, workspace_root};
use devices::topology::{Backing, Device, DeviceKind, Frontend, Topology, Window};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(180);
const FRONTEND_ARGS: &str = "loglevel=info frontend_test=1 backend=1";
const VCPUS: u32 = 2;

/// Frontends 2 and 3: a 4 MiB RAM disk in window 0 and a NIC in window 1 each.
fn two_frontends(second_mac: [u8; 6]) -> Topology {
    let frontend = |domid: u16, mac| Frontend {
        domid,
        vcpus: VCPUS,
        devices: vec![
            Device {
                window: Window::nth(0),
                kind: DeviceKind::Disk {
                    backing: Backing::RamDisk { mib: 4 },
                    read_only: false,
                },
            },
            Device {
                window: Window::nth(1),
                kind: DeviceKind::Nic { mac, mtu: 1500 },
            },
        ],
    };
    Topology {
        frontends: vec![frontend(2, [2, 0, 0, 0, 2, 1]), frontend(3, second_mac)],
        uplink: false,
    }
}

/// Boots the backend with `topology` in its partial device tree and two frontends.
fn boot(
    images: &Images,
    xen: &Path,
    name: &str,
    topology: &Topology,
    stop: impl FnMut(&str) -> bool,
) -> Result<Transcript, String> {
    let dir = workspace_root().join("target/arm64-boot").join(name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let source = format!(
        "/dts-v1/;\n\n/ {{\n    #address-cells = <2>;\n    #size-cells = <2>;\n\n    \
         passthrough {{\n        compatible = \"simple-bus\";\n        ranges;\n        \
         #address-cells = <2>;\n        #size-cells = <2>;\n\n{}    }};\n}};\n",
        devices::topology::device_tree::write(topology, "        ")
    );
    let dts = dir.join("stubvirt.dts");
    std::fs::write(&dts, source).map_err(|e| e.to_string())?;
    let dtb = dir.join("stubvirt.dtb");
    run(Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb", "-o"])
        .arg(&dtb)
        .arg(&dts))?;
    let frontends = vec![(FRONTEND_ARGS.to_string(), VCPUS); 2];
    let (system, loads) =
        sysdt::build_control_and_frontends(&dir, images, "loglevel=info", &dtb, &frontends)?;
    let mut command = sysdt::qemu_command(xen, &system, &loads, sysdt::Tcg::OneThread);
    watch(name, &mut command, DEADLINE, stop)
}

fn failed(what: &str, t: &Transcript) -> String {
    format!(
        "{what} ({}); log {}; last lines:\n{}",
        match t.end {
            End::TimedOut => format!("nothing conclusive within {DEADLINE:?}"),
            End::Exited(status) => format!("QEMU exited: {status}"),
            End::Stopped(_) => "stopped at the last line below".to_string(),
        },
        t.log.display(),
        t.tail(40)
    )
}

/// What a counters line must show for frontend `domid`: its own disk's two requests
/// (a 2-page write, its read-back), nothing held.
fn served_alone(line: &str, domid: u16) -> bool {
    line.contains(&format!(" fe{domid}.blk=req:2,in:8192,out:8192,"))
        && line
            .split(&format!(" fe{domid}.blk="))
            .nth(1)
            .is_some_and(|rest| rest.contains(",held:0,"))
}

/// Marks after which nothing useful follows.
fn fatal(line: &str) -> bool {
    [
        "Panic on CPU",
        "STUBVIRT-SERVE-FAILED",
        "STUBVIRT-FRONTEND result=fail",
        "PANIC: ",
    ]
    .iter()
    .any(|m| line.contains(m))
}

pub fn test(images: &Images, xen: &Path) -> Result<(), String> {
    step("arm64 serve mode, two frontends from a stubvirt,backend node (no dom0): stubvirt control domU1 serving stubvirt domU2 and domU3, one IOREQ server each");
    let mut passed = 0;
    let t = boot(
        images,
        xen,
        "arm64-xen-serve-two-frontends",
        &two_frontends([2, 0, 0, 0, 3, 1]),
        |line| {
            passed += usize::from(line.contains("STUBVIRT-FRONTEND result=pass"));
            fatal(line)
                || (passed == 2
                    && line.contains("STUBVIRT-COUNTERS ")
                    && served_alone(line, 2)
                    && served_alone(line, 3))
        },
    )?;
    let ready = |domid| {
        t.find(&format!("STUBVIRT-READY frontend={domid} vcpus={VCPUS} "))
            .cloned()
    };
    let counters = match t.end {
        End::Stopped(i) => t.lines.get(i).cloned(),
        _ => None,
    };
    let ok = ready(2).is_some()
        && ready(3).is_some()
        && t.lines
            .iter()
            .filter(|(_, l)| l.contains("STUBVIRT-FRONTEND result=pass"))
            .count()
            == 2
        && counters.as_ref().is_some_and(|(_, l)| {
            served_alone(l, 2) && l.contains(" ioreq_errors=0 send_errors=0 irq_errors=0 ")
        });
    if !ok {
        return Err(failed("two-frontend serve test did not pass", &t));
    }
    for (time, line) in [ready(2), ready(3), counters].into_iter().flatten() {
        let text = line.split("STUBVIRT-").nth(1).unwrap_or(&line);
        println!("    {:6.2} s  STUBVIRT-{text}", time.as_secs_f64());
    }
    step("the same with two NICs given one MAC, then with a domain that does not exist: each refused before anything is registered");
    let mut unknown = two_frontends([2, 0, 0, 0, 3, 1]);
    unknown.frontends[1].domid = 4;
    let cases = [
        (
            "arm64-xen-serve-refused",
            two_frontends([2, 0, 0, 0, 2, 1]),
            "frontend 2 nic 0x2000200 and frontend 3 nic 0x2000200 have the same MAC",
        ),
        (
            "arm64-xen-serve-unknown-domain",
            unknown,
            "frontend 4: no such domain",
        ),
    ];
    for (name, topology, expected) in cases {
        refused(images, xen, name, &topology, expected)?;
    }
    Ok(())
}

/// Boots `topology` and checks that stubvirt refuses it with `expected`, registering
/// nothing.
fn refused(
    images: &Images,
    xen: &Path,
    name: &str,
    topology: &Topology,
    expected: &str,
) -> Result<(), String> {
    let t = boot(images, xen, name, topology, |line| {
        fatal(line) || line.contains("STUBVIRT-CONFIG-REFUSED")
    })?;
    let refused = t.find("STUBVIRT-CONFIG-REFUSED ").cloned();
    let ok = refused.as_ref().is_some_and(|(_, l)| l.contains(expected))
        && t.find("ioreq server").is_none()
        && t.find("STUBVIRT-READY").is_none();
    if !ok {
        return Err(failed("the bad topology was not refused as it should", &t));
    }
    if let Some((time, line)) = refused {
        let text = line.split("STUBVIRT-").nth(1).unwrap_or(&line);
        println!("    {:6.2} s  STUBVIRT-{text}", time.as_secs_f64());
    }
    Ok(())
}
