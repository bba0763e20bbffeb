//! `ftvirt-lab`: several simulated hosts on one machine, made of real parts.
//!
//! A [`Lab`] is:
//! - a *switch* namespace with two bridges: `lan` (the guests' network, shared with
//!   the client) and `rep` (the hosts' replication/management network);
//! - a *client* namespace (`10.201.0.2` on the LAN) standing for the outside world;
//! - N [`Host`]s, each a network + mount + UTS namespace with its own virtlogd and
//!   libvirtd (private `/run/libvirt`, `/var/lib/libvirt`, `/etc/libvirt`, ...), a
//!   bridge `br0` on the LAN for guest taps, and `10.200.0.(11+i)` on `rep`;
//! - optionally ([`LabConfig::witness`]) a *witness* host `w` at `10.200.0.10` on
//!   `rep` only, without libvirtd, for the partition arbiter's witness ([`cluster`]);
//!   with [`LabConfig::with_etcd`] it runs an etcd witness for ftd's `arbiter: kind:
//!   etcd` ([`etcd`]).
//!
//! Single paths can be cut while everything runs ([`Lab::set_rep_link`],
//! [`Lab::cut_path`]).
//!
//! Nothing leaves the lab's namespaces except through libvirt's Unix sockets. The
//! lab waits for readiness (sockets answering, the guest's READY line), never for a
//! fixed time. Tear-down destroys domains, kills every process of every host and
//! deletes the namespaces, on `Drop`, on panic, and — through the [`reaper`] — when
//! the owning process is killed or interrupted.

pub mod accel;
pub mod artifacts;
mod caps_cache;
pub mod client;
pub mod cluster;
mod cmd;
pub mod error;
pub mod etcd;
pub mod ftd;
pub mod ftdlog;
mod gate;
pub mod guest;
pub mod host;
pub mod netns;
pub mod orphans;
mod partition;
pub mod posture;
pub mod reaper;
pub mod sandbox;
mod shm;
pub mod wait;
pub mod writer;

pub use accel::{Accel, AccelChoice};
pub use artifacts::{Artifacts, QemuChoice};
pub use client::{GuestConn, GuestInfo};
pub use error::{LabError, Result};
pub use gate::{check_host, skip_lab_test, SKIP_VAR};
pub use guest::{Guest, GuestSpec};
pub use host::Host;
pub use netns::NetNs;
pub use wait::{wait_until, wait_until_async, Look};

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The client's address on the LAN.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 2);
/// The witness host's name and address on the replication network.
pub const WITNESS: &str = "w";
pub const WITNESS_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 10);

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Host names: 1 to 8 lowercase letters or digits each.
    pub hosts: Vec<String>,
    /// Keep the lab directory (logs, disks) after tear-down, for a post-mortem.
    /// Default: the `FTVIRT_LAB_KEEP` environment variable is set.
    pub keep_dir: bool,
    /// Add the witness host [`WITNESS`] (no libvirtd; see [`cluster`]).
    pub witness: bool,
    /// etcd members on the witness (0: none; 1 or 3; see [`etcd`]).
    pub etcd: usize,
}

impl LabConfig {
    pub fn hosts(names: &[&str]) -> LabConfig {
        LabConfig {
            hosts: names.iter().map(|s| s.to_string()).collect(),
            keep_dir: std::env::var_os("FTVIRT_LAB_KEEP").is_some(),
            witness: false,
            etcd: 0,
        }
    }

    /// The same, with the witness host.
    pub fn with_witness(mut self) -> LabConfig {
        self.witness = true;
        self
    }

    /// The same, with an etcd witness of `members` members (1 or 3) on the
    /// witness host, started by [`Lab::start`] (see [`etcd`]).
    pub fn with_etcd(mut self, members: usize) -> LabConfig {
        self.witness = true;
        self.etcd = members;
        self
    }
}

/// A running lab; dropping it tears everything down.
#[derive(Debug)]
pub struct Lab {
    pub id: String,
    pub dir: PathBuf,
    pub artifacts: Artifacts,
    pub qemu: QemuChoice,
    pub accel: AccelChoice,
    /// Time taken by [`Lab::start`].
    pub startup: Duration,
    switch: NetNs,
    client: NetNs,
    hosts: Vec<Host>,
    witness: Option<Host>,
    etcd: Option<etcd::Etcd>,
    inodes: Vec<u64>,
    reaper: Option<reaper::Reaper>,
}

