//! Serve mode on the xl route (`discover=xenstore`): the frontends and devices come from
//! xenstore as `xl` describes them, while serving. stubvirt watches its
//! `backend/virtio/` and `backend/virtio_disk/` directories; on every change it scans
//! them again and serves what is new (a RAM disk of `ramdisk_mb` for a virtio disk or
//! `virtio,device2`, a NIC for `virtio,device1`), marks each served device `state = 2`
//! (InitWait, what libxl waits for), and releases a frontend whose devices are gone,
//! offline or closing (`state = 6`, Closed, where the directory is still there).

use super::memories::Memories;
use super::setup::{self, FrontendServer};
use super::Config;
use crate::xen::abi::event_channel::Port;
use crate::xen::abi::DomainId;
use crate::xen::store_page::StorePage;
use crate::xenstore::discovery::{
    self, state, DeviceKey, Kind, Plan, Refusal, VIRTIO_DIR, VIRTIO_DISK_DIR,
};
use crate::xenstore::Client;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use devices::backend::{Backend, Frontends};
use devices::blk::shared::SharedDisk;
use devices::topology::{
    Backing, Device, DeviceKind, Facts, Frontend, Topology, MAX_FRONTENDS, MAX_MTU,
};

const WATCH_TOKEN: &str = "stubvirt";
/// Heap a new frontend needs: one Linux frontend's devices and server took about 306 KB
/// in the end-to-end run (docs/topology.md), with a margin.
const HEAP_RESERVE: u64 = 400 * 1024;

/// Devices of a frontend seen for the first time, and their store keys; `combined` is
/// the frontend with every device it has, those already served included (what the
/// topology check looks at).
pub struct NewFrontend {
    pub frontend: Frontend,
    pub keys: Vec<DeviceKey>,
    pub combined: Frontend,
}

/// What a change in the store asks for.
pub struct Changes {
    pub serve: Vec<NewFrontend>,
    pub release: Vec<DomainId>,
}

pub struct XlDevices {
    client: Client<StorePage>,
    /// Devices served now.
    served: Vec<DeviceKey>,
    /// Each served frontend with its devices so far.
    topologies: Vec<Frontend>,
    /// Frontends released: never served again, even while their keys linger.
    departed: Vec<DomainId>,
    ramdisk_mib: u32,
    /// Refusals already reported, so each is printed once.
    reported: Vec<(Option<DeviceKey>, Refusal)>,
    /// When to scan again after a scan the store did not answer (system time, ns).
    rescan_at: Option<u64>,
}

/// How long after a scan the store did not answer the next one runs.
const RESCAN_AFTER_NS: u64 = 1_000_000_000;

impl XlDevices {
    /// Connects to xenstore and watches the virtio backend directory.
    pub fn start(ramdisk_mib: u32) -> Result<Self, String> {
        let page = StorePage::from_params()
            .map_err(|e| alloc::format!("HVM_PARAM_STORE_*: {e}"))?
            .ok_or("no xenstore: HVM_PARAM_STORE_PFN is 0 (not created by a toolstack?)")?;
        let mut client = Client::new(page);
        for dir in [VIRTIO_DIR, VIRTIO_DISK_DIR] {
            client
                .watch(dir, WATCH_TOKEN)
                .map_err(|e| alloc::format!("xenstore watch {dir}: {e:?}"))?;
        }
        Ok(Self {
            client,
            served: Vec::new(),
            topologies: Vec::new(),
            departed: Vec::new(),
            ramdisk_mib,
            reported: Vec::new(),
            rescan_at: None,
        })
    }

    pub fn port(&self) -> Port {
        self.client.channel().port()
    }

    /// Takes the watch events that arrived; if there were any (or some were lost, or a
    /// scan the store did not answer is due again), scans again and returns what to serve
    /// and release, grouped by frontend. `now`: system time (ns).
    pub fn changes(&mut self, now: u64) -> Option<Changes> {
        let mut changed = self.client.take_events_lost();
        if self.rescan_at.is_some_and(|at| now >= at) {
            self.rescan_at = None;
            changed = true;
        }
        loop {
            match self.client.take_event() {
                Ok(Some(_)) => changed = true,
                Ok(None) => break,
                Err(e) => {
                    log::warn!("xenstore: {e:?}");
                    return None;
                }
            }
        }
        if !changed {
            return None;
        }
        let found = match discovery::scan(&mut self.client) {
            Ok(found) => found,
            Err(e) => {
                log::warn!("xenstore: scan of the backend directories: {e:?}; again in 1 s");
                self.rescan_at = Some(now.saturating_add(RESCAN_AFTER_NS));
                return None;
            }
        };
        for refused in &found.refused {
            if !self.reported.contains(refused) {
                self.reported.push(*refused);
                report_refused(*refused);
            }
        }
        let plan = discovery::plan(&self.served, &found);
        Some(self.group(plan))
    }

