//! The frontend's initramfs: Debian's `busybox-static` for arm64, the init script
//! (`tools/frontend/init.sh`: readiness handshake, block/net tests, `FRONTEND-RESULT`
//! lines) and the virtio modules of the frontend kernel, as a gzip-compressed `newc` cpio
//! archive written here (no `cpio` tool needed; `/dev/console` is made without root).
//!
//! busybox comes from the machine's own apt sources through a private apt configuration
//! for arm64 (own package lists and cache, the system's dpkg state untouched), then
//! `dpkg -x`; it is cached in `~/.cache/stubvirt/busybox-static-arm64-<version>/`.

use crate::process::{run, run_in, step};
use crate::xen_x86::cache_root;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const INIT: &str = include_str!("../frontend/init.sh");
const CACHE_PREFIX: &str = "busybox-static-arm64-";

/// One archive member.
pub enum Entry {
    Dir {
        path: String,
    },
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    CharDev {
        path: String,
        major: u32,
        minor: u32,
    },
}

/// A `newc` (SVR4 without CRC) cpio archive of `entries`, with its trailer.
pub fn cpio_newc(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut push = |ino: u32, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]| {
        let name_size = name.len() + 1;
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            if mode & 0o170000 == 0o040000 { 2 } else { 1 },
            0, // mtime: reproducible
            data.len() as u32,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name_size as u32,
            0, // check
        ];
        out.extend_from_slice(b"070701");
        for field in fields {
            out.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend_from_slice(data);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    };
    for (index, entry) in entries.iter().enumerate() {
        let ino = index as u32 + 1;
        match entry {
            Entry::Dir { path } => push(ino, path, 0o040755, (0, 0), &[]),
            Entry::File { path, mode, data } => push(ino, path, 0o100000 | mode, (0, 0), data),
            Entry::CharDev { path, major, minor } => {
                push(ino, path, 0o020600, (*major, *minor), &[])
            }
        }
    }
    push(0, "TRAILER!!!", 0, (0, 0), &[]);
    out
}

