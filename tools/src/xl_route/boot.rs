//! Booting Xen with the Linux dom0 in QEMU (TCG) and reading what its init reported: the
//! system device tree (QEMU's own plus `/chosen` with dom0's kernel and initramfs), the
//! bounded run with its console in `target/logs/xl-dom0.log`, and the checks of the
//! `XL-DOM0` lines.

use crate::demo_layout::{self, Module};
use crate::demo_parts::size_of;
use crate::guest_console::{watch, End, Transcript};
use crate::sysdt_arm64::{self, Load, MODULE_BASE};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Xen's command line: a dom0 large enough for Debian's kernel and the toolstack, one
/// vcpu (TCG runs every vcpu on the host's two cores).
pub const XEN_ARGS: &str = "console=dtuart dom0_mem=512M dom0_max_vcpus=1 loglvl=all \
                            guest_loglvl=all noreboot";
/// dom0's command line: the console is Xen's (hvc0), and a quiet kernel saves TCG time.
pub const DOM0_ARGS: &str = "console=hvc0 rdinit=/init loglevel=4";
/// Lines after which nothing more comes: init's last line, Xen's or dom0's panic.
const FINAL_MARKS: [&str; 3] = ["XL-DOM0 done", "Panic on CPU", "Kernel panic"];

/// Writes `dir/system.dtb` for Xen with `kernel` and `initramfs` as dom0; returns it and
/// the loads that put the modules where it says.
pub fn system_tree(
    dir: &Path,
    kernel: &Path,
    initramfs: &Path,
) -> Result<(PathBuf, Vec<Load>), String> {
    let modules = demo_layout::layout(MODULE_BASE, &[size_of(kernel)?, size_of(initramfs)?])?;
    let [kernel_at, initramfs_at] = modules[..] else {
        return Err("two boot modules expected".into());
    };
    let mut dts = sysdt_arm64::qemu_dts(dir)?;
    dts.push_str(&chosen(kernel_at, initramfs_at));
    let dtb = sysdt_arm64::compile(dir, &dts)?;
    let loads = [(kernel, kernel_at), (initramfs, initramfs_at)]
        .map(|(file, at)| Load {
            file: file.to_path_buf(),
            addr: at.addr,
        })
        .into();
    Ok((dtb, loads))
}

/// `/chosen`: Xen's command line and dom0's kernel and ramdisk modules.
fn chosen(kernel: Module, initramfs: Module) -> String {
    let mut out = String::from("/ {\n chosen {\n  #address-cells = <2>;\n  #size-cells = <2>;\n");
    let _ = writeln!(out, "  xen,xen-bootargs = \"{XEN_ARGS}\";");
    out.push_str(&demo_layout::module_node(
        "  ",
        "kernel",
        kernel,
        Some(DOM0_ARGS),
    ));
    out.push_str(&demo_layout::module_node("  ", "ramdisk", initramfs, None));
    out.push_str(" };\n};\n");
    out
}

/// Boots `xen` with the tree and loads, until init's last line, a panic, or `deadline`.
pub fn run(
    xen: &Path,
    (dtb, loads): &(PathBuf, Vec<Load>),
    deadline: Duration,
) -> Result<Transcript, String> {
    let mut command = sysdt_arm64::qemu_command(xen, dtb, loads);
    watch("xl-dom0", &mut command, deadline, |line| {
        FINAL_MARKS.iter().any(|mark| line.contains(mark))
    })
}

