use super::client::Client;
use super::discovery::{plan, scan, set_state, state, DeviceKey, Dir, Kind, Refusal};
use super::sim::SimStore;
use devices::topology::Window;

const HOME: &str = "/local/domain/1";

/// Writes what libxl writes for one virtio device of `frontend`.
fn describe(store: &mut SimStore, frontend: u16, devid: u32, kind: &str, n: u32) {
    let dir = format!("{HOME}/backend/virtio/{frontend}/{devid}");
    let window = Window::nth(n);
    for (node, value) in [
        (
            "frontend",
            format!("/local/domain/{frontend}/device/virtio/{devid}"),
        ),
        ("frontend-id", frontend.to_string()),
        ("online", "1".into()),
        ("state", "1".into()),
        ("base", window.base.to_string()),
        ("irq", window.spi.to_string()),
        ("type", kind.into()),
        ("transport", "mmio".into()),
    ] {
        store.toolstack_write(&format!("{dir}/{node}"), &value);
    }
}

fn key(frontend: u16, devid: u32) -> DeviceKey {
    DeviceKey {
        dir: Dir::Virtio,
        frontend,
        devid,
    }
}

/// Writes what libxl 4.20 writes for a disk with `specification=virtio` (seen by `cargo
/// xtask xl-smoke`): its own directory, a decimal `base`.
fn describe_disk(store: &mut SimStore, frontend: u16, devid: u32, mode: &str, n: u32) {
    let dir = format!("{HOME}/backend/virtio_disk/{frontend}/{devid}");
    let window = Window::nth(n);
    for (node, value) in [
        (
            "frontend",
            format!("/local/domain/{frontend}/device/virtio_disk/{devid}"),
        ),
        ("params", "/guest/disk.img".into()),
        ("frontend-id", frontend.to_string()),
        ("online", "1".into()),
        ("state", "1".into()),
        ("dev", "xvda".into()),
        ("type", "standalone".into()),
        ("mode", mode.into()),
        ("specification", "virtio".into()),
        ("transport", "mmio".into()),
        ("base", window.base.to_string()),
        ("irq", window.spi.to_string()),
        ("grant_usage", "1".into()),
    ] {
        store.toolstack_write(&format!("{dir}/{node}"), &value);
    }
}

#[test]
fn finds_what_xl_describes_and_plans_to_serve_it() {
    let mut store = SimStore::new(HOME);
    describe(&mut store, 2, 0, "virtio,device2", 0);
    describe(&mut store, 2, 1, "virtio,device1", 1);
    let mut client = Client::new(store);
    let found = scan(&mut client).unwrap();
    assert!(found.refused.is_empty(), "{:?}", found.refused);
    let kinds: Vec<(DeviceKey, Kind, Window)> = found
        .described
        .iter()
        .map(|d| (d.key, d.kind, d.window))
        .collect();
    assert_eq!(
        kinds,
        [
            (key(2, 0), Kind::Blk { read_only: false }, Window::nth(0)),
            (key(2, 1), Kind::Net, Window::nth(1))
        ]
    );
    let first = plan(&[], &found);
    assert_eq!(first.serve.len(), 2);
    assert!(first.release.is_empty());
    let served = [key(2, 0), key(2, 1)];
    assert_eq!(plan(&served, &found), Default::default(), "nothing changes");
    set_state(&mut client, key(2, 0), state::INIT_WAIT).unwrap();
    assert_eq!(
        client.read_number("backend/virtio/2/0/state").unwrap(),
        state::INIT_WAIT
    );
}

#[test]
fn finds_virtio_disks_in_their_own_directory() {
    let mut store = SimStore::new(HOME);
    describe_disk(&mut store, 2, 51712, "w", 0);
    describe_disk(&mut store, 2, 51728, "r", 2);
    describe(&mut store, 2, 0, "virtio,device1", 1);
    let mut client = Client::new(store);
    let found = scan(&mut client).unwrap();
    assert!(found.refused.is_empty(), "{:?}", found.refused);
    let disk = |devid| DeviceKey {
        dir: Dir::VirtioDisk,
        frontend: 2,
        devid,
    };
    let kinds: Vec<(DeviceKey, Kind)> = found.described.iter().map(|d| (d.key, d.kind)).collect();
    assert_eq!(
        kinds,
        [
            (key(2, 0), Kind::Net),
            (disk(51712), Kind::Blk { read_only: false }),
            (disk(51728), Kind::Blk { read_only: true }),
        ]
    );
    set_state(&mut client, disk(51712), state::INIT_WAIT).unwrap();
    assert_eq!(
        client
            .read_number("backend/virtio_disk/2/51712/state")
            .unwrap(),
        state::INIT_WAIT
    );
}

