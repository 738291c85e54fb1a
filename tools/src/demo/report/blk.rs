//! The block checks of the summary: each disk's patterned write and read-back, its ext2
//! round trip, its `fe_io` figures, and the host's raw image against what the frontend
//! wrote.

use super::{get, HostSide, Results, Summary};

/// Where the frontend reports on one block device.
pub(super) struct BlockStages {
    /// Name in the summary; the check lines are "<name>", "<short> ext2", "<short> fe_io".
    name: &'static str,
    short: &'static str,
    /// Key in the `probe` stage, and the virtio-blk serial it stands for.
    probe: &'static str,
    serial: &'static str,
    /// Stages: the patterned write (`<verify>` and `<verify>_verify`), ext2, fe_io.
    verify: &'static str,
    fs: &'static str,
    perf: &'static str,
}

pub(super) const RAM_DISK: BlockStages = BlockStages {
    name: "RAM disk",
    short: "RAM",
    probe: "ramdisk",
    serial: "stubvirt-ramdisk",
    verify: "blk",
    fs: "fs",
    perf: "blk_perf",
};

const HOST_DISK: BlockStages = BlockStages {
    name: "disk",
    short: "disk",
    probe: "disk",
    serial: "stubvirt-disk",
    verify: "disk",
    fs: "disk_fs",
    perf: "disk_perf",
};

/// The checks of one block device; false when the frontend found no such device.
pub(super) fn block_device(s: &mut Summary, r: &Results, d: &BlockStages) -> bool {
    if get(r, "probe", d.probe) == "none" {
        let detail = format!("no block device with serial {}", d.serial);
        s.check(false, d.name, &detail);
        return false;
    }
    verify(s, r, d.name, d.verify);
    ext2(s, r, &format!("{} ext2", d.short), d.fs);
    fe_io(s, r, &format!("{} fe_io", d.short), d.perf);
    true
}

/// The host disk's checks, and the host's own: its raw image holds what the frontend read.
pub(super) fn real_disk(s: &mut Summary, r: &Results, host: &HostSide) {
    if !block_device(s, r, &HOST_DISK) {
        return;
    }
    let reported = get(r, "disk_image", "sha256");
    let (passed, detail) = match &host.image_sha256 {
        Ok(image) if image == reported => (
            true,
            format!("the host's raw image file holds what the frontend wrote (sha256 {image})"),
        ),
        Ok(image) => (
            false,
            format!("raw image sha256 {image}, the frontend read {reported} from the disk"),
        ),
        Err(e) => (false, format!("cannot hash the raw image: {e}")),
    };
    s.check(passed, "host image", &detail);
}

/// The patterned whole-device write of stage `stage` (`<stage>_verify` holds the result).
fn verify(s: &mut Summary, r: &Results, what: &str, stage: &str) {
    let v = format!("{stage}_verify");
    let passed = get(r, &v, "ok") == "1";
    s.check(
        passed,
        what,
        &format!(
            "{} {} bytes written in 1 MiB regions with requests of {} B ({} O_DIRECT, {} \
             buffered+fsync regions), flushed, read back O_DIRECT and buffered: {} (sha256 {})",
            get(r, stage, "dev"),
            get(r, stage, "size_bytes"),
            get(r, &v, "sizes"),
            get(r, &v, "direct_regions"),
            get(r, &v, "buffered_regions"),
            if passed {
                "identical"
            } else {
                "MISMATCH/FAILED"
            },
            get(r, &v, "sha256"),
        ),
    );
}

fn ext2(s: &mut Summary, r: &Results, what: &str, stage: &str) {
    let fs_ok = get(r, stage, "ok") == "1";
    let fsck = get(r, stage, "fsck");
    s.check(
        fs_ok && fsck == "clean",
        what,
        &format!(
            "mke2fs + mount + create/copy/delete + umount + remount and compare: {}; \
             e2fsck -fn: {fsck}",
            if fs_ok { "ok" } else { "FAILED" }
        ),
    );
}

pub(super) const FE_IO_KEYS: [&str; 6] = [
    "rand4k_read_qd1_iops",
    "rand4k_read_qd32_iops",
    "rand4k_write_qd1_iops",
    "rand4k_write_qd32_iops",
    "seq1m_read_mbs",
    "seq1m_write_mbs",
];

fn fe_io(s: &mut Summary, r: &Results, what: &str, stage: &str) {
    let value = |key: &str| get(r, stage, key);
    let complete = FE_IO_KEYS.iter().all(|k| value(k) != "?");
    s.check(
        complete,
        what,
        &format!(
            "O_DIRECT 4 KiB random read QD1 {} / QD32 {} IOPS, write QD1 {} / QD32 {} IOPS; \
             1 MiB sequential read {} / write {} MB/s",
            value(FE_IO_KEYS[0]),
            value(FE_IO_KEYS[1]),
            value(FE_IO_KEYS[2]),
            value(FE_IO_KEYS[3]),
            value(FE_IO_KEYS[4]),
            value(FE_IO_KEYS[5]),
        ),
    );
}
