use super::*;
use alloc::string::{String, ToString};
use alloc::vec;

const MIB: u64 = 1 << 20;

fn facts() -> Facts {
    Facts {
        backend_domid: 1,
        host_disk_bytes: Some(64 * MIB),
        host_disk: true,
        nic_ports: 3,
    }
}

fn disk(n: u32, backing: Backing, read_only: bool) -> Device {
    Device {
        window: Window::nth(n),
        kind: DeviceKind::Disk { backing, read_only },
    }
}

fn nic(n: u32, last: u8) -> Device {
    Device {
        window: Window::nth(n),
        kind: DeviceKind::Nic {
            mac: [0x02, 0, 0, 0, 0, last],
            mtu: 1500,
        },
    }
}

fn part(offset_mib: u64, length_mib: u64) -> Backing {
    Backing::HostDisk {
        offset: offset_mib * MIB,
        length: Some(length_mib * MIB),
    }
}

/// Two frontends as in the end-to-end run: a RAM disk, a range of the physical disk
/// each, and a NIC each.
fn two() -> Topology {
    let frontend = |domid: u16, offset| Frontend {
        domid,
        vcpus: 2,
        devices: vec![
            disk(0, Backing::RamDisk { mib: 16 }, false),
            nic(1, domid as u8),
            disk(2, part(offset, 32), false),
        ],
    };
    Topology {
        frontends: vec![frontend(2, 0), frontend(3, 32)],
        uplink: true,
    }
}

fn refused(t: &Topology) -> String {
    t.check(&facts()).expect_err("refused").to_string()
}

#[test]
fn windows_follow_xens_guest_layout() {
    assert_eq!(
        Window::nth(0),
        Window {
            base: 0x0200_0000,
            spi: 33
        }
    );
    assert_eq!(
        Window::nth(2),
        Window {
            base: 0x0200_0400,
            spi: 35
        }
    );
    assert_eq!(Window::nth(10).spi, LAST_SPI);
    assert_eq!(Window::nth(1).dt_interrupt(), 2);
}

#[test]
fn the_two_frontend_layout_and_the_default_pass() {
    assert_eq!(two().check(&facts()), Ok(()));
    assert_eq!(Topology::single(2, 2, 16, true).check(&facts()), Ok(()));
    let no_disk = Facts {
        host_disk: false,
        host_disk_bytes: None,
        ..facts()
    };
    assert_eq!(Topology::single(2, 2, 16, false).check(&no_disk), Ok(()));
}

#[test]
fn frontends_must_be_distinct_known_and_not_the_backend() {
    let mut t = two();
    t.frontends[1].domid = 2;
    assert_eq!(refused(&t), "frontend 2 is described twice");
    let mut t = two();
    t.frontends[0].domid = 1;
    assert_eq!(refused(&t), "frontend 1 is the backend's own domain");
    let mut t = two();
    t.frontends.clear();
    assert_eq!(refused(&t), "no frontend is described");
    let mut t = two();
    t.frontends[0].vcpus = 0;
    assert_eq!(refused(&t), "frontend 2: 0 vcpus, not 1..=64");
    let mut t = two();
    t.frontends[1].devices.clear();
    assert_eq!(refused(&t), "frontend 3 has no device");
    let mut t = two();
    let mut third = t.frontends[1].clone();
    third.domid = 4;
    t.frontends.push(third);
    assert_eq!(refused(&t), "3 frontends: at most 2");
}

#[test]
fn windows_and_spis_are_checked() {
    let mut t = two();
    t.frontends[0].devices[1].window = Window::nth(0);
    assert_eq!(
        refused(&t),
        "frontend 2: windows 0x2000000 and 0x2000000 overlap"
    );
    let mut t = two();
    t.frontends[0].devices[1].window.spi = 33;
    assert_eq!(refused(&t), "frontend 2: SPI 33 given to two devices");
    let mut t = two();
    t.frontends[0].devices[1].window.spi = 44;
    assert_eq!(
        refused(&t),
        "frontend 2: window 0x2000200 has SPI 44, outside 33..=43"
    );
    let mut t = two();
    t.frontends[0].devices[1].window.base = 0x0200_0100;
    assert_eq!(
        refused(&t),
        "frontend 2: window 0x2000100 not aligned to 0x200"
    );
    let mut t = two();
    t.frontends[0].devices[1].window.base = 0x0300_0000;
    assert_eq!(
        refused(&t),
        "frontend 2: window 0x3000000 outside 0x2000000..0x2100000"
    );
    // The same window in two frontends is normal: each has its own address space.
    assert_eq!(
        two().frontends[0].devices[0].window,
        two().frontends[1].devices[0].window
    );
}

