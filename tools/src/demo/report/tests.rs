use super::*;
use std::path::PathBuf;

fn transcript(lines: &[&str]) -> Transcript {
    Transcript {
        lines: lines
            .iter()
            .map(|l| (Duration::from_secs(1), format!("(XEN) DOM1: {l}")))
            .collect(),
        end: End::TimedOut,
        log: PathBuf::from("demo.log"),
    }
}

const SHA_DISK: &str = "d15cd15cd15cd15cd15cd15cd15cd15cd15cd15cd15cd15cd15cd15cd15cd15c";
const SHA_TCP: &str = "7c907c907c907c907c907c907c907c907c907c907c907c907c907c907c907c90";

fn host() -> HostSide {
    HostSide {
        image_sha256: Ok(SHA_DISK.to_string()),
        tcp_sha256: SHA_TCP.to_string(),
        tcp_bytes: 4194304,
        tcp_port: 40000,
        tcp_served: vec![],
        upload_port: 40001,
        upload_received: vec![Received {
            bytes: 4194304,
            seconds: 3.0,
            sha256: Ok(SHA_TCP.to_string()),
            error: None,
        }],
        backend: Some(ExpectedBackend {
            domid: 0,
            dom0: true,
        }),
    }
}

/// A run in which everything passed.
fn passing() -> Vec<String> {
    let mut lines = vec![
        "STUBVIRT-DOMAIN domid=0 xen=4.17.5 caps=unknown(errno13) dom0=1 direct_mapped=1".to_string(),
        "STUBVIRT-READY frontend=1 devices=blk@0x2000000,net@0x2000200,disk@0x2000400 uplink=52:54:00:12:34:56 uplink_irq=78".into(),
        "FRONTEND-RESULT stage=handshake backend=ready blk=ready net=ready disk=ready waited_s=0.03 tries=1".into(),
        "FRONTEND-RESULT stage=probe ramdisk=/dev/vda disk=/dev/vdb eth0=yes".into(),
        "FRONTEND-RESULT stage=probe serials=vda:stubvirt-ramdisk,vdb:stubvirt-disk".into(),
        format!("FRONTEND-RESULT stage=disk_image sha256={SHA_DISK}"),
        "FRONTEND-RESULT stage=net mac=52:54:00:57:56:01 mtu=1500 carrier=1 operstate=up".into(),
        "FRONTEND-RESULT stage=net ip=10.0.2.15 gw=10.0.2.2 ping_gw=1 tx_packets=9 rx_packets=9".into(),
        "FRONTEND-RESULT stage=tcp rc=0 bytes=4194304 s=2.00".into(),
        format!("FRONTEND-RESULT stage=tcp sha256={SHA_TCP}"),
        "FRONTEND-RESULT stage=tcp_up rc=0 s=4.00".into(),
        "STUBVIRT-COUNTERS ioreqs=9 ioreq_errors=0 blk=req:5,err:0 disk=req:4,err:0 uplink=in:3,out:3,seg:12,drop:0,csum:0,tx_err:0,irqs:2".into(),
        "FRONTEND-RESULT done=1 uptime=99".into(),
    ];
    for (stage, perf, fs) in [("blk", "blk_perf", "fs"), ("disk", "disk_perf", "disk_fs")] {
        lines.push(format!(
            "FRONTEND-RESULT stage={stage} dev=/dev/vdX size_bytes=1"
        ));
        lines.push(format!(
            "FRONTEND-RESULT stage={stage}_verify ok=1 sha256=ab"
        ));
        lines.push(format!(
            "FRONTEND-RESULT stage={fs} mkfs=ext2 ok=1 files=48 fsck=clean"
        ));
        for key in super::blk::FE_IO_KEYS {
            lines.push(format!("FRONTEND-RESULT stage={perf} {key}=7"));
        }
    }
    lines
}

fn run(lines: &[String], host: &HostSide) -> Result<String, String> {
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    summary(&transcript(&lines), "demo:\n", host)
}

