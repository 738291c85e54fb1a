//! `cargo xtask demo`: the end-to-end run. Xen in `qemu-system-aarch64` (TCG), stubvirt's
//! arm64 image in serve mode, and one Linux frontend domU, or two (`--frontends 2`)
//! (Debian's linux-source-6.12 with XEN_VIRTIO, 2 vcpus, a busybox initramfs whose init
//! runs the tests). Options in `options`, boot pieces in `parts`. The frontend's
//! partial device tree gives it three `virtio,mmio` nodes (RAM disk, net, and the disk
//! stubvirt backs with QEMU's own virtio-blk) behind a `xen,grant-dma` IOMMU naming
//! stubvirt's domid. QEMU also gets a virtio-net on its user network, stubvirt's uplink;
//! the host checks the raw disk image and serves a TCP transfer (`host`);
//! `report` writes the summary.
//!
//! Two routes ([`Route`], layouts in `layout`): with `--xen-source PATH` (Xen 4.21+),
//! no dom0 at all: stubvirt is a direct-mapped control domU that QEMU's disk and NIC are
//! passed through to; without it, Xen 4.17.5 from the registry with stubvirt as dom0.
//!
//! Also `cargo xtask config`: the `/chosen` nodes and partial device trees for both
//! privilege routes, for a user's own Xen system.

pub mod frontends;
pub mod host;
pub mod layout;
pub mod lifecycle;
pub mod options;
pub mod parts;
pub mod report;

use crate::arm64;
use crate::console::stall_probe::StallProbe;
use crate::console::{run_queues, watch_and_type, Next, Transcript, SILENT_LINE};
use crate::process::{step, workspace_root};
use crate::xen;
use host::{TcpSink, TcpSource};
use layout::{backend_args, Route, FRONTEND_ARGS, FRONTEND_MEMORY_KB, FRONTEND_VCPUS};
use options::{options, Options};
use parts::{prepare, system, Parts};
use report::{summary, ExpectedBackend, HostSide, STALL_REPORT};
use std::fmt::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Stops once every frontend is done and then one powered off (or stubvirt printed
/// counters after it), or at a fatal line.
fn until_done(frontends: u16) -> impl FnMut(&str) -> bool {
    let mut finished = 0;
    let mut done = false;
    let mut stalls = 0;
    let mut fatal = false;
    move |line| {
        // A fatal line's message is on the line after it.
        if fatal {
            return true;
        }
        // A frontend vcpu that stopped taking interrupts: Linux reports an RCU stall every
        // ~60 s; the second report is enough (the first may be load).
        if line.contains(STALL_REPORT) {
            stalls += 1;
            return stalls >= 2;
        }
        if ["Panic on CPU", "Hardware Dom0 crashed", "PANIC: "]
            .iter()
            .any(|m| line.contains(m))
        {
            fatal = true;
            return false;
        }
        if line.contains("FRONTEND-RESULT done=1") {
            finished += 1;
            done = finished >= frontends;
            return false;
        }
        done && (line.contains("reboot: Power down") || line.contains("STUBVIRT-COUNTERS "))
    }
}

/// `cargo xtask demo [--xen-source PATH] [--timeout SECONDS] [--no-backend] [--map-buffers]`.
pub fn run_demo(args: &[String]) -> Result<(), String> {
    run_once(options(args)?).map_err(|failure| failure.message)
}

/// Why a run did not pass.
struct Failure {
    message: String,
    /// Linux reported an RCU stall: a frontend vcpu stopped taking timer interrupts.
    stalled: bool,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self {
            message,
            stalled: false,
        }
    }
}

/// `cargo xtask test`'s end-to-end checks: the demo's run with every check asserted, on
/// both routes. The route with no dom0 reads Xen from `STUBVIRT_XEN_SOURCE` or the shared
/// archive; without either it is skipped with a line saying so, except under `CI=true`,
/// where that is a failure. On both routes one failure that is not stubvirt's to fix is
/// retried once, and says so: a frontend vcpu that stops taking timer interrupts under TCG
/// (docs/testing.md; seen on Xen 4.17.5 and on 4.22). Any other failure fails the test.
pub fn run_test() -> Result<(), String> {
    step("end to end, route with no dom0: stubvirt as a control domU of Xen 4.21+");
    match xen::source::default_path() {
        Some(path) => {
            // The product: Xen enforcing stubvirt's FLASK policy, stubvirt confined to two
            // Linux frontends: everything the one-frontend run checks, for each, the
            // traffic between them through stubvirt's switch, driver resets during I/O in
            // both at once, then the second crashes while the first runs I/O.
            let args = [
                "--xen-source".to_string(),
                path.display().to_string(),
                "--frontends".into(),
                "2".into(),
                "--rebind".into(),
                lifecycle::ROUNDS.to_string(),
                "--crash".into(),
                "--confine".into(),
            ];
            once_more_if_stalled(|| options(&args))?;
        }
        None if std::env::var_os("CI").is_some_and(|v| v == "true") => {
            return Err(format!(
                "CI=true but no Xen 4.21+ source for the route with no dom0: set {} or \
                 provide ../shared/xen/xen-4.22.0-hypervisor.tar.xz",
                xen::source::ENV_VAR
            ));
        }
        None => step(&format!(
            "SKIPPED the route with no dom0: no Xen 4.21+ source (set {} to a Xen tree or \
             archive, or put the shared archive at ../shared/xen/)",
            xen::source::ENV_VAR
        )),
    }
    step("end to end, dom0 route: stubvirt as dom0 of Xen 4.17.5, then driver resets");
    let rebind = ["--rebind".to_string(), lifecycle::ROUNDS.to_string()];
    once_more_if_stalled(|| options(&rebind))
}

