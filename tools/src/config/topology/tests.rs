use super::*;
use devices::topology::device_tree;
use std::process::{Command, Stdio};

const EXAMPLE: &str = include_str!("../../../configs/two-frontends.toml");

#[test]
fn the_example_describes_two_frontends() {
    let d = parse(EXAMPLE).unwrap();
    assert_eq!(d.backend_domid, 1);
    assert!(d.topology.uplink);
    let domids: Vec<u16> = d.topology.frontends.iter().map(|f| f.domid).collect();
    assert_eq!(domids, [2, 3]);
    let second = &d.topology.frontends[1];
    assert_eq!(second.vcpus, 2);
    let bases: Vec<u64> = second.devices.iter().map(|d| d.window.base).collect();
    assert_eq!(bases, [0x0200_0000, 0x0200_0200, 0x0200_0400]);
    assert_eq!(
        second.devices[2].kind,
        DeviceKind::Disk {
            backing: Backing::HostDisk {
                offset: 32 * MIB,
                length: Some(32 * MIB)
            },
            read_only: false
        }
    );
    assert_eq!(
        second.devices[1].kind,
        DeviceKind::Nic {
            mac: [0x52, 0x54, 0, 0x57, 0x56, 2],
            mtu: 1500
        }
    );
    assert_eq!(d.frontends[0].memory_mib, 256);
}

#[test]
fn the_example_is_what_the_two_frontend_demo_boots() {
    use crate::demo::layout::{demo_topology_for, Route, FRONTEND_MEMORY_KB};
    let d = parse(EXAMPLE).unwrap();
    assert_eq!(d.topology, demo_topology_for(Route::ControlDomU, 2));
    assert!(d
        .frontends
        .iter()
        .all(|f| f.memory_mib * 1024 == FRONTEND_MEMORY_KB));
}

#[test]
fn mistakes_are_named_in_one_line() {
    let typo = EXAMPLE.replace("ramdisk_mib = 16", "ramdisk_mb = 16");
    let err = parse(&typo).unwrap_err();
    // toml names the table the field is in: the first disk's.
    let table = 1 + EXAMPLE
        .lines()
        .position(|l| l == "[[frontend.disk]]")
        .unwrap();
    let expected = format!("line {table}: unknown field `ramdisk_mb`");
    assert!(err.starts_with(&expected), "{err}");
    let overlap = EXAMPLE.replace("host_disk_offset_mib = 32", "host_disk_offset_mib = 16");
    assert_eq!(
        parse(&overlap).unwrap_err(),
        "frontend 2 disk 0x2000400 and frontend 3 disk 0x2000400 overlap on the physical \
         disk and one of them may write: share ranges read-only or not at all"
    );
    let shared_read_only = overlap.replace(
        "host_disk_length_mib = 32\n",
        "host_disk_length_mib = 32\nread_only = true\n",
    );
    assert!(
        parse(&shared_read_only).is_ok(),
        "read-only sharing is allowed"
    );
    let mac = EXAMPLE.replace("52:54:00:57:56:02", "52:54:00:57:56");
    assert_eq!(
        parse(&mac).unwrap_err(),
        "frontend 3: mac `52:54:00:57:56` is not aa:bb:cc:dd:ee:ff"
    );
    let window = EXAMPLE.replace("window = 2", "window = 11");
    assert!(parse(&window).unwrap_err().contains("windows 0..=10"));
    let spi = EXAMPLE.replacen("window = 1", "base = 0x2000200\nspi = 44", 1);
    assert_eq!(
        parse(&spi).unwrap_err(),
        "frontend 2: window 0x2000200 has SPI 44, outside 33..=43"
    );
    let both = EXAMPLE.replacen(
        "ramdisk_mib = 16",
        "ramdisk_mib = 16\nhost_disk_offset_mib = 0",
        1,
    );
    assert!(parse(&both).unwrap_err().contains("not both"));
    let backend = EXAMPLE.replace("domid = 3", "domid = 1");
    assert_eq!(
        parse(&backend).unwrap_err(),
        "frontend 1 is the backend's own domain"
    );
}

/// Compiles device tree source with dtc (`cargo xtask test` installs it).
fn dtc(source: &str) -> Vec<u8> {
    let mut child = Command::new("dtc")
        .args(["-I", "dts", "-O", "dtb", "-q", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("dtc (device-tree-compiler) is installed");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), source.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "dtc refused:\n{source}");
    out.stdout
}

#[test]
fn the_device_tree_node_reads_back_as_written() {
    let mut topology = parse(EXAMPLE).unwrap().topology;
    // Every field shape: read-only, a range to the end of the disk, uplink off.
    topology.frontends[1].devices[2].kind = DeviceKind::Disk {
        backing: Backing::HostDisk {
            offset: 5 << 32,
            length: None,
        },
        read_only: true,
    };
    for uplink in [true, false] {
        topology.uplink = uplink;
        let source = format!(
            "/dts-v1/;\n/ {{\n    passthrough {{\n{}    }};\n}};\n",
            device_tree::write(&topology, "        ")
        );
        let blob = dtc(&source);
        let fdt = fdt::Fdt::new(&blob).unwrap();
        assert_eq!(device_tree::read(&fdt), Ok(Some(topology.clone())));
    }
    let without = dtc("/dts-v1/;\n/ { };\n");
    assert_eq!(
        device_tree::read(&fdt::Fdt::new(&without).unwrap()),
        Ok(None)
    );
}

#[test]
fn a_broken_node_is_refused_by_name() {
    let source = "/dts-v1/;\n/ {\n stubvirt-backend {\n  compatible = \"stubvirt,backend\";\n  \
                  frontend-2 {\n   domid = <2>;\n   vcpus = <1>;\n   nic-0 {\n    \
                  compatible = \"stubvirt,virtio-net\";\n    window = <0x0 0x2000000>;\n    \
                  spi = <33>;\n    mtu = <1500>;\n   };\n  };\n };\n};\n";
    let blob = dtc(source);
    let err = device_tree::read(&fdt::Fdt::new(&blob).unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "device tree node nic-0: no 6-byte local-mac-address"
    );
}
