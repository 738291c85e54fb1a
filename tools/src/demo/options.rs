//! `cargo xtask demo`'s options: the route, the frontends, and what stubvirt and the
//! frontends are asked to do.

use super::layout::{backend_args, Route, FRONTEND_ARGS};
use crate::xen::source::XenSource;
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

/// The frontend's stages are bounded to 200 (RAM disk) + 300 (disk) + 90 (net) s.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(600);

/// What `cargo xtask demo` was asked for.
pub struct Options {
    pub deadline: Duration,
    /// Whether stubvirt boots at all.
    pub backend: bool,
    /// stubvirt's command line.
    pub backend_args: String,
    pub frontend_args: String,
    /// The Xen 4.21+ source of the route with no dom0; `None`: the dom0 route on 4.17.5.
    pub xen_source: Option<XenSource>,
    /// Linux frontends (more than one on the route with no dom0 only).
    pub frontends: u16,
    /// Seconds the second frontend floods its disk's doorbell before its checks.
    pub flood: Option<u32>,
    /// The second frontend crashes (sysrq c) while the first runs I/O; stubvirt releases
    /// and destroys it (`lifecycle::crash`).
    pub crash: bool,
    /// Xen enforces stubvirt's FLASK policy and stubvirt confines itself (`confine=flask`).
    pub confine: bool,
}

impl Options {
    pub fn route(&self) -> Route {
        match self.xen_source {
            Some(_) => Route::ControlDomU,
            None => Route::Dom0,
        }
    }
}

const DEMO_USAGE: &str = "usage: cargo xtask demo [--xen-source PATH [--frontends N \
                          [--flood SECONDS] [--crash] [--confine]] [--timeout SECONDS] [--no-backend] \
                          [--map-buffers] [--blk-queues N] [--rebind ROUNDS]";

/// `--xen-source PATH` (a Xen 4.21+ tree or archive) runs the route with no dom0;
/// `--timeout SECONDS` (default 600); `--no-backend` boots the frontend alone with
/// `fe_wait=20`, to show the readiness handshake giving up; `--map-buffers` has stubvirt
/// map request buffers instead of copying them (`grant_route=map`), to compare the two;
/// `--frontends N` boots N Linux frontends (route with no dom0); `--blk-queues N` offers
/// every disk N request queues (`blk_queues=N`, VIRTIO_BLK_F_MQ) instead of one;
/// `--flood SECONDS` has the second frontend ring its disk's doorbell that long first;
/// `--crash` has the second frontend crash once done, during the first one's I/O;
/// `--confine` has Xen enforce stubvirt's FLASK policy and stubvirt confine itself;
/// `--rebind ROUNDS` has the frontend unbind and bind its virtio drivers with I/O in
/// flight that many times after its checks (`lifecycle`).
pub fn options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        deadline: DEFAULT_DEADLINE,
        backend: true,
        backend_args: String::new(),
        frontend_args: FRONTEND_ARGS.to_string(),
        xen_source: None,
        frontends: 1,
        flood: None,
        crash: false,
        confine: false,
    };
    let mut map_buffers = false;
    let mut blk_queues = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--timeout" => {
                let n = args.next().ok_or(DEMO_USAGE)?;
                o.deadline = n
                    .parse()
                    .map(Duration::from_secs)
                    .map_err(|_| format!("--timeout takes seconds, not `{n}`"))?;
            }
            "--xen-source" => {
                let path = args.next().ok_or(DEMO_USAGE)?;
                o.xen_source = Some(XenSource::open(Path::new(path))?);
            }
            "--no-backend" => {
                o.backend = false;
                o.frontend_args = FRONTEND_ARGS.replace("fe_wait=90", "fe_wait=20");
            }
            "--map-buffers" => map_buffers = true,
            "--crash" => o.crash = true,
            "--confine" => o.confine = true,
            "--flood" => {
                let n = args.next().ok_or(DEMO_USAGE)?;
                o.flood = Some(
                    n.parse()
                        .map_err(|_| format!("--flood takes seconds, not `{n}`"))?,
                );
            }
            "--rebind" => {
                let n = args.next().ok_or(DEMO_USAGE)?;
                let rounds: u32 = n
                    .parse()
                    .map_err(|_| format!("--rebind takes a number of rounds, not `{n}`"))?;
                let _ = write!(o.frontend_args, " fe_rebind={rounds}");
            }
            "--blk-queues" => {
                let n = args.next().ok_or(DEMO_USAGE)?;
                blk_queues = Some(
                    n.parse::<u16>()
                        .map_err(|_| format!("--blk-queues takes a number, not `{n}`"))?,
                );
            }
            "--frontends" => {
                let n = args.next().ok_or(DEMO_USAGE)?;
                o.frontends = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=devices::topology::MAX_FRONTENDS as u16).contains(n))
                    .ok_or_else(|| {
                        format!(
                            "--frontends takes 1..={}, not `{n}`",
                            devices::topology::MAX_FRONTENDS
                        )
                    })?;
            }
            _ => return Err(DEMO_USAGE.into()),
        }
    }
    if o.flood.is_some() && o.frontends < 2 {
        return Err("--flood SECONDS needs --frontends 2: the second one floods".into());
    }
    if o.confine && o.route() == Route::Dom0 {
        return Err("--confine needs the route with no dom0 (--xen-source)".into());
    }
    if o.crash && o.frontends < 2 {
        return Err("--crash needs --frontends 2: the second one crashes".into());
    }
    if o.frontends > 1 && o.route() == Route::Dom0 {
        return Err("--frontends N > 1 needs the route with no dom0 (--xen-source)".into());
    }
    o.backend_args = backend_args(o.route());
    if map_buffers {
        o.backend_args.push_str(" grant_route=map");
    }
    if let Some(n) = blk_queues {
        let _ = write!(o.backend_args, " blk_queues={n}");
    }
    if o.crash {
        o.backend_args.push_str(" frontend_exit=destroy");
    }
    if o.confine {
        // The privilege self-test too: under the policy every attempt must be refused.
        o.backend_args.push_str(" confine=flask privilege_test=1");
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_pick_the_route_and_its_command_line() {
        let o = options(&["--map-buffers".to_string()]).unwrap();
        assert_eq!(o.route(), Route::Dom0);
        assert!(o.backend_args.contains("frontend=1"));
        assert!(o.backend_args.ends_with(" grant_route=map"));
        let err = options(&["--xen-source".to_string(), "/nonexistent/xen".to_string()])
            .err()
            .unwrap();
        assert!(
            err.contains("/nonexistent/xen") && err.contains("--xen-source"),
            "{err}"
        );
        assert!(options(&["--bogus".to_string()]).is_err());
        let confine = options(&["--confine".to_string()]).err().unwrap();
        assert!(confine.contains("route with no dom0"), "{confine}");
        assert!(options(&["--crash".to_string()]).is_err());
    }
}
