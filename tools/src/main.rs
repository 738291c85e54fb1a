//! `cargo xtask`: the stubvirt host CLI.
//!
//! Every subcommand is a plain function in its own module, named once in
//! [`commands::COMMANDS`]; this file only dispatches.

mod apt;
mod arm64;
mod bench;
mod build;
mod commands;
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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str).unwrap_or("help");
    let rest = args.get(1..).unwrap_or(&[]);
    let result = match commands::find(command) {
        Some(found) if commands::asks_for_help(rest) => {
            print!("usage: cargo xtask {}", commands::entry(found).trim_start());
            Ok(())
        }
        Some(found) => (found.run)(rest),
        None if ["help", "-h", "--help"].contains(&command) => {
            print!("{}", commands::usage());
            Ok(())
        }
        None => Err(format!(
            "unknown command `{command}`\n{}",
            commands::usage()
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}