/// Whether the run went silent with Xen's own run queues holding a runnable vcpu beside an
/// idle CPU: a wake-up Xen lost, which no domain can cause (`console::run_queues`).
fn stranded(transcript: &Transcript) -> bool {
    transcript.find(SILENT_LINE).is_some()
        && run_queues::stranded_vcpu(transcript.lines.iter().map(|(_, l)| l.as_str())).is_some()
}

/// One end-to-end run; once more if, and only if, a frontend vcpu stalled or Xen left a
/// runnable vcpu queued beside an idle CPU.
fn once_more_if_stalled(route: impl Fn() -> Result<Options, String>) -> Result<(), String> {
    match run_once(route()?) {
        Err(Failure { stalled: true, .. }) => {
            step(
                "RETRY: a vcpu stalled (an RCU stall report, or silence with Xen's run queue \
                 holding a runnable vcpu beside an idle CPU: the known Xen-under-TCG lost \
                 wake-up, see docs/testing.md): running the end-to-end check once more",
            );
            run_once(route()?).map_err(|failure| failure.message)
        }
        other => other.map_err(|failure| failure.message),
    }
}

fn run_once(mut options: Options) -> Result<(), Failure> {
    let dir = workspace_root().join(match options.route() {
        Route::Dom0 => "target/demo",
        Route::ControlDomU => "target/demo-nodom0",
    });
    let parts = prepare(&dir, &options)?;
    let image = dir.join("disk.img");
    host::fresh_disk_image(&image, options.frontends)?;
    let payload = Arc::new(host::tcp_payload());
    let source = TcpSource::start(payload.clone())?;
    let sink = TcpSink::start(payload.len())?;
    let _ = write!(
        options.frontend_args,
        " fe_tcp_port={} fe_tcp_sink={}",
        source.port(),
        sink.port()
    );
    let (dtb, loads) = system(&dir, &parts, &options)?;
    let mut command = arm64::sysdt::qemu_command(&parts.xen, &dtb, &loads, layout::DEMO_TCG);
    command.args(host::qemu_devices(&image));
    // For experiments on the emulator (e.g. `-accel tcg,thread=single`).
    if let Ok(extra) = std::env::var(layout::QEMU_EXTRA_VARIABLE) {
        command.args(extra.split_whitespace());
    }
    let route = options.route();
    step(&format!(
        "[5/5] booting Xen {} + {} + Linux frontend domU{} (at most {} s; QEMU disk {}, \
         TCP source 127.0.0.1:{}); frontend and backend lines follow",
        parts.xen_version,
        match route {
            Route::Dom0 => "stubvirt dom0",
            Route::ControlDomU => "stubvirt control domU1, no dom0",
        },
        route.frontend_domid(),
        options.deadline.as_secs(),
        image.display(),
        source.port()
    ));
    let started = Instant::now();
    let transcript = boot(
        &mut command,
        options.deadline,
        &format!("demo-{}", route_name(route)),
        options.frontends,
    )?;
    let wall = started.elapsed();
    // QEMU has ended (watch kills and reaps it): the image holds all it wrote.
    let host = HostSide {
        image_sha256: host::sha256_of_file(&image),
        tcp_sha256: host::sha256_of_bytes(&payload)?,
        tcp_bytes: payload.len(),
        tcp_port: source.port(),
        tcp_served: source.records(),
        upload_port: sink.port(),
        upload_received: sink.records(),
        backend: options.backend.then(|| ExpectedBackend {
            domid: route.backend_domid(),
            dom0: route == Route::Dom0,
        }),
    };
    drop(source);
    drop(sink);
    let header = header(&parts, &options, wall, &transcript.log);
    let text = if options.frontends > 1 {
        summaries(&transcript, &header, &host, &image, &options)
    } else {
        summary(&transcript, &header, &host)
    };
    step("summary");
    match text {
        Ok(text) => {
            print!("{text}");
            Ok(())
        }
        Err(text) => {
            print!("{text}");
            Err(Failure {
                message: "the end-to-end run did not pass (summary above)".into(),
                stalled: transcript.find(STALL_REPORT).is_some() || stranded(&transcript),
            })
        }
    }
}

