//! The frontend's programs besides busybox:
//! - Debian's e2fsprogs for arm64 (busybox has no `e2fsck`): `e2fsck` and `mke2fs`, the
//!   shared libraries they load (followed from their `NEEDED` entries, so a missing
//!   package is an error here rather than in the guest) and glibc's dynamic loader. The
//!   libraries go to `/lib/aarch64-linux-gnu`, which Debian's loader searches without an
//!   `ld.so.cache`. [`with_libraries`] does the same for any programs (dom0's Xen tools).
//! - `fe_io` (`tools/frontend/fe_io.c`), the block benchmark, cross-compiled static and
//!   cached by a hash of its source and flags.

use super::initramfs::HostFile;
use crate::apt;
use crate::arm64::xen::fnv1a64;
use crate::process::{run, step};
use crate::x86::xen::cache_root;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// e2fsprogs and what its programs link against (its `Pre-Depends` minus `libss2`, which
/// only `debugfs` uses).
const E2FSPROGS_PACKAGES: &[&str] = &[
    "e2fsprogs",
    "libext2fs2",
    "libcom-err2",
    "libblkid1",
    "libuuid1",
    "libc6",
];
const E2FSPROGS_PROGRAMS: &[&str] = &["sbin/e2fsck", "sbin/mke2fs"];
/// Where the packages keep their libraries (bookworm: `/lib`; later releases: `/usr/lib`).
const LIBRARY_DIRS: &[&str] = &["lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu"];
const READELF: &str = "aarch64-linux-gnu-readelf";

const FE_IO_SOURCE: &str = include_str!("../../frontend/fe_io.c");
const CC: &str = "aarch64-linux-gnu-gcc";
const CFLAGS: &[&str] = &["-static", "-O2", "-pthread", "-Wall", "-Wextra", "-Werror"];
const CROSS_PACKAGES: &[&str] = &[
    "gcc-aarch64-linux-gnu",
    "binutils-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
];

/// e2fsck, mke2fs, their libraries and the loader, as initramfs files.
pub fn e2fsprogs() -> Result<Vec<HostFile>, String> {
    let tree = apt::arm64::unpacked(apt::arm64::Suite::Machine, "e2fsprogs", E2FSPROGS_PACKAGES)?;
    with_libraries(&tree, E2FSPROGS_PROGRAMS, E2FSPROGS_PACKAGES)
}

/// `programs` (paths in `tree`, unpacked from `packages`) as initramfs files at the same
/// paths, with the shared libraries they load (followed from their `NEEDED` entries, so a
/// missing package is an error here rather than in the guest) in `/lib/aarch64-linux-gnu`,
/// and glibc's dynamic loader where their program interpreter names it.
pub fn with_libraries(
    tree: &Path,
    programs: &[&str],
    packages: &[&str],
) -> Result<Vec<HostFile>, String> {
    apt::ensure_installed(&["binutils-aarch64-linux-gnu"], "reading arm64 ELF files")?;
    let mut files = Vec::new();
    let mut loaders = BTreeSet::new();
    let mut pending: Vec<String> = Vec::new();
    for program in programs {
        let source = tree.join(program);
        let links = linkage(&source)?;
        loaders.extend(links.interpreter);
        pending.extend(links.needed);
        files.push(HostFile {
            path: program.to_string(),
            source,
            mode: 0o755,
        });
    }
    let mut seen = BTreeSet::new();
    while let Some(soname) = pending.pop() {
        if !seen.insert(soname.clone()) {
            continue;
        }
        let source = find_library(tree, &soname, packages)?;
        pending.extend(linkage(&source)?.needed);
        files.push(HostFile {
            path: format!("lib/aarch64-linux-gnu/{soname}"),
            source,
            mode: 0o755,
        });
    }
    for loader in loaders {
        let inside = loader.trim_start_matches('/').to_string();
        // Releases with a merged /usr ship `/lib/...` as `usr/lib/...`.
        let source = [tree.join(&inside), tree.join("usr").join(&inside)]
            .into_iter()
            .find(|path| path.exists())
            .ok_or_else(|| format!("no {loader} in {}", tree.display()))?;
        files.push(HostFile {
            source,
            path: inside,
            mode: 0o755,
        });
    }
    Ok(files)
}

fn find_library(tree: &Path, soname: &str, packages: &[&str]) -> Result<PathBuf, String> {
    LIBRARY_DIRS
        .iter()
        .map(|dir| tree.join(dir).join(soname))
        .find(|path| path.exists())
        .ok_or_else(|| {
            format!(
                "{soname} is needed but none of the packages {} has it ({})",
                packages.join(" "),
                tree.display()
            )
        })
}