#[test]
fn results_are_parsed_by_stage() {
    let lines = vec![
        (
            Duration::ZERO,
            "(XEN) DOM1: FRONTEND-RESULT stage=handshake backend=absent polled_s=90.02 tries=170"
                .to_string(),
        ),
        (
            Duration::ZERO,
            "FRONTEND-RESULT stage=blk_perf seq1m_read_mbs=50.1".to_string(),
        ),
        (
            Duration::ZERO,
            "FRONTEND-RESULT stage=blk_perf rand4k_read_qd1_iops=489".to_string(),
        ),
        (
            Duration::ZERO,
            "FRONTEND-RESULT done=1 uptime=95.1".to_string(),
        ),
    ];
    let r = results(&lines);
    assert_eq!(get(&r, "handshake", "backend"), "absent");
    assert_eq!(get(&r, "handshake", "tries"), "170");
    assert_eq!(get(&r, "done", "done"), "1");
    assert_eq!(get(&r, "blk_perf", "seq1m_read_mbs"), "50.1");
    assert_eq!(get(&r, "blk_perf", "rand4k_read_qd1_iops"), "489");
    assert_eq!(get(&r, "blk_perf", "absent"), "?");
}

#[test]
fn an_uplink_interrupt_that_never_came_fails() {
    let lines: Vec<String> = passing()
        .into_iter()
        .map(|l| l.replace(",irqs:2", ",irqs:0"))
        .collect();
    let text = run(&lines, &host()).unwrap_err();
    assert!(text.contains("FAIL uplink irq"), "{text}");
    // A polled uplink promises no interrupt: nothing to check.
    let polled: Vec<String> = lines
        .into_iter()
        .map(|l| l.replace("uplink_irq=78", "uplink_irq=polled"))
        .collect();
    assert!(run(&polled, &host()).is_ok());
}

#[test]
fn an_upload_that_was_cut_short_or_never_segmented_fails() {
    let mut short_upload = host();
    if let Some(c) = short_upload.upload_received.first_mut() {
        c.bytes = 1000;
    }
    let text = run(&passing(), &short_upload).unwrap_err();
    assert!(text.contains("FAIL tcp up"), "{text}");
    assert!(text.contains("received 1000 bytes"), "{text}");
    // Intact bytes, but no GSO frame was cut: the offload was not exercised.
    let unsegmented: Vec<String> = passing()
        .into_iter()
        .map(|l| l.replace(",seg:12,", ",seg:0,"))
        .collect();
    let text = run(&unsegmented, &host()).unwrap_err();
    assert!(text.contains("FAIL tcp up"), "{text}");
    let mut nothing = host();
    nothing.upload_received.clear();
    let text = run(&passing(), &nothing).unwrap_err();
    assert!(text.contains("no connection"), "{text}");
}

#[test]
fn a_complete_run_passes_with_figures_and_counters() {
    let text = run(&passing(), &host()).unwrap();
    assert!(!text.contains("FAIL"), "{text}");
    assert!(text.contains("read QD1 7 / QD32 7 IOPS"), "{text}");
    assert!(text.contains("4194304 bytes from the host's 127.0.0.1:40000 in 2.00 s = 2.00 MB/s"));
    assert!(
        text.contains("4194304 bytes to the host's 127.0.0.1:40001 in 4.00 s = 1.00 MB/s"),
        "{text}"
    );
    assert!(text.contains(&format!(
        "holds what the frontend wrote (sha256 {SHA_DISK})"
    )));
    assert!(
        text.contains("(last of 1) ioreqs=9 ioreq_errors=0\n"),
        "{text}"
    );
    assert!(
        text.contains(" uplink=in:3,out:3,seg:12,drop:0,csum:0,tx_err:0,irqs:2\n"),
        "{text}"
    );
}

#[test]
fn the_backend_domain_must_be_what_the_route_boots() {
    let text = run(&passing(), &host()).unwrap();
    assert!(
        text.contains("ok   domain     domid=0 xen=4.17.5"),
        "{text}"
    );
    // The same transcript judged as the route with no dom0: wrong domid, and dom0.
    let mut no_dom0 = host();
    no_dom0.backend = Some(ExpectedBackend {
        domid: 1,
        dom0: false,
    });
    assert!(run(&passing(), &no_dom0)
        .unwrap_err()
        .contains("FAIL domain"));
    let with = |line: &str| {
        let mut lines = passing();
        lines[0] = line.to_string();
        run(&lines, &no_dom0)
    };
    let control = "STUBVIRT-DOMAIN domid=1 xen=4.22.0 caps=control dom0=0 direct_mapped=1";
    assert!(with(control).is_ok());
    // A hardware domain, or one whose DMA addresses are not machine addresses, fails.
    let hardware = control.replace("caps=control", "caps=control,hardware");
    assert!(with(&hardware).unwrap_err().contains("FAIL domain"));
    let translated = control.replace("direct_mapped=1", "direct_mapped=0");
    assert!(with(&translated).unwrap_err().contains("FAIL domain"));
    let mut silent = passing();
    silent.remove(0);
    assert!(run(&silent, &host())
        .unwrap_err()
        .contains("printed no STUBVIRT-DOMAIN line"));
}