/// One summary per frontend, each from its own view of the run and its share of the
/// disk, then the frontend-to-frontend transfer.
fn summaries(
    t: &Transcript,
    header: &str,
    host: &HostSide,
    image: &Path,
    options: &Options,
) -> Result<String, String> {
    let first = options.route().frontend_domid();
    let domids: Vec<u32> = (0..u32::from(options.frontends))
        .map(|n| first + n)
        .collect();
    let mut text = header.to_string();
    let mut ok = true;
    let mut views = Vec::new();
    for (n, &domid) in domids.iter().enumerate() {
        let mut view = frontends::view(t, domid, &domids);
        if options.crash && n == 1 {
            // What happened to it after its crash is the crash check's business.
            view = frontends::before(view, "FRONTEND-RESULT stage=crash");
        }
        let own = HostSide {
            image_sha256: frontends::share_sha256(image, n),
            ..host.clone()
        };
        let part = summary(&view, &format!("frontend domU{domid}:\n"), &own);
        ok &= part.is_ok();
        text.push_str(&part.unwrap_or_else(|e| e));
        views.push(view);
    }
    if let [sender, receiver, ..] = &views[..] {
        let (passed, detail) = frontends::peer(sender, receiver, &host.tcp_sha256);
        ok &= passed;
        let mark = if passed { "ok  " } else { "FAIL" };
        let _ = writeln!(
            text,
            "frontend to frontend:\n  {mark} {:<10} {detail}",
            "peer tcp"
        );
    }
    if options.confine {
        for (passed, what, detail) in
            crate::xen::privilege_checks::confined_run(t, &domids, options.crash)
        {
            ok &= passed;
            let mark = if passed { "ok  " } else { "FAIL" };
            let _ = writeln!(text, "  {mark} {what:<10} {detail}");
        }
    }
    if let (true, [survivor, ..]) = (options.crash, &views[..]) {
        let crashed = domids.get(1).copied().unwrap_or(0);
        let rows = lifecycle::crash(t, survivor, crashed, &host.tcp_sha256, options.confine);
        for (passed, what, detail) in rows {
            ok &= passed;
            let mark = if passed { "ok  " } else { "FAIL" };
            let _ = writeln!(text, "  {mark} {what:<10} {detail}");
        }
    }
    if ok {
        Ok(text)
    } else {
        Err(text)
    }
}

fn route_name(route: Route) -> &'static str {
    match route {
        Route::Dom0 => "dom0",
        Route::ControlDomU => "nodom0",
    }
}

/// Runs QEMU until the frontend is done (or `limit`), echoing the frontend's and
/// stubvirt's lines.
fn boot(
    command: &mut Command,
    limit: Duration,
    name: &str,
    frontends: u16,
) -> Result<Transcript, String> {
    let started = Instant::now();
    let mut stop = until_done(frontends);
    // stubvirt prints its counters every second or so: echo them at most every 10 s.
    let mut counters_shown: Option<Instant> = None;
    let mut probe = StallProbe::default();
    let mut silences = 0;
    watch_and_type(name, command, limit, true, |line| {
        // Silent again 30 s after Xen was asked for its state, with nothing from a domain
        // in between: the machine is stuck, and waiting out the limit would only cost time.
        if line == SILENT_LINE {
            silences += 1;
            if silences >= 2 {
                println!("    still silent after Xen's dump: stopping");
                return Next::Stop;
            }
        } else if !line.starts_with("(XEN)") || line.starts_with("(XEN) DOM") {
            silences = 0;
        }
        let counters = line.contains("STUBVIRT-COUNTERS ");
        let due = counters_shown.is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
        let wanted = line.contains("FRONTEND") || line.contains("STUBVIRT-");
        if wanted && (!counters || due) {
            if counters {
                counters_shown = Some(Instant::now());
            }
            println!(
                "    {:6.1} s  {}",
                started.elapsed().as_secs_f64(),
                line.trim()
            );
        }
        if stop(line) {
            return Next::Stop;
        }
        probe.next(line)
    })
}

