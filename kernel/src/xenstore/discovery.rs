//! Finding the devices a toolstack gave this backend: `xl` writes one directory per
//! device under the backend domain's `backend/`: a guest's `virtio = [...]` entries
//! under `virtio/<frontend>/<devid>/` (libxl's `libxl_virtio.c`: `type`
//! `virtio,device<N>`), its disks with `specification=virtio` under
//! `virtio_disk/<frontend>/<devid>/` (`libxl_disk.c`: `mode`, `params`), each with the
//! register window (`base`, hex or decimal), its interrupt (`irq`) and the transport.
//! Nothing there is trusted: every field is parsed and checked, and a device described
//! wrong is refused with a reason while the others are served.

use super::client::{parse_number, Client, Error};
use super::ring::StoreChannel;
use crate::xen::abi::DomainId;
use devices::topology::{Window, FIRST_SPI, FIRST_WINDOW, LAST_SPI, WINDOWS_SIZE, WINDOW_SIZE};
use heapless::Vec;

/// Where xl describes virtio devices, relative to the backend domain's home path.
pub const VIRTIO_DIR: &str = "backend/virtio";
/// Where xl describes disks with `specification=virtio`.
pub const VIRTIO_DISK_DIR: &str = "backend/virtio_disk";
/// Devices one scan reports (described or refused); more are ignored and counted.
pub const MAX_DESCRIBED: usize = 16;

/// `XenbusState` values of a device's `state` node.
pub mod state {
    pub const INITIALISING: u64 = 1;
    /// What libxl waits for before `xl create` goes on (10 s for a disk); a virtio
    /// frontend has no xenbus side, so a served device stays here.
    pub const INIT_WAIT: u64 = 2;
    pub const CONNECTED: u64 = 4;
    pub const CLOSING: u64 = 5;
    pub const CLOSED: u64 = 6;
}

/// The kinds of virtio device stubvirt serves, by libxl's `type` string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `virtio,device1`.
    Net,
    /// `virtio,device2`, or a virtio disk; `read_only` for a disk of `mode` `r`.
    Blk { read_only: bool },
}

/// Which of the two directories a device is described in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dir {
    Virtio,
    VirtioDisk,
}

impl Dir {
    pub fn path(self) -> &'static str {
        match self {
            Dir::Virtio => VIRTIO_DIR,
            Dir::VirtioDisk => VIRTIO_DISK_DIR,
        }
    }
}

/// One device directory: which directory, which frontend, which device number there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeviceKey {
    pub dir: Dir,
    pub frontend: DomainId,
    pub devid: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Described {
    pub key: DeviceKey,
    pub kind: Kind,
    pub window: Window,
    /// The toolstack still wants it: `online` is not 0 and `state` is not closing.
    pub wanted: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A directory name that is not a domain id or device number.
    BadName,
    /// `base` or `irq` missing or not a number.
    NoWindow,
    /// A window outside Xen's virtio-mmio range, unaligned, or an SPI outside 33..43.
    WindowOutOfRange,
    /// A `type` stubvirt does not serve (or `virtio,device` with no device id).
    UnsupportedType,
    /// A transport other than `mmio`.
    UnsupportedTransport,
}

/// What one scan found: each device directory, described or refused (with what could be
/// read of its name), and how many were past [`MAX_DESCRIBED`].
#[derive(Default)]
pub struct Scan {
    pub described: Vec<Described, MAX_DESCRIBED>,
    pub refused: Vec<(Option<DeviceKey>, Refusal), MAX_DESCRIBED>,
    pub ignored: usize,
}

/// Reads every device directory under [`VIRTIO_DIR`] and [`VIRTIO_DISK_DIR`]. A missing
/// directory is an empty scan of it (no such device yet); a device whose nodes say
/// something stubvirt does not serve is refused. If the store does not answer (timeout,
/// broken connection) the whole scan fails: a device is never refused for a slow store.
pub fn scan<C: StoreChannel>(client: &mut Client<C>) -> Result<Scan, Error> {
    let mut result = Scan::default();
    for kind_dir in [Dir::Virtio, Dir::VirtioDisk] {
        scan_dir(client, kind_dir, &mut result)?;
    }
    Ok(result)
}

fn scan_dir<C: StoreChannel>(
    client: &mut Client<C>,
    kind_dir: Dir,
    result: &mut Scan,
) -> Result<(), Error> {
    let frontends = match names(client, kind_dir.path(), &mut result.ignored) {
        Ok(names) => names,
        Err(Error::Store(super::StoreError::NoEntry)) => return Ok(()),
        Err(e) => return Err(e),
    };
    for frontend_name in &frontends {
        let frontend = parse_number(frontend_name).and_then(|n| DomainId::try_from(n).ok());
        let dir = path(&[kind_dir.path(), text(frontend_name)]);
        let devices = names(client, &dir, &mut result.ignored)?;
        for device_name in &devices {
            let devid = parse_number(device_name).and_then(|n| u32::try_from(n).ok());
            let key = frontend.zip(devid).map(|(frontend, devid)| DeviceKey {
                dir: kind_dir,
                frontend,
                devid,
            });
            let outcome = match key {
                Some(key) => describe(client, &path(&[&dir, text(device_name)]), key)?,
                None => Err(Refusal::BadName),
            };
            let full = match outcome {
                Ok(described) => result.described.push(described).is_err(),
                Err(refusal) => result.refused.push((key, refusal)).is_err(),
            };
            result.ignored = result.ignored.saturating_add(usize::from(full));
        }
    }
    Ok(())
}