#[test]
fn no_directory_yet_is_an_empty_scan() {
    let mut client = Client::new(SimStore::new(HOME));
    let found = scan(&mut client).unwrap();
    assert!(found.described.is_empty() && found.refused.is_empty());
}

#[test]
fn a_device_described_wrong_is_refused_and_the_others_served() {
    let mut store = SimStore::new(HOME);
    describe(&mut store, 2, 0, "virtio,device2", 0);
    describe(&mut store, 2, 1, "virtio,device26", 1);
    describe(&mut store, 2, 2, "virtio,device1", 2);
    store.toolstack_write(&format!("{HOME}/backend/virtio/2/2/base"), "4096");
    describe(&mut store, 2, 3, "virtio,device1", 3);
    store.toolstack_write(&format!("{HOME}/backend/virtio/2/3/irq"), "99");
    describe(&mut store, 2, 4, "virtio,device1", 4);
    store.toolstack_write(&format!("{HOME}/backend/virtio/2/4/transport"), "pci");
    describe(&mut store, 2, 5, "virtio,device2", 5);
    store.toolstack_remove(&format!("{HOME}/backend/virtio/2/5/base"));
    store.toolstack_write(&format!("{HOME}/backend/virtio/x/0/base"), "1");
    let mut client = Client::new(store);
    let found = scan(&mut client).unwrap();
    assert_eq!(found.described.len(), 1);
    assert_eq!(found.described[0].key, key(2, 0));
    let refused: Vec<_> = found.refused.iter().copied().collect();
    assert_eq!(
        refused,
        [
            (Some(key(2, 1)), Refusal::UnsupportedType),
            (Some(key(2, 2)), Refusal::WindowOutOfRange),
            (Some(key(2, 3)), Refusal::WindowOutOfRange),
            (Some(key(2, 4)), Refusal::UnsupportedTransport),
            (Some(key(2, 5)), Refusal::NoWindow),
            (None, Refusal::BadName),
        ]
    );
}

#[test]
fn a_device_closing_or_removed_is_released() {
    let mut store = SimStore::new(HOME);
    describe(&mut store, 2, 0, "virtio,device2", 0);
    describe(&mut store, 3, 0, "virtio,device2", 1);
    store.toolstack_write(&format!("{HOME}/backend/virtio/2/0/state"), "5");
    store.toolstack_remove(&format!("{HOME}/backend/virtio/3"));
    let mut client = Client::new(store);
    let found = scan(&mut client).unwrap();
    let served = [key(2, 0), key(3, 0)];
    let next = plan(&served, &found);
    assert!(next.serve.is_empty());
    assert_eq!(next.release.as_slice(), &[key(2, 0), key(3, 0)]);
}

#[test]
fn a_scan_is_bounded() {
    let mut store = SimStore::new(HOME);
    for devid in 0..40 {
        describe(&mut store, 2, devid, "virtio,device2", devid % 11);
    }
    let mut client = Client::new(store);
    let found = scan(&mut client).unwrap();
    assert_eq!(found.described.len() + found.refused.len(), 16);
    assert_eq!(found.ignored, 24, "the rest are counted");
}

#[test]
fn a_store_too_slow_to_answer_fails_the_scan_instead_of_refusing_devices() {
    let mut store = SimStore::new(HOME);
    describe(&mut store, 2, 0, "virtio,device1", 0);
    let mut client = Client::new(store);
    client.set_timeout_ms(100);
    client.channel_mut().misbehave.silent = true;
    assert_eq!(scan(&mut client).err(), Some(super::Error::Timeout));
    client.channel_mut().misbehave.silent = false;
    let found = scan(&mut client).unwrap();
    assert_eq!(found.described.len(), 1, "served once the store answers");
    assert!(found.refused.is_empty());
}