    /// New devices as one topology entry per frontend (never a departed one), and the
    /// frontends to release.
    fn group(&self, plan: Plan) -> Changes {
        let mut release: Vec<DomainId> = Vec::new();
        for key in &plan.release {
            if !release.contains(&key.frontend) {
                release.push(key.frontend);
            }
        }
        let mut serve: Vec<NewFrontend> = Vec::new();
        for described in plan.serve.iter() {
            let domid = described.key.frontend;
            if self.departed.contains(&domid) || release.contains(&domid) {
                continue;
            }
            let device = Device {
                window: described.window,
                kind: match described.kind {
                    Kind::Blk { read_only } => DeviceKind::Disk {
                        backing: Backing::RamDisk {
                            mib: self.ramdisk_mib,
                        },
                        read_only,
                    },
                    Kind::Net => DeviceKind::Nic {
                        mac: mac_of(described.key),
                        mtu: MAX_MTU,
                    },
                },
            };
            let at = match serve.iter().position(|f| f.frontend.domid == domid) {
                Some(at) => at,
                None => {
                    let frontend = Frontend {
                        domid,
                        vcpus: 1,
                        devices: Vec::new(),
                    };
                    // What it has already (devices found in an earlier scan) comes first.
                    let served = self.topologies.iter().find(|f| f.domid == domid);
                    serve.push(NewFrontend {
                        combined: served.cloned().unwrap_or_else(|| frontend.clone()),
                        frontend,
                        keys: Vec::new(),
                    });
                    serve.len() - 1
                }
            };
            if let Some(new) = serve.get_mut(at) {
                new.frontend.devices.push(device);
                new.combined.devices.push(device);
                new.keys.push(described.key);
            }
        }
        Changes { serve, release }
    }

    /// The devices of a new frontend now serve: marked InitWait in the store.
    pub fn served(&mut self, new: &NewFrontend) {
        self.topologies.retain(|f| f.domid != new.frontend.domid);
        self.topologies.push(new.combined.clone());
        for key in &new.keys {
            if !self.served.contains(key) {
                self.served.push(*key);
            }
            if let Err(e) = discovery::set_state(&mut self.client, *key, state::INIT_WAIT) {
                log::warn!("xenstore: state of {key:?}: {e:?}");
            }
        }
    }

    /// `domid` is released (gone, or its devices removed): Closed where the store still
    /// has its directories, and never served again.
    pub fn released(&mut self, domid: DomainId) {
        let keys: Vec<DeviceKey> = self
            .served
            .iter()
            .copied()
            .filter(|k| k.frontend == domid)
            .collect();
        for key in keys {
            // The directory is usually gone already (xl destroy removes it).
            let _ = discovery::set_state(&mut self.client, key, state::CLOSED);
        }
        self.served.retain(|k| k.frontend != domid);
        self.topologies.retain(|f| f.domid != domid);
        if !self.departed.contains(&domid) {
            self.departed.push(domid);
        }
    }
}

/// A locally administered MAC naming the frontend and device: `02:53:56:dd:dd:nn`.
fn mac_of(key: DeviceKey) -> [u8; 6] {
    let [hi, lo] = key.frontend.to_be_bytes();
    [0x02, 0x53, 0x56, hi, lo, key.devid.to_le_bytes()[0]]
}

/// `STUBVIRT-XL-REFUSED frontend=F device=D reason=R`
fn report_refused((key, reason): (Option<DeviceKey>, Refusal)) {
    let mut line = String::from("STUBVIRT-XL-REFUSED");
    match key {
        Some(key) => {
            let _ = write!(line, " frontend={} device={}", key.frontend, key.devid);
        }
        None => line.push_str(" frontend=? device=?"),
    }
    let _ = write!(line, " reason={reason:?}");
    let _ = writeln!(crate::console::Writer, "{line}");
}

/// The topology check for one new frontend, as the boot-time check does for all.
pub fn check(frontend: &Frontend, facts: &Facts) -> Result<(), String> {
    let topology = Topology {
        frontends: alloc::vec![frontend.clone()],
        uplink: false,
    };
    topology.check(facts).map_err(|e| alloc::format!("{e}"))
}

/// Serves devices the xl route found: checked together with what their frontend has
/// already, added, and given to its IOREQ server (a new one for a new frontend). Returns
/// the index of the server that serves them. On failure nothing of them is served.
pub fn serve_new(
    backend: &mut Backend,
    memories: &mut Memories,
    servers: &mut Vec<FrontendServer>,
    new: &NewFrontend,
    facts: &Facts,
    cfg: &Config,
    host_disk: Option<&SharedDisk>,
) -> Result<usize, String> {
    let domid = new.frontend.domid;
    check(&new.combined, facts)?;
    let live = servers
        .iter()
        .position(|s| s.domid == domid && s.departed.is_none());
    if live.is_none() {
        let serving = servers.iter().filter(|s| s.departed.is_none()).count();
        if serving >= MAX_FRONTENDS {
            return Err(alloc::format!(
                "{serving} frontends served already: at most {MAX_FRONTENDS}"
            ));
        }
    }
    // A frontend that goes leaves some heap behind (its devices' models are kept,
    // detached, for the counters): refuse before the heap runs out rather than fail an
    // allocation while serving.
    let free = crate::mem::HEAP_BYTES.saturating_sub(crate::mem::heap_used() as u64);
    if free < HEAP_RESERVE {
        return Err(alloc::format!(
            "heap: {free} bytes free, a frontend needs {HEAP_RESERVE}"
        ));
    }
    let devices = setup::add_devices(backend, &new.frontend, host_disk, cfg.blk_queues)?;
    if let Some(at) = live {
        let server = servers.get_mut(at).ok_or("server vanished")?;
        setup::extend(server, devices)?;
        return Ok(at);
    }
    memories.add(domid, cfg.copy_buffers);
    let server = setup::register(domid, new.frontend.vcpus, devices).inspect_err(|_| {
        if let Some(memory) = memories.memory(domid) {
            backend.detach_frontend(domid, memory);
        }
        memories.remove(domid);
    })?;
    servers.push(server);
    Ok(servers.len() - 1)
}
