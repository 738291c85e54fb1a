//! The frontend's initramfs: the init script (`tools/frontend/init.sh`: readiness
//! handshake, block/net tests, `FRONTEND-RESULT` lines) and the files the demo gives it
//! (Debian's `busybox-static` and e2fsprogs for arm64, `fe_io`, the virtio modules of the
//! frontend kernel), as a gzip-compressed `newc` cpio archive written here (no `cpio` tool
//! needed; `/dev/console` is made without root).
//!
//! busybox comes from the machine's own apt sources through the private arm64 apt
//! configuration of [`apt::arm64`].

use crate::apt;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const INIT: &str = include_str!("../../frontend/init.sh");

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
    let tree = apt::arm64::unpacked(
        apt::arm64::Suite::Machine,
        "busybox-static",
        &["busybox-static"],
    )?;
    Ok(tree.join("bin/busybox"))
}

/// A host file for the archive.
pub struct HostFile {
    /// Path inside the archive, without the leading `/`.
    pub path: String,
    pub source: PathBuf,
    pub mode: u32,
}

/// Directories the init script expects even when no file lands in them.
const DIRS: &[&str] = &[
    "bin", "dev", "etc", "lib", "mnt", "proc", "sbin", "sys", "tmp", "usr", "usr/bin", "usr/sbin",
];

/// Writes `out` (gzip-compressed cpio) with the [`entries`] for `init` (the script the
/// kernel runs as `/init`) and `files`.
pub fn build(out: &Path, init: &str, files: &[HostFile]) -> Result<(), String> {
    let archive = cpio_newc(&entries(init, files)?);
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

/// `/init`, `/dev/console` and `files` (symbolic links in the sources followed), with every
/// parent directory they need.
fn entries(init: &str, files: &[HostFile]) -> Result<Vec<Entry>, String> {
    let mut dirs: BTreeSet<String> = DIRS.iter().map(|d| d.to_string()).collect();
    for file in files {
        let mut parent = Path::new(&file.path).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(dir.display().to_string());
            parent = dir.parent();
        }
    }
    // BTreeSet order puts every parent before its children.
    let mut entries: Vec<Entry> = dirs.into_iter().map(|path| Entry::Dir { path }).collect();
    entries.push(Entry::CharDev {
        path: "dev/console".into(),
        major: 5,
        minor: 1,
    });
    entries.push(Entry::File {
        path: "init".into(),
        mode: 0o755,
        data: init.as_bytes().to_vec(),
    });
    for file in files {
        entries.push(Entry::File {
            path: file.path.clone(),
            mode: file.mode,
            data: std::fs::read(&file.source)
                .map_err(|e| format!("{}: {e}", file.source.display()))?,
        });
    }
    Ok(entries)
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
    fn entries_bring_their_parent_directories_first() {
        let source = std::env::temp_dir().join(format!("initramfs-test-{}", std::process::id()));
        std::fs::write(&source, b"lib").unwrap();
        let files = [HostFile {
            path: "lib/aarch64-linux-gnu/libc.so.6".into(),
            source: source.clone(),
            mode: 0o755,
        }];
        let entries = entries(INIT, &files).unwrap();
        std::fs::remove_file(&source).unwrap();
        let position = |wanted: &str| {
            entries.iter().position(|e| match e {
                Entry::Dir { path } | Entry::File { path, .. } | Entry::CharDev { path, .. } => {
                    path == wanted
                }
            })
        };
        let dir = position("lib/aarch64-linux-gnu").unwrap();
        let file = position("lib/aarch64-linux-gnu/libc.so.6").unwrap();
        assert!(position("lib").unwrap() < dir && dir < file);
        assert!(position("init").is_some() && position("dev/console").is_some());
        assert!(matches!(&entries[file], Entry::File { data, .. } if data == b"lib"));
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
            "drivers_autoprobe",
            "serial",
            "stubvirt-ramdisk",
            "stubvirt-disk",
            "stage=disk_image sha256=",
            "$E2FSCK -fn",
            "fe_io ",
            "fe_tcp_port",
        ] {
            assert!(INIT.contains(needed), "{needed}");
        }
    }
}