impl Lab {
    /// Bring up the namespaces, links and every host's libvirtd. Fails at once,
    /// having touched nothing, without root or the set-up's artifacts.
    pub fn start(cfg: LabConfig) -> Result<Lab> {
        let t0 = Instant::now();
        validate(&cfg)?;
        check_host()?;
        orphans::adopt();
        let artifacts = Artifacts::load()?;
        let qemu = artifacts.qemu()?;
        let accel = accel::choose(&artifacts, &qemu)?;
        let id = new_id();
        let base = std::env::var_os("FTVIRT_LAB_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp/ftvirt-lab"));
        let dir = base.join(&id);
        std::fs::create_dir_all(&dir).map_err(|e| LabError::io("creating", &dir, e))?;
        let prefix = format!("{}{id}-", netns::PREFIX);
        // The reaper first, so that anything created below is cleaned up whatever happens.
        let reaper = reaper::Reaper::start(&prefix, &dir, cfg.keep_dir)?;
        let mut lab = Lab {
            id,
            dir,
            artifacts,
            qemu,
            accel,
            startup: Duration::ZERO,
            switch: NetNs {
                name: format!("{prefix}sw"),
            },
            client: NetNs {
                name: format!("{prefix}cli"),
            },
            hosts: Vec::new(),
            witness: None,
            etcd: None,
            inodes: Vec::new(),
            reaper: Some(reaper),
        };
        lab.build_network(&prefix, &cfg)?;
        std::thread::scope(|s| {
            let handles: Vec<_> = lab
                .hosts
                .iter_mut()
                .chain(lab.witness.as_mut())
                .map(|h| s.spawn(move || h.boot()))
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().expect("host boot thread").map(|_| ()))
        })?;
        if cfg.etcd > 0 {
            lab.start_etcd(cfg.etcd)?;
        }
        lab.startup = t0.elapsed();
        Ok(lab)
    }

    /// A lab test's lab: `None` when `FTVIRT_SKIP_LAB=1` skips lab tests (the
    /// test returns); panics at once with a clear message without root or the
    /// set-up's artifacts, or when the lab does not start (see [`skip_lab_test`]).
    pub fn for_test(cfg: LabConfig) -> Option<Lab> {
        if skip_lab_test() {
            return None;
        }
        Some(Lab::start(cfg).unwrap_or_else(|e| panic!("starting the lab: {e}")))
    }

    fn build_network(&mut self, prefix: &str, cfg: &LabConfig) -> Result<()> {
        self.switch = NetNs::create(&format!("{prefix}sw"))?;
        self.inodes.push(self.switch.inode()?);
        self.switch.bridge("lan")?;
        self.switch.bridge("rep")?;
        self.client = NetNs::create(&format!("{prefix}cli"))?;
        self.inodes.push(self.client.inode()?);
        self.client.veth("eth0", &self.switch, "cli-lan")?;
        self.switch.attach("cli-lan", "lan")?;
        self.client.addr("eth0", &format!("{CLIENT_IP}/24"))?;
        for (i, name) in cfg.hosts.iter().enumerate() {
            let ns = NetNs::create(&format!("{prefix}{name}"))?;
            self.inodes.push(ns.inode()?);
            let (lan, rep) = (format!("{name}-lan"), format!("{name}-rep"));
            ns.veth("lan0", &self.switch, &lan)?;
            self.switch.attach(&lan, "lan")?;
            ns.bridge("br0")?;
            ns.attach("lan0", "br0")?;
            ns.veth("rep0", &self.switch, &rep)?;
            self.switch.attach(&rep, "rep")?;
            let ip = Ipv4Addr::new(10, 200, 0, 11 + i as u8);
            ns.addr("rep0", &format!("{ip}/24"))?;
            let hdir = self.dir.join(name);
            self.hosts.push(Host::new(
                name,
                ns,
                hdir,
                ip,
                self.switch.clone(),
                vec![lan, rep],
                true,
            ));
        }
        if cfg.witness {
            let ns = NetNs::create(&format!("{prefix}{WITNESS}"))?;
            self.inodes.push(ns.inode()?);
            let rep = format!("{WITNESS}-rep");
            ns.veth("rep0", &self.switch, &rep)?;
            self.switch.attach(&rep, "rep")?;
            ns.addr("rep0", &format!("{WITNESS_IP}/24"))?;
            self.witness = Some(Host::new(
                WITNESS,
                ns,
                self.dir.join(WITNESS),
                WITNESS_IP,
                self.switch.clone(),
                vec![rep],
                false,
            ));
        }
        Ok(())
    }

    /// The witness host, if the lab has one.
    pub fn witness(&self) -> Option<&Host> {
        self.witness.as_ref()
    }

    /// A host or the witness, by name.
    fn any_host(&self, name: &str) -> Result<&Host> {
        match &self.witness {
            Some(w) if w.name == name => Ok(w),
            _ => self.host(name),
        }
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    pub fn host(&self, name: &str) -> Result<&Host> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| LabError::Usage(format!("no host {name:?} in this lab")))
    }

    pub fn host_mut(&mut self, name: &str) -> Result<&mut Host> {
        self.hosts
            .iter_mut()
            .find(|h| h.name == name)
            .ok_or_else(|| LabError::Usage(format!("no host {name:?} in this lab")))
    }

    /// Define and start `spec` on host `host`, and wait until its service is READY.
    pub fn boot_guest(&self, host: &str, spec: &GuestSpec) -> Result<Guest> {
        let h = self.host(host)?;
        guest::boot(
            h,
            spec,
            &self.artifacts,
            &self.qemu,
            &self.accel,
            Duration::from_secs(120),
        )
    }

    /// A long-lived connection from the client namespace to a guest's service.
    pub fn connect(&self, g: &Guest) -> Result<GuestConn> {
        let addr = SocketAddr::from((g.ip, g.port));
        // The guest's service is READY, but ARP and the bridge may need a moment.
        wait::wait_until(
            &format!("the client to connect to {addr}"),
            Duration::from_secs(30),
            Duration::from_millis(100),
            || GuestConn::open(&self.client.path(), addr, Duration::from_secs(5)).into(),
        )
    }

    /// The client namespace (`/run/netns/...`), for programs that run in it.
    pub fn client_ns(&self) -> &NetNs {
        &self.client
    }

    /// Power-cut a host: links down, then every process SIGKILLed.
    pub fn kill_host(&mut self, name: &str) -> Result<usize> {
        self.host_mut(name)?.kill()
    }

    /// Power a killed host back on (its disks and persistent libvirt config remain).
    pub fn restart_host(&mut self, name: &str) -> Result<Duration> {
        self.host_mut(name)?.boot()
    }

    /// Inodes of every namespace of this lab (for leak checks after tear-down).
    pub fn netns_inodes(&self) -> &[u64] {
        &self.inodes
    }

    /// Tear down now and report how it went (`Drop` does the same, silently).
    pub fn shutdown(mut self) -> Result<()> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<()> {
        for h in &self.hosts {
            let _ = h.destroy_all();
        }
        let r = match self.reaper.take() {
            Some(r) => r.finish(Duration::from_secs(60)),
            None => Ok(()),
        };
        if let Some(e) = &mut self.etcd {
            e.reap();
        }
        shm::sweep_dead_qb();
        r
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("ftvirt-lab: tear-down of lab {}: {e}", self.id);
        }
    }
}