/// The cached static busybox for arm64, downloading it when missing.
pub fn busybox() -> Result<PathBuf, String> {
    let root = cache_root();
    if let Ok(dir) = std::fs::read_dir(&root) {
        let mut found: Vec<PathBuf> = dir
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(CACHE_PREFIX))
            .map(|e| e.path().join("busybox"))
            .filter(|p| p.exists())
            .collect();
        found.sort();
        if let Some(path) = found.pop() {
            return Ok(path);
        }
    }
    step("fetching busybox-static for arm64 (private apt configuration, machine's sources)");
    let apt = root.join("apt-arm64");
    let download = apt.join("download");
    let _ = std::fs::remove_dir_all(&download);
    for dir in [
        apt.join("lists/partial"),
        apt.join("cache"),
        download.clone(),
    ] {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let options = [
        "-o".to_string(),
        "APT::Architecture=arm64".to_string(),
        "-o".to_string(),
        "APT::Architectures::=arm64".to_string(),
        "-o".to_string(),
        format!("Dir::State::Lists={}", apt.join("lists").display()),
        "-o".to_string(),
        format!("Dir::Cache={}", apt.join("cache").display()),
        "-o".to_string(),
        "Dir::State::status=/dev/null".to_string(),
        "-o".to_string(),
        "APT::Sandbox::User=root".to_string(),
    ];
    run(Command::new("apt-get")
        .arg("-q")
        .args(&options)
        .arg("update"))?;
    run_in(
        &download,
        Command::new("apt-get")
            .arg("-q")
            .args(&options)
            .args(["download", "busybox-static:arm64"]),
    )?;
    let deb = std::fs::read_dir(&download)
        .map_err(|e| format!("{}: {e}", download.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or("apt-get download left no busybox-static .deb")?;
    // busybox-static_1%3a1.35.0-4+deb12u1+b1_arm64.deb -> 1%3a1.35.0-4+deb12u1+b1
    let stem = deb
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let version = stem
        .split('_')
        .nth(1)
        .unwrap_or("unknown")
        .replace("%3a", ":");
    let extracted = download.join("x");
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(&extracted))?;
    let dir = root.join(format!("{CACHE_PREFIX}{version}"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let target = dir.join("busybox");
    std::fs::copy(extracted.join("bin/busybox"), &target)
        .map_err(|e| format!("copy busybox: {e}"))?;
    let _ = std::fs::remove_dir_all(&download);
    step(&format!(
        "busybox-static {version} (arm64): {}",
        target.display()
    ));
    Ok(target)
}

/// Writes `out` (gzip-compressed cpio): busybox, `/init`, and `modules` (file names in
/// `module_dir`) under `/lib/modules/`.
pub fn build(
    out: &Path,
    busybox: &Path,
    module_dir: &Path,
    modules: &[&str],
) -> Result<(), String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut entries = Vec::new();
    for dir in [
        "bin",
        "dev",
        "etc",
        "lib",
        "lib/modules",
        "mnt",
        "proc",
        "sbin",
        "sys",
        "tmp",
        "usr",
        "usr/bin",
        "usr/sbin",
    ] {
        entries.push(Entry::Dir { path: dir.into() });
    }
    entries.push(Entry::CharDev {
        path: "dev/console".into(),
        major: 5,
        minor: 1,
    });
    entries.push(Entry::File {
        path: "bin/busybox".into(),
        mode: 0o755,
        data: read(busybox)?,
    });
    entries.push(Entry::File {
        path: "init".into(),
        mode: 0o755,
        data: INIT.as_bytes().to_vec(),
    });
    for module in modules {
        entries.push(Entry::File {
            path: format!("lib/modules/{module}"),
            mode: 0o644,
            data: read(&module_dir.join(module))?,
        });
    }
    let archive = cpio_newc(&entries);
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut gzip = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .map_err(|e| format!("cannot start gzip: {e}"))?;
    gzip.stdin
        .take()
        .ok_or("gzip stdin")?
        .write_all(&archive)
        .map_err(|e| format!("gzip: {e}"))?;
    let status = gzip.wait().map_err(|e| format!("gzip: {e}"))?;
    if !status.success() {
        return Err(format!("gzip failed: {status}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(header: &[u8], index: usize) -> u32 {
        let start = 6 + index * 8;
        let text = std::str::from_utf8(&header[start..start + 8]).unwrap();
        u32::from_str_radix(text, 16).unwrap()
    }

    #[test]
    fn newc_layout_is_aligned_and_terminated() {
        let archive = cpio_newc(&[
            Entry::Dir { path: "bin".into() },
            Entry::File {
                path: "init".into(),
                mode: 0o755,
                data: b"#!/bin/sh\n".to_vec(),
            },
            Entry::CharDev {
                path: "dev/console".into(),
                major: 5,
                minor: 1,
            },
        ]);
        assert_eq!(archive.len() % 4, 0);
        assert!(archive.starts_with(b"070701"));
        // First entry: a directory named "bin", header 110 bytes + "bin\0" = 114 -> 116.
        assert_eq!(field(&archive, 1), 0o040755);
        assert_eq!(field(&archive, 11), 4);
        assert_eq!(&archive[110..114], b"bin\0");
        let second = &archive[116..];
        assert!(second.starts_with(b"070701"));
        assert_eq!(field(second, 1), 0o100755);
        assert_eq!(field(second, 6), 10);
        // 110 + "init\0" = 115 -> 116, then 10 bytes of data -> 12.
        assert_eq!(&second[116..126], b"#!/bin/sh\n");
        let third = &second[128..];
        assert_eq!(field(third, 1), 0o020600);
        assert_eq!((field(third, 9), field(third, 10)), (5, 1));
        let trailer = b"TRAILER!!!\0";
        assert!(archive
            .windows(trailer.len())
            .any(|w| w == trailer.as_slice()));
    }

    #[test]
    fn init_script_reports_and_bounds_the_handshake() {
        assert!(INIT.starts_with("#!/bin/busybox sh\n"));
        for needed in [
            "backend=absent",
            "FRONTEND-RESULT",
            "done=1",
            "0x74726976",
            "insmod",
            "poweroff -f",
        ] {
            assert!(INIT.contains(needed), "{needed}");
        }
    }
}