/// Writes a device's `state` node (e.g. [`state::INIT_WAIT`] once it is served).
pub fn set_state<C: StoreChannel>(
    client: &mut Client<C>,
    key: DeviceKey,
    value: u64,
) -> Result<(), Error> {
    let mut frontend = [0u8; 5];
    let mut devid = [0u8; 10];
    let dir = path(&[
        key.dir.path(),
        text(super::client::decimal(
            u64::from(key.frontend),
            &mut frontend,
        )),
        text(super::client::decimal(u64::from(key.devid), &mut devid)),
        "state",
    ]);
    let mut digits = [0u8; 20];
    client.write(&dir, super::client::decimal(value, &mut digits))
}

/// A device directory's description, or why it is refused. `Err`: the store did not
/// answer (timeout, broken connection): nothing is decided about the device, and the
/// scan is to be run again.
fn describe<C: StoreChannel>(
    client: &mut Client<C>,
    dir: &str,
    key: DeviceKey,
) -> Result<Result<Described, Refusal>, Error> {
    let base = node_number(client, dir, "base")?;
    let irq = node_number(client, dir, "irq")?;
    let online = node_number(client, dir, "online")?.unwrap_or(1);
    let device_state = node_number(client, dir, "state")?.unwrap_or(state::INITIALISING);
    let Some((base, irq)) = base.zip(irq) else {
        return Ok(Err(Refusal::NoWindow));
    };
    let Some(window) = window(base, irq) else {
        return Ok(Err(Refusal::WindowOutOfRange));
    };
    if !matches!(
        node_is(client, dir, "transport", b"mmio")?,
        Some(true) | None
    ) {
        return Ok(Err(Refusal::UnsupportedTransport));
    }
    let kind = match key.dir {
        Dir::Virtio => {
            if node_is(client, dir, "type", b"virtio,device1")? == Some(true) {
                Kind::Net
            } else if node_is(client, dir, "type", b"virtio,device2")? == Some(true) {
                Kind::Blk { read_only: false }
            } else {
                return Ok(Err(Refusal::UnsupportedType));
            }
        }
        Dir::VirtioDisk => {
            if node_is(client, dir, "specification", b"virtio")? != Some(true) {
                return Ok(Err(Refusal::UnsupportedType));
            }
            let writable = node_is(client, dir, "mode", b"w")? == Some(true);
            Kind::Blk {
                read_only: !writable,
            }
        }
    };
    Ok(Ok(Described {
        key,
        kind,
        window,
        wanted: online != 0 && device_state < state::CLOSING,
    }))
}

/// Whether `dir/node` holds `value`; `None` when there is no such node (or the store
/// refuses it); `Err` when the store did not answer.
fn node_is<C: StoreChannel>(
    client: &mut Client<C>,
    dir: &str,
    node: &str,
    value: &[u8],
) -> Result<Option<bool>, Error> {
    match client.read(&path(&[dir, node])) {
        Ok(read) => Ok(Some(read == value)),
        Err(Error::Store(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `dir/node` as a number; `None` when absent or not a number; `Err` when the store did
/// not answer.
fn node_number<C: StoreChannel>(
    client: &mut Client<C>,
    dir: &str,
    node: &str,
) -> Result<Option<u64>, Error> {
    match client.read_number(&path(&[dir, node])) {
        Ok(number) => Ok(Some(number)),
        Err(Error::Store(_) | Error::BadReply) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A window inside Xen's virtio-mmio range, aligned to a window, with an SPI Xen sets
/// aside for virtio-mmio.
fn window(base: u64, irq: u64) -> Option<Window> {
    let offset = base.checked_sub(FIRST_WINDOW)?;
    let in_range = offset < WINDOWS_SIZE && offset % WINDOW_SIZE == 0;
    let spi = u32::try_from(irq).ok()?;
    (in_range && (FIRST_SPI..=LAST_SPI).contains(&spi)).then_some(Window { base, spi })
}

/// A directory's child names, copied out of the reply (the client's buffer is reused).
/// A name too long to be a number, or past the limit, is counted in `ignored` and not
/// kept: it could not be served anyway, and the limit bounds the work of one scan.
fn names<C: StoreChannel>(
    client: &mut Client<C>,
    dir: &str,
    ignored: &mut usize,
) -> Result<Vec<Vec<u8, 16>, MAX_DESCRIBED>, Error> {
    let mut out = Vec::new();
    for name in client.directory(dir)? {
        let kept = Vec::from_slice(name)
            .ok()
            .map(|name| out.push(name).is_ok());
        if kept != Some(true) {
            *ignored = ignored.saturating_add(1);
        }
    }
    Ok(out)
}

/// `parts` joined with `/`, at most a path's length (longer is cut, and then refused by
/// the store as a missing node).
fn path(parts: &[&str]) -> heapless::String<256> {
    let mut out = heapless::String::new();
    for (n, part) in parts.iter().enumerate() {
        if n > 0 {
            let _ = out.push('/');
        }
        let _ = out.push_str(part);
    }
    out
}

fn text(bytes: &[u8]) -> &str {
    core::str::from_utf8(bytes).unwrap_or("?")
}

/// What to change so that the served devices match the store.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Described, wanted and not served yet.
    pub serve: Vec<Described, MAX_DESCRIBED>,
    /// Served, but gone from the store or no longer wanted.
    pub release: Vec<DeviceKey, MAX_DESCRIBED>,
}

pub fn plan(served: &[DeviceKey], scan: &Scan) -> Plan {
    let mut plan = Plan::default();
    for described in scan.described.iter().filter(|d| d.wanted) {
        if !served.contains(&described.key) {
            let _ = plan.serve.push(*described);
        }
    }
    for key in served {
        let still_wanted = scan.described.iter().any(|d| d.key == *key && d.wanted);
        if !still_wanted {
            let _ = plan.release.push(*key);
        }
    }
    plan
}