#[test]
fn disk_ranges_are_checked_against_the_disk_and_each_other() {
    let mut t = two();
    t.frontends[1].devices[2] = disk(2, part(48, 32), false);
    assert_eq!(
        refused(&t),
        "frontend 3 disk 0x2000400: range ends at byte 83886080, past the end of the \
         physical disk (67108864 bytes)"
    );
    let mut t = two();
    t.frontends[1].devices[2] = disk(2, part(16, 32), false);
    assert_eq!(
        refused(&t),
        "frontend 2 disk 0x2000400 and frontend 3 disk 0x2000400 overlap on the physical \
         disk and one of them may write: share ranges read-only or not at all"
    );
    // Read-only sharing of the whole disk by both is fine; one writer is not.
    let whole = Backing::HostDisk {
        offset: 0,
        length: None,
    };
    let mut t = two();
    t.frontends[0].devices[2] = disk(2, whole, true);
    t.frontends[1].devices[2] = disk(2, whole, true);
    assert_eq!(t.check(&facts()), Ok(()));
    t.frontends[1].devices[2] = disk(2, whole, false);
    assert!(refused(&t).contains("overlap on the physical disk"));
    // Two writable ranges of one frontend may not overlap either.
    let mut t = two();
    t.frontends[1].devices[0] = disk(0, part(40, 8), false);
    assert!(refused(&t).starts_with("frontend 3 disk 0x2000000 and frontend 3 disk 0x2000400"));
    let mut t = two();
    t.frontends[0].devices[2] = disk(
        2,
        Backing::HostDisk {
            offset: 100,
            length: None,
        },
        false,
    );
    assert_eq!(
        refused(&t),
        "frontend 2 disk 0x2000400: range not in whole 512-byte sectors"
    );
    let mut t = two();
    t.frontends[0].devices[2] = disk(2, part(0, 0), false);
    assert_eq!(refused(&t), "frontend 2 disk 0x2000400: empty range");
    let mut t = two();
    t.frontends[0].devices[2] = disk(
        2,
        Backing::HostDisk {
            offset: 64 * MIB,
            length: None,
        },
        false,
    );
    assert!(refused(&t).contains("past the end of the physical disk"));
    let no_disk = Facts {
        host_disk: false,
        host_disk_bytes: None,
        ..facts()
    };
    assert_eq!(
        two()
            .check(&no_disk)
            .err()
            .map(|e| e.to_string())
            .as_deref(),
        Some("frontend 2 disk 0x2000400: backed by the physical disk, and there is none")
    );
    let mut t = two();
    t.frontends[0].devices[0] = disk(0, Backing::RamDisk { mib: 0 }, false);
    assert_eq!(
        refused(&t),
        "frontend 2 disk 0x2000000: RAM disk of 0 MiB, not 1..=1024"
    );
}

#[test]
fn nics_need_own_unicast_macs_sane_mtus_and_ports() {
    let mut t = two();
    t.frontends[1].devices[1] = nic(1, 2);
    assert_eq!(
        refused(&t),
        "frontend 2 nic 0x2000200 and frontend 3 nic 0x2000200 have the same MAC"
    );
    let mut t = two();
    t.frontends[0].devices[1].kind = DeviceKind::Nic {
        mac: [0x01, 0, 0x5e, 0, 0, 1],
        mtu: 1500,
    };
    assert_eq!(
        refused(&t),
        "frontend 2 nic 0x2000200: MAC is multicast or all zero"
    );
    let mut t = two();
    t.frontends[0].devices[1].kind = DeviceKind::Nic {
        mac: [2, 0, 0, 0, 0, 9],
        mtu: 9000,
    };
    assert_eq!(
        refused(&t),
        "frontend 2 nic 0x2000200: MTU 9000, not 68..=1500"
    );
    let mut t = two();
    t.frontends[0].devices.push(nic(3, 0x20));
    t.frontends[1].devices.push(nic(3, 0x30));
    assert_eq!(refused(&t), "4 NICs: the switch has 3 ports for frontends");
}