fn validate(cfg: &LabConfig) -> Result<()> {
    if cfg.hosts.is_empty() {
        return Err(LabError::Usage("a lab needs at least one host".into()));
    }
    for (i, h) in cfg.hosts.iter().enumerate() {
        let ok = (1..=8).contains(&h.len())
            && h.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !ok || matches!(h.as_str(), "sw" | "cli") {
            return Err(LabError::Usage(format!(
                "host name {h:?}: use 1 to 8 lowercase letters or digits, not `sw` or `cli`"
            )));
        }
        if cfg.witness && h == WITNESS {
            return Err(LabError::Usage(format!(
                "host name {h:?} is the witness's: give the host another name"
            )));
        }
        if cfg.hosts[..i].contains(h) {
            return Err(LabError::Usage(format!("host name {h:?} given twice")));
        }
    }
    if !matches!(cfg.etcd, 0 | 1 | 3) {
        return Err(LabError::Usage(format!(
            "{} etcd members: use 1 (a single witness) or 3 (a cluster that keeps a \
             quorum of 2)",
            cfg.etcd
        )));
    }
    if cfg.hosts.len() > 200 {
        return Err(LabError::Usage("at most 200 hosts".into()));
    }
    Ok(())
}

/// Six hex digits, unique enough among concurrent labs (pid and clock mixed).
fn new_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let x = (std::process::id() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ nanos;
    format!("{:06x}", (x ^ (x >> 24)) & 0xff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_validated() {
        assert!(validate(&LabConfig::hosts(&["a", "b"])).is_ok());
        for bad in [
            &[][..],
            &["A"],
            &["toolongname"],
            &["a", "a"],
            &["sw"],
            &["a-b"],
        ] {
            let e = validate(&LabConfig::hosts(bad)).unwrap_err().to_string();
            assert!(e.contains("host") || e.contains("at least"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn etcd_needs_one_or_three_members_and_brings_the_witness() {
        let c = LabConfig::hosts(&["a", "b"]).with_etcd(3);
        assert!(c.witness && validate(&c).is_ok());
        for n in [2, 4] {
            let e = validate(&LabConfig::hosts(&["a"]).with_etcd(n)).unwrap_err();
            assert!(e.to_string().contains("use 1"), "{n}: {e}");
        }
    }

    #[test]
    fn ids_are_six_hex_digits() {
        let id = new_id();
        assert_eq!(id.len(), 6);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
