//! The subcommands, each once: its name, arguments, what it does and the function that
//! runs it. The usage text, each command's `--help` and the dispatch all come from
//! [`COMMANDS`], so none of them can drift from the others.
//!
//! Not clap: every command already parses its own arguments (with tests, e.g.
//! `demo::options`), and the table gives what clap's derive would here (one place for
//! names, usage and help) without rewriting those parsers.

use crate::{arm64, bench, build, config, demo, fuzz, test, x86, xl_route};

/// One subcommand.
pub struct Command {
    pub name: &'static str,
    /// Its arguments, as the usage line shows them.
    pub args: &'static str,
    /// What it does (wrapped by hand; shown indented under the usage line).
    pub about: &'static str,
    pub run: fn(&[String]) -> Result<(), String>,
}

pub static COMMANDS: &[Command] = &[
    Command {
        name: "build",
        args: "",
        about: "build the bootable images into target/images/ (and the arm64 test image)",
        run: build::run,
    },
    Command {
        name: "demo",
        args: "[--xen-source PATH [--frontends N [--flood SECONDS]]] [--timeout SECONDS]\n\
               [--no-backend] [--map-buffers] [--blk-queues N] [--rebind ROUNDS] [--crash]\n\
               [--confine]",
        about: "end to end: Xen in QEMU, stubvirt serving virtio-blk/net to a Linux frontend\n\
                domU; with --xen-source (a Xen 4.21+ tree or archive) with no dom0 at all,\n\
                stubvirt a control domU (two Linux frontends with --frontends 2); without\n\
                it as dom0 of Xen 4.17.5 (builds Xen, the frontend kernel and initramfs\n\
                when missing)",
        run: demo::run_demo,
    },
    Command {
        name: "config",
        args: "[FILE]",
        about: "without FILE: the demo's dom0less nodes, both routes; with a system\n\
                description (tools/configs/two-frontends.toml): /chosen, stubvirt's and\n\
                every frontend's partial device tree, and an ImageBuilder configuration",
        run: config_command,
    },
    Command {
        name: "bench",
        args: "[--quick] [queue|datapath] | images",
        about: "criterion benchmarks (vs rust-vmm virtio-queue, blk/net data paths,\n\
                hypercalls and exits per request, footprint) and their tables; a full\n\
                run (every bench, no --quick) also sizes fresh images and rewrites the\n\
                generated tables of docs/performance.md; `images` alone: only the image\n\
                sizes against their budget",
        run: bench::run,
    },
    Command {
        name: "test",
        args: "",
        about: "run every test the project has (what CI runs)",
        run: test::run,
    },
    Command {
        name: "check",
        args: "",
        about: "the fast tier: fmt, every lint (host and both images), host tests; no QEMU",
        run: test::check,
    },
    Command {
        name: "fuzz",
        args: "[--seconds N] [--save-corpus] [--no-sanitizer] [TARGET...]",
        about: "run the libFuzzer targets N seconds each (default 60) and print executions",
        run: fuzz::run,
    },
    Command {
        name: "test-x86",
        args: "",
        about: "only the x86_64 image tests (image lints, budget, QEMU boots, Xen self-test)",
        run: |_| x86::boot::tests(),
    },
    Command {
        name: "test-arm64",
        args: "",
        about: "only the arm64 image tests (image lints, budget, QEMU boots, Xen dom0/domU\n\
                tests)",
        run: |_| arm64::test::tests(),
    },
    Command {
        name: "xen-x86",
        args: "[RUNS]",
        about: "boot the x86_64 image under Xen in QEMU RUNS times (median time)",
        run: x86::boot::xen_command,
    },
    Command {
        name: "xen-arm64",
        args: "[RUNS] [IMAGE]",
        about: "boot the arm64 image under Xen (as dom0, as domU) RUNS times each",
        run: arm64::boot::xen_command,
    },
    Command {
        name: "serve-arm64",
        args: "[IMAGE]",
        about: "stubvirt dom0 serving a stubvirt domU frontend over IOREQ (no Linux; the\n\
                test image)",
        run: arm64::serve::command,
    },
    Command {
        name: "grant-bench",
        args: "",
        about: "under the real Xen (arm64 dom0): map+copy+unmap vs GNTTABOP_copy per size;\n\
                rewrites its table in docs/performance.md",
        run: bench::grant::command,
    },
    Command {
        name: "xl-smoke",
        args: "[--xen-source PATH]",
        about: "the xl route: Xen 4.20 in QEMU with Debian trixie's Linux as dom0; its xl\n\
                creates stubvirt (discover=xenstore) and twice a frontend with a virtio\n\
                disk and NIC that stubvirt serves, under the FLASK policy (default source:\n\
                ../shared/xen/xen-4.20.4-hypervisor.tar.xz)",
        run: xl_route::command,
    },
    Command {
        name: "bench-e2e",
        args: "[--check] [--xen-source PATH]",
        about: "stubvirt beside Linux's PV backends (blkback, netback) in one boot of the\n\
                xl route: the same Linux frontends measure both (fe_io, TCP, ping);\n\
                rewrites its table in docs/performance.md (--check: a short run that\n\
                only checks every figure comes, as `cargo xtask test` does)",
        run: xl_route::side_by_side::command,
    },
];

fn config_command(args: &[String]) -> Result<(), String> {
    match args.first() {
        Some(file) => config::command(file),
        None => demo::config(args),
    }
}

/// The command named `name`.
pub fn find(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// One command's entry: its usage line(s), then what it does, indented.
pub fn entry(command: &Command) -> String {
    let mut text = format!("  {}", command.name);
    let mut args = command.args.lines();
    if let Some(first) = args.next() {
        text.push(' ');
        text.push_str(first);
    }
    text.push('\n');
    let under_name = " ".repeat(command.name.len() + 3);
    for more in args {
        text.push_str(&under_name);
        text.push_str(more);
        text.push('\n');
    }
    for line in command.about.lines() {
        text.push_str("        ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The whole usage text.
pub fn usage() -> String {
    let mut text = String::from("usage: cargo xtask <command> [--help]\n\ncommands:\n");
    for command in COMMANDS {
        text.push_str(&entry(command));
    }
    text.push_str("  help\n        this text\n");
    text
}

/// Whether `args` ask for the command's help rather than running it.
pub fn asks_for_help(args: &[String]) -> bool {
    args.iter().any(|a| a == "--help" || a == "-h")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_each_is_found() {
        for (n, command) in COMMANDS.iter().enumerate() {
            assert!(
                COMMANDS.iter().skip(n + 1).all(|c| c.name != command.name),
                "{} twice",
                command.name
            );
            assert!(std::ptr::eq(find(command.name).unwrap(), command));
        }
        assert!(find("nonsense").is_none());
    }

    #[test]
    fn the_usage_shows_every_command_with_its_arguments() {
        let text = usage();
        for command in COMMANDS {
            let entry = entry(command);
            assert!(text.contains(&entry), "{} missing", command.name);
            assert!(entry.starts_with(&format!("  {}", command.name)));
            let first_args = command.args.lines().next().unwrap_or("");
            assert!(entry.contains(first_args));
        }
        // Every line fits a 100-column terminal.
        assert!(text.lines().all(|l| l.len() <= 100), "{text}");
    }

    #[test]
    fn help_is_asked_by_either_flag() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(asks_for_help(&args(&["--help"])));
        assert!(asks_for_help(&args(&["--quick", "-h"])));
        assert!(!asks_for_help(&args(&["--quick"])));
    }
}
