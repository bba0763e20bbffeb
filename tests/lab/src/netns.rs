//! Network namespaces: creation, links, and the processes living in them.
//!
//! A lab namespace is named `ftl-<lab id>-<role>`; every process the lab starts for a
//! host runs inside that host's namespace (QEMU inherits it from libvirtd), so
//! "every process of a host" is exactly "every process whose `/proc/PID/ns/net` is
//! the host's namespace". That is what [`kill_all`] and the leak checks use.

use crate::cmd;
use crate::error::{LabError, Result};
use crate::wait::{wait_until, Look};
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

/// Prefix of every namespace any lab creates.
pub const PREFIX: &str = "ftl-";

/// A named network namespace (`ip netns`).
#[derive(Debug, Clone)]
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    /// `ip netns add NAME` and bring `lo` up (colo-compare and QEMU chardevs use it).
    pub fn create(name: &str) -> Result<NetNs> {
        if name.len() > 60 {
            return Err(LabError::Usage(format!("namespace name too long: {name}")));
        }
        cmd::run("ip", ["netns", "add", name])?;
        let ns = NetNs {
            name: name.to_string(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `/run/netns/NAME`, the file `setns` and `nsenter --net=` take.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// The namespace's inode, as `/proc/PID/ns/net` of its members shows it.
    pub fn inode(&self) -> Result<u64> {
        let p = self.path();
        std::fs::metadata(&p)
            .map(|m| m.ino())
            .map_err(|e| LabError::io("stat netns", p, e))
    }

    /// `ip -n NAME ARGS...`
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut v = vec!["-n", self.name.as_str()];
        v.extend_from_slice(args);
        cmd::run("ip", v)
    }

    /// Create a veth pair with one end (`here`) in this namespace and the other
    /// (`there`) in `other`, both created in place so no name is ever taken in the
    /// root namespace.
    pub fn veth(&self, here: &str, other: &NetNs, there: &str) -> Result<()> {
        cmd::run(
            "ip",
            [
                "link",
                "add",
                "name",
                here,
                "netns",
                &self.name,
                "type",
                "veth",
                "peer",
                "name",
                there,
                "netns",
                &other.name,
            ],
        )?;
        Ok(())
    }

    /// A bridge in this namespace, up.
    pub fn bridge(&self, name: &str) -> Result<()> {
        self.ip(&["link", "add", name, "type", "bridge"])?;
        self.ip(&["link", "set", name, "up"])?;
        Ok(())
    }

    /// Enslave `dev` to `bridge` and bring it up.
    pub fn attach(&self, dev: &str, bridge: &str) -> Result<()> {
        self.ip(&["link", "set", dev, "master", bridge, "up"])?;
        Ok(())
    }

    /// Give `dev` an address (`10.200.0.11/24`) and bring it up.
    pub fn addr(&self, dev: &str, cidr: &str) -> Result<()> {
        self.ip(&["addr", "add", cidr, "dev", dev])?;
        self.ip(&["link", "set", dev, "up"])?;
        Ok(())
    }

    /// Set a link up or down.
    pub fn link(&self, dev: &str, up: bool) -> Result<()> {
        self.ip(&["link", "set", dev, if up { "up" } else { "down" }])?;
        Ok(())
    }

    /// Run `f` on a thread that has entered this network namespace: every socket it
    /// opens is in the namespace (an async client runs on a runtime built inside
    /// `f`). A panic in `f` is passed on.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let path = self.path();
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns =
                    std::fs::File::open(&path).map_err(|e| LabError::io("opening", &path, e))?;
                setns(&ns, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| LabError::io("entering network namespace", &path, e.into()))?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// PIDs of every process in this namespace.
    pub fn pids(&self) -> Result<Vec<i32>> {
        Ok(pids_in(&[self.inode()?]))
    }

    /// SIGKILL every process in the namespace until none is left (a power cut).
    pub fn kill_all(&self) -> Result<usize> {
        kill_all(&[self.inode()?], Duration::from_secs(10))
    }

    /// `ip netns del`; the namespace itself goes once its last process is gone.
    pub fn delete(&self) -> Result<()> {
        cmd::run("ip", ["netns", "del", &self.name])?;
        Ok(())
    }
}

/// Every process whose network namespace is one of `inodes`.
pub fn pids_in(inodes: &[u64]) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net")) {
            if inodes.contains(&m.ino()) {
                out.push(pid);
            }
        }
    }
    out
}

/// SIGKILL every process in the given namespaces, repeating until none is left
/// (a process may fork while we kill); returns how many were killed.
pub fn kill_all(inodes: &[u64], timeout: Duration) -> Result<usize> {
    let mut killed = 0;
    wait_until(
        "the processes of a namespace to die",
        timeout,
        Duration::from_millis(20),
        || {
            let pids = pids_in(inodes);
            if pids.is_empty() {
                return Look::Ready(killed);
            }
            for p in &pids {
                if kill(Pid::from_raw(*p), Signal::SIGKILL).is_ok() {
                    killed += 1;
                }
            }
            Look::Seen(format!("still alive: {pids:?}"))
        },
    )
}

/// Names of all lab namespaces on this machine (`ftl-*`), from any lab.
pub fn list_lab_namespaces() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(PREFIX))
        .collect();
    v.sort();
    v
}
