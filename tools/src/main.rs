//! `cargo xtask`: the stubvirt host CLI.
//!
//! Every subcommand is a plain function in its own module; this file only dispatches.

mod apt;
mod arm64;
mod bench;
mod build;
mod config;
mod console;
mod demo;
mod frontend;
mod fuzz;
mod process;
mod test;
mod x86;
mod xen;
mod xl_route;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  build    build the bootable images into target/images/ (and the arm64 test image)
  demo [--xen-source PATH [--frontends N [--flood SECONDS]]] [--timeout SECONDS]
       [--no-backend] [--map-buffers] [--blk-queues N] [--rebind ROUNDS]
                  end to end: Xen in QEMU, stubvirt serving virtio-blk/net to a Linux frontend
                  domU; with --xen-source (a Xen 4.21+ tree or archive) with no dom0 at all,
                  stubvirt a control domU (two Linux frontends with --frontends 2); without
                  it as dom0 of Xen 4.17.5 (builds Xen, the frontend kernel and initramfs
                  when missing)
  config [FILE]  without FILE: the demo's dom0less nodes, both routes; with a system
           description (tools/configs/two-frontends.toml): /chosen, stubvirt's and every
           frontend's partial device tree, and an ImageBuilder configuration
  bench [--quick] [queue|datapath]
                  criterion benchmarks (vs rust-vmm virtio-queue, blk/net data paths,
                  hypercalls and exits per request, footprint) and their tables; a full
                  run (every bench, no --quick) also sizes fresh images and rewrites the
                  generated tables of docs/performance.md
  bench images    only the image sizes against their budget, into docs/performance.md
  test     run every test the project has (what CI runs)
  check    the fast tier: fmt, every lint (host and both images), host tests; no QEMU
  fuzz [--seconds N] [--save-corpus] [--no-sanitizer] [TARGET...]
                  run the libFuzzer targets N seconds each (default 60) and print executions
  test-x86        only the x86_64 image tests (image lints, QEMU boots, Xen self-test)
  test-arm64      only the arm64 image tests (image lints, QEMU boots, Xen dom0/domU tests)
  xen-x86 [RUNS]  boot the x86_64 image under Xen in QEMU RUNS times (median time)
  xen-arm64 [RUNS] [IMAGE]  boot the arm64 image under Xen (as dom0, as domU) RUNS times each
  serve-arm64 [IMAGE]  stubvirt dom0 serving a stubvirt domU frontend over IOREQ (no Linux)
  grant-bench     under the real Xen (arm64 dom0): map+copy+unmap vs GNTTABOP_copy per size;
                  rewrites its table in docs/performance.md
  xl-smoke [--xen-source PATH]
                  the xl route: Xen 4.20 in QEMU with Debian trixie's Linux as dom0; its xl
                  creates stubvirt (discover=xenstore) and twice a frontend with a virtio disk
                  and NIC that stubvirt serves, under the FLASK policy (default source:
                  ../shared/xen/xen-4.20.4-hypervisor.tar.xz)
  bench-e2e [--check] [--xen-source PATH]
                  stubvirt beside Linux's PV backends (blkback, netback) in one boot of the
                  xl route: the same Linux frontends measure both (fe_io, TCP, ping);
                  rewrites its table in docs/performance.md (--check: a short run that
                  only checks every figure comes, as `cargo xtask test` does)
  help     this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str).unwrap_or("help");
    let rest = args.get(1..).unwrap_or(&[]);
    let result = match command {
        "build" => build::run(rest),
        "demo" => demo::run_demo(rest),
        "config" => match rest.first() {
            Some(file) => config::command(file),
            None => demo::config(rest),
        },
        "bench" => bench::run(rest),
        "test" => test::run(rest),
        "check" => test::check(rest),
        "fuzz" => fuzz::run(rest),
        "test-x86" => x86::boot::tests(),
        "test-arm64" => arm64::test::tests(),
        "xen-x86" => x86::boot::xen_command(rest),
        "xen-arm64" => arm64::boot::xen_command(rest),
        "serve-arm64" => arm64::serve::command(rest),
        "grant-bench" => bench::grant::command(rest),
        "xl-smoke" => xl_route::command(rest),
        "bench-e2e" => xl_route::side_by_side::command(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}