/// What the run showed.
pub struct Findings {
    /// One line per check: its name, and whether it passed.
    pub checks: Vec<(&'static str, bool)>,
    /// What `xl info` said Xen is (`xen_version`).
    pub xen_version: Option<String>,
    /// Every xenstore key init printed after `xl create`, `path = "value"`, in order.
    pub keys: Vec<String>,
    /// The disk's backend keys as xl wrote them, before the stand-in backend answered.
    pub disk_as_written: Vec<String>,
    /// `xl list` with the guest created (paused), and 5 s after it was unpaused.
    pub list: Vec<String>,
    pub list_after: Vec<String>,
    /// Seconds from QEMU's start to dom0's init, and to its last line.
    pub dom0_up: Option<f64>,
    pub done: Option<f64>,
}

/// Where xl writes the backend half of each kind of device, for a backend in dom0.
pub const VIRTIO_BACKEND: &str = "/local/domain/0/backend/virtio/";
pub const DISK_BACKEND: &str = "/local/domain/0/backend/virtio_disk/";

/// Reads the `XL-DOM0` lines of `transcript`.
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
    let keys = with("xs");
    let disk_as_written = with("disk-as-written");
    let has_key = |part: &str| keys.iter().any(|k| k.contains(part));
    let xen_version = with("info")
        .iter()
        .find_map(|rest| rest.strip_prefix("xen_version"))
        .map(|v| v.trim_start_matches([' ', ':']).to_string());
    let checks = vec![
        (
            "dom0 Linux reached its init",
            at("XL-DOM0 dom0 up").is_some(),
        ),
        (
            "xenstored answers",
            at("XL-DOM0 xenstored answering").is_some(),
        ),
        (
            "xl info works (Xen 4.20)",
            ok("info")
                && xen_version
                    .as_deref()
                    .is_some_and(|v| v.starts_with("4.20")),
        ),
        ("xl create of the guest succeeds", ok("create")),
        (
            "virtio device: backend keys, and the guest's pointing at them",
            has_key(VIRTIO_BACKEND)
                && has_key(&format!("/device/virtio/0/backend = \"{VIRTIO_BACKEND}")),
        ),
        (
            "virtio disk: backend keys as xl wrote them, and the guest's",
            disk_as_written.iter().any(|k| k.starts_with(DISK_BACKEND))
                && has_key(&format!("/backend = \"{DISK_BACKEND}")),
        ),
        (
            "dom0 init reported to the end",
            matches!(transcript.end, End::Stopped(_)) && at("XL-DOM0 done").is_some(),
        ),
    ];
    Findings {
        checks,
        xen_version,
        keys,
        disk_as_written,
        list: with("list"),
        list_after: with("list-after"),
        dom0_up: at("XL-DOM0 dom0 up"),
        done: at("XL-DOM0 done"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `XL-DOM0` lines of a passing run (abridged).
    const PASSING: &[&str] = &[
        "XL-DOM0 dom0 up: 6.12.118+deb13-arm64",
        "XL-DOM0 xenstored answering",
        "XL-DOM0 info xen_version            : 4.20.4",
        "XL-DOM0 info rc=0",
        "XL-DOM0 disk-as-written /local/domain/0/backend/virtio_disk/1/51712/state = \"1\"",
        "XL-DOM0 create rc=0",
        "XL-DOM0 list fe                                           1    64     1     --p---       0.0",
        "XL-DOM0 list rc=0",
        "XL-DOM0 xs /local/domain/0/backend/virtio_disk/1/51712/state = \"2\"",
        "XL-DOM0 xs /local/domain/0/backend/virtio/1/0/state = \"1\"",
        "XL-DOM0 xs /local/domain/1/device/virtio_disk/51712/backend = \"/local/domain/0/backend/virtio_disk/1/51712\"",
        "XL-DOM0 xs /local/domain/1/device/virtio/0/backend = \"/local/domain/0/backend/virtio/1/0\"",
        "XL-DOM0 done",
    ];

    #[test]
    fn a_passing_run_passes_every_check() {
        let found = findings(&Transcript::of(PASSING));
        assert!(found.checks.iter().all(|(_, ok)| *ok), "{:?}", found.checks);
        assert_eq!(found.xen_version.as_deref(), Some("4.20.4"));
        assert_eq!(found.keys.len(), 4);
        assert_eq!(found.disk_as_written.len(), 1);
        assert_eq!(found.list.len(), 2);
    }

    #[test]
    fn each_missing_piece_fails_its_check() {
        for (dropped, check) in [
            ("XL-DOM0 create rc=0", "xl create of the guest succeeds"),
            (
                "XL-DOM0 disk-as-written",
                "virtio disk: backend keys as xl wrote them, and the guest's",
            ),
            (
                "/device/virtio/0/backend",
                "virtio device: backend keys, and the guest's pointing at them",
            ),
            ("XL-DOM0 info xen_version", "xl info works (Xen 4.20)"),
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
                .map(|(c, _)| *c)
                .collect();
            assert_eq!(failed, [check], "without {dropped}");
        }
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
        let text = chosen(kernel, initramfs);
        assert!(text.contains(&format!("xen,xen-bootargs = \"{XEN_ARGS}\";")));
        assert!(text.contains(&format!("bootargs = \"{DOM0_ARGS}\";")));
        assert!(text.contains("\"multiboot,ramdisk\", \"multiboot,module\""));
        assert!(text.contains("reg = <0x0 0x52600000 0x0 0x2e92f4>;"));
        assert!(XEN_ARGS.contains("dom0_mem=512M") && DOM0_ARGS.contains("console=hvc0"));
    }
}