/// The summary's first lines: what ran. The route, Xen's version, stubvirt's domid and
/// capabilities as Xen reported them (its `STUBVIRT-DOMAIN` line) come first.
fn header(parts: &Parts, options: &Options, wall: Duration, log: &Path) -> String {
    let route = options.route();
    let mut s = format!(
        "demo: route {}: Xen {} (IOREQ) in QEMU ({}); {}; Linux {} frontend {} \
         ({FRONTEND_VCPUS} vcpus, {} MiB each); {:.1} s wall; log {}\n",
        match route {
            Route::Dom0 => "dom0 (stubvirt is dom0: hardware + control domain)",
            Route::ControlDomU => "NO DOM0 (stubvirt is a control domU; no hardware domain exists)",
        },
        parts.xen_version,
        layout::DEMO_TCG.accel(),
        if options.backend {
            format!("stubvirt ({})", options.backend_args)
        } else {
            "no backend (--no-backend)".to_string()
        },
        parts.kernel_version,
        (0..u32::from(options.frontends))
            .map(|n| format!("domU{}", route.frontend_domid() + n))
            .collect::<Vec<_>>()
            .join(" and "),
        FRONTEND_MEMORY_KB / 1024,
        wall.as_secs_f64(),
        log.display()
    );
    if let Some(secs) = parts.kernel_built_seconds {
        let _ = writeln!(s, "  frontend kernel built in this run: {secs} s");
    }
    s
}

/// `cargo xtask config`: the nodes for a user's own system, both routes: exactly what the
/// demo and the tests boot, with example module addresses.
pub fn config(_args: &[String]) -> Result<(), String> {
    for (route, title) in [
        (
            Route::ControlDomU,
            "Route 1 (deploy this one): no dom0 at all (Xen >= 4.21). stubvirt is dom0less \
             domU1 with `capabilities = <1>` (control, not hardware), direct-mapped on static \
             memory (Xen built with CONFIG_STATIC_MEMORY and CONFIG_IOREQ_SERVER), with the \
             host's virtio disk and NIC passed through; the frontend is domU2 and names \
             domid 1 in `iommus`.",
        ),
        (
            Route::Dom0,
            "Route 2: stubvirt as dom0 (Xen 4.17+, dom0less with dom0). dom0 is the hardware \
             domain and holds every privilege; the frontend names domid 0 in `iommus`.",
        ),
    ] {
        let (backend, fe) = layout::example_modules(route);
        println!("==== {title}\n");
        if route == Route::ControlDomU {
            println!("---- host device tree additions (the devices Xen passes through)");
            print!("{}", layout::host_passthrough_marks());
            println!();
        }
        println!(
            "---- /chosen (append to the host device tree; module addresses and sizes are \
             examples)\n"
        );
        print!(
            "{}",
            layout::chosen(
                route,
                Some((&backend, &backend_args(route))),
                &fe,
                FRONTEND_ARGS
            )
        );
        if route == Route::ControlDomU {
            println!("\n---- stubvirt's partial device tree (its \"multiboot,device-tree\")\n");
            print!("{}", layout::backend_dts());
        }
        println!("\n---- frontend partial device tree (module \"multiboot,device-tree\")\n");
        print!("{}", layout::frontend_dts(route));
        println!();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_polls_every_device_window() {
        for device in layout::demo_devices(Route::ControlDomU) {
            let window = format!(":0x{:x}", device.window.base);
            assert!(
                crate::frontend::initramfs::INIT.contains(&window),
                "{window}"
            );
        }
    }

    #[test]
    fn stops_after_done_and_power_down() {
        let mut stop = until_done(1);
        assert!(!stop("(XEN) DOM1: FRONTEND-RESULT stage=blk size_bytes=1"));
        assert!(!stop("(XEN) DOM1: [  3.1] reboot: Power down"));
        assert!(!stop("(XEN) DOM1: FRONTEND-RESULT done=1 uptime=9"));
        assert!(stop("(XEN) DOM1: [  9.2] reboot: Power down"));
        let mut stop = until_done(1);
        assert!(!stop("(XEN) Hardware Dom0 crashed: rebooting machine"));
        assert!(stop("(XEN) Reboot in five seconds..."));
        let mut stop = until_done(1);
        assert!(!stop("(XEN) DOM1: PANIC: panicked at kernel/src/serve.rs"));
        assert!(stop("(XEN) DOM1: no RAM for a 16 MiB RAM disk"));
        let mut stop = until_done(1);
        assert!(!stop("(XEN) Panic on CPU 0:"));
        assert!(stop("(XEN) Could not set up domain domU1 (rc = -22)"));
        let mut stop = until_done(1);
        assert!(!stop(
            "DOM1: [ 55.2] rcu: INFO: rcu_sched detected stalls on CPUs/tasks:"
        ));
        assert!(stop(
            "DOM1: [ 118.2] rcu: INFO: rcu_sched detected stalls on CPUs/tasks:"
        ));
    }
}