/// What an ELF file needs to run: its program interpreter and `NEEDED` libraries.
#[derive(Debug, Default, PartialEq)]
struct Linkage {
    interpreter: Option<String>,
    needed: Vec<String>,
}

fn linkage(file: &Path) -> Result<Linkage, String> {
    let out = Command::new(READELF)
        .args(["--wide", "--program-headers", "--dynamic"])
        .arg(file)
        .output()
        .map_err(|e| format!("cannot start {READELF}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{READELF} {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse_linkage(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses `readelf --program-headers --dynamic` output.
fn parse_linkage(text: &str) -> Linkage {
    let between = |line: &str, start: &str| {
        let rest = line.split(start).nth(1)?;
        Some(rest.split(']').next()?.trim().to_string())
    };
    Linkage {
        interpreter: text
            .lines()
            .find_map(|l| between(l, "[Requesting program interpreter:")),
        needed: text
            .lines()
            .filter(|l| l.contains("(NEEDED)"))
            .filter_map(|l| between(l, "Shared library: ["))
            .collect(),
    }
}

/// The static arm64 `fe_io`, compiled when its source or flags changed.
pub fn fe_io() -> Result<PathBuf, String> {
    compile_static("fe_io", FE_IO_SOURCE)
}

/// The static arm64 `fe_flood` (`tools/frontend/fe_flood.c`).
pub fn fe_flood() -> Result<PathBuf, String> {
    compile_static("fe_flood", include_str!("../../frontend/fe_flood.c"))
}

/// The static arm64 `fe_tcp` (`tools/frontend/fe_tcp.c`), the side-by-side bench's TCP
/// streams between two frontends.
pub fn fe_tcp() -> Result<PathBuf, String> {
    compile_static("fe_tcp", include_str!("../../frontend/fe_tcp.c"))
}

/// A one-file C program for the frontend, static arm64, cached by source and flags.
fn compile_static(name: &str, source_text: &str) -> Result<PathBuf, String> {
    let mut key_parts = vec![source_text, CC];
    key_parts.extend(CFLAGS);
    let dir = cache_root().join(format!("{name}-{:016x}", fnv1a64(&key_parts)));
    let binary = dir.join(name);
    if binary.exists() {
        return Ok(binary);
    }
    apt::ensure_installed(
        CROSS_PACKAGES,
        "cross-compiling the frontend's programs (static, arm64)",
    )?;
    step(&format!(
        "compiling {name} (tools/frontend/{name}.c, static arm64)"
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let source = dir.join(format!("{name}.c"));
    std::fs::write(&source, source_text).map_err(|e| format!("{}: {e}", source.display()))?;
    // Compiled under another name first: an interrupted build leaves no binary.
    let partial = dir.join(format!("{name}.partial"));
    run(Command::new(CC)
        .args(CFLAGS)
        .arg("-o")
        .arg(&partial)
        .arg(&source))?;
    std::fs::rename(&partial, &binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    Ok(binary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linkage_is_read_from_readelf_output() {
        let text = "\
Program Headers:
  INTERP         0x000238 0x0000000000000238 0x0000000000000238 0x00001b 0x00001b R   0x1
      [Requesting program interpreter: /lib/ld-linux-aarch64.so.1]
Dynamic section at offset 0x5fd18 contains 31 entries:
  Tag        Type                         Name/Value
 0x0000000000000001 (NEEDED)             Shared library: [libext2fs.so.2]
 0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]
 0x000000000000000e (SONAME)             Library soname: [libcom_err.so.2]
";
        assert_eq!(
            parse_linkage(text),
            Linkage {
                interpreter: Some("/lib/ld-linux-aarch64.so.1".into()),
                needed: vec!["libext2fs.so.2".into(), "libc.so.6".into()],
            }
        );
        assert_eq!(
            parse_linkage("There is no dynamic section"),
            Linkage::default()
        );
    }

    #[test]
    fn init_runs_the_programs_where_they_are_put() {
        let init = crate::frontend::initramfs::INIT;
        for program in E2FSPROGS_PROGRAMS {
            assert!(init.contains(&format!("=/{program}\n")), "{program}");
        }
        assert!(init.contains("fe_io $1 "));
    }

    #[test]
    fn fe_io_measures_what_the_summary_reads() {
        for key in [
            "rand4k_%s_qd%d_iops",
            "seq1m_%s_mbs",
            "O_DIRECT",
            "DEPTH 32",
            "SEED",
        ] {
            assert!(FE_IO_SOURCE.contains(key), "{key}");
        }
    }
}
