//! Our Xen ABI structs against Xen's own C headers (Debian `libxen-dev`, installed by
//! `cargo xtask test`): generated C programs print sizes, field offsets and bitfield
//! encodings, and each must equal what the Rust definitions give.

use kernel::xen::abi::dm_op::Ioreq;
use kernel::xen::abi::layout::{CProgram, RustLine, TABLE};
use std::path::PathBuf;
use std::process::Command;

/// Compiles `source` against the system's Xen headers, runs it, returns its stdout.
fn run_c(name: &str, source: &str) -> Result<String, String> {
    if !std::path::Path::new("/usr/include/xen/grant_table.h").exists() {
        return Err(
            "Xen's public headers are missing: install Debian's libxen-dev \
                    (cargo xtask test does)"
                .into(),
        );
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("abi_layout");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let source_path = dir.join(format!("{name}.c"));
    let binary = dir.join(name);
    std::fs::write(&source_path, source).map_err(|e| e.to_string())?;
    let status = Command::new("cc")
        .args(["-std=gnu11", "-Wall", "-Werror", "-o"])
        .arg(&binary)
        .arg(&source_path)
        .status()
        .map_err(|e| format!("cannot run cc: {e}"))?;
    if !status.success() {
        return Err(format!("{} did not compile", source_path.display()));
    }
    let output = Command::new(&binary).output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!("{} failed: {}", binary.display(), output.status));
    }
    String::from_utf8(output.stdout).map_err(|e| e.to_string())
}

#[test]
fn every_struct_matches_the_xen_headers() {
    let c_output = run_c("layout", &CProgram.to_string()).expect("C layout program");
    let c_lines: Vec<&str> = c_output.lines().collect();
    let rust_lines: Vec<String> = TABLE.iter().map(|s| RustLine(s).to_string()).collect();
    assert_eq!(c_lines.len(), rust_lines.len());
    let mismatches: Vec<String> = c_lines
        .iter()
        .zip(&rust_lines)
        .filter(|(c, r)| *c != r)
        .map(|(c, r)| format!("  C:    {c}\n  Rust: {r}"))
        .collect();
    assert!(
        mismatches.is_empty(),
        "layout mismatches (name|size offsets...):\n{}",
        mismatches.join("\n")
    );
    println!("{} structs match Xen's headers", rust_lines.len());
}

/// `struct ioreq` packs state/data_is_ptr/dir/df into C bitfields, which `offsetof` cannot
/// see: set them in C and decode the byte with our accessors.
#[test]
fn ioreq_bitfields_match_the_xen_headers() {
    let program = r#"
#define __XEN_TOOLS__ 1
#include <stdio.h>
#include <string.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/xen.h>
#include <xen/hvm/ioreq.h>
int main(void) {
    struct ioreq r;
    size_t at = offsetof(struct ioreq, type) - 1;
    memset(&r, 0, sizeof r);
    r.state = 3; r.data_is_ptr = 1; r.dir = 1; r.df = 0;
    printf("%zu %u\n", at, ((unsigned char *)&r)[at]);
    return 0;
}
"#;
    let output = run_c("ioreq", program).expect("C ioreq program");
    let mut words = output.split_whitespace();
    let offset: usize = words.next().expect("offset").parse().expect("number");
    let byte: u8 = words.next().expect("byte").parse().expect("number");
    assert_eq!(offset, std::mem::offset_of!(Ioreq, bits));
    let decoded = Ioreq {
        bits: byte,
        ..Default::default()
    };
    assert_eq!(decoded.state(), 3);
    assert!(decoded.data_is_ptr());
    assert_eq!(decoded.dir(), 1);
    assert!(!decoded.df());
}