#[test]
fn a_host_image_other_than_what_the_frontend_read_fails() {
    let mut host = host();
    host.image_sha256 = Ok("0".repeat(64));
    let text = run(&passing(), &host).unwrap_err();
    assert!(text.contains("FAIL host image"), "{text}");
}

#[test]
fn wrong_tcp_bytes_fail_and_show_what_the_host_served() {
    let mut lines = passing();
    lines.retain(|l| !l.contains("stage=tcp sha256"));
    lines.push(format!(
        "FRONTEND-RESULT stage=tcp sha256={}",
        "1".repeat(64)
    ));
    let mut host = host();
    host.tcp_served = vec![Served {
        bytes: 65536,
        seconds: 30.0,
        error: Some("Broken pipe".into()),
    }];
    let text = run(&lines, &host).unwrap_err();
    assert!(
        text.contains("1 connection(s): 65536 bytes in 30.00 s (Broken pipe)"),
        "{text}"
    );
}

#[test]
fn without_disk_and_uplink_the_failures_are_named() {
    let lines: Vec<String> = passing()
        .into_iter()
        .filter(|l| !l.contains("stage=disk") && !l.contains("tcp") && !l.contains("READY"))
        .map(|l| {
            l.replace("disk=ready", "disk=absent")
                .replace("disk=/dev/vdb", "disk=none")
                .replace("ping_gw=1", "ping_gw=0")
        })
        .chain(["STUBVIRT-READY frontend=1 devices=blk@0x2000000,net@0x2000200".to_string()])
        .collect();
    let text = run(&lines, &host()).unwrap_err();
    for expected in [
        "FAIL devices    blk=ready net=ready disk=absent",
        "stubvirt serves no disk",
        "stubvirt reports no uplink",
        "FAIL disk       no block device with serial stubvirt-disk\n",
        "FAIL ping",
        "FAIL tcp        nc exit ?: got ? of 4194304 bytes",
        "the host served no connection",
        "ok   RAM disk",
    ] {
        assert!(text.contains(expected), "{expected} in\n{text}");
    }
}

#[test]
fn an_absent_backend_ends_the_summary() {
    let lines =
        ["FRONTEND-RESULT stage=handshake backend=absent polled_s=20.1 tries=40".to_string()];
    let text = run(&lines, &host()).unwrap_err();
    assert!(text.contains("BACKEND NEVER CAME UP"));
    assert!(text.contains("for 20.1 s (40 polls)"));
    assert!(!text.contains("RAM disk"));
}

#[test]
fn a_missing_fsck_or_figure_fails() {
    let mut lines = passing();
    lines.retain(|l| !l.contains("stage=fs ") && !l.contains("disk_perf seq1m_read"));
    lines.push("FRONTEND-RESULT stage=fs mkfs=ext2 ok=1 files=48 fsck=rc4".into());
    let text = run(&lines, &host()).unwrap_err();
    assert!(text.contains("FAIL RAM ext2"), "{text}");
    assert!(text.contains("e2fsck -fn: rc4"), "{text}");
    assert!(text.contains("FAIL disk fe_io"), "{text}");
}

#[test]
fn tokens_are_found_by_key() {
    let line = "frontend=1 devices=blk@0x2000000,disk@0x2000400 uplink=52:54:00:12:34:56";
    assert_eq!(token(line, "devices"), "blk@0x2000000,disk@0x2000400");
    assert_eq!(token(line, "uplink"), "52:54:00:12:34:56");
    assert_eq!(token(line, "vcpus"), "");
}
