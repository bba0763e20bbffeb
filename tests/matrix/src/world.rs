//! A scenario's world: a fresh lab made as its [`Setup`] says, each paired host's
//! own system bus and ftd, the guests, and per guest a [`Tenant`]: the client
//! thread on ONE connection making numbered durable writes (the lab's writer),
//! opened before `Enable`, and where the guest runs now.
//!
//! The helpers here are what scenario bodies are made of: protect, wait for
//! states and checkpoints, the faults (kill a host, kill a QEMU); and in
//! [`client`], wait for the failover as the client sees it and verify on the
//! client's own connection. Failures are [`broken`] errors with a short reason
//! for the row.

mod client;

use crate::say;
use crate::watch::Watch;
use anyhow::{Context, Result};
use ftd::api::DomainStatus;
use ftvirt_demo::ftd::Ftds;
use ftvirt_demo::report::broken;
use ftvirt_lab::writer::Writer;
use ftvirt_lab::{Guest, GuestSpec, Lab, LabConfig};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A reply may take this long before the client's connection counts as lost.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long protection may take to be reached.
pub const PROTECT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the client may wait for its first reply after a fault.
pub const FAILOVER_TIMEOUT: Duration = Duration::from_secs(60);

/// One guest of a scenario.
#[derive(Debug, Clone, Copy)]
pub struct GuestShape {
    pub name: &'static str,
    /// Where it boots (the first primary) and its peer.
    pub host: &'static str,
    pub peer: &'static str,
    pub vcpus: u32,
    pub memory_mib: u32,
}

impl GuestShape {
    /// The lab's standard guest `g`: 2 vCPUs, 512 MiB, on a, protected by b.
    pub const STANDARD: GuestShape = GuestShape {
        name: "g",
        host: "a",
        peer: "b",
        vcpus: 2,
        memory_mib: 512,
    };
}

/// The lab a scenario needs.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Lab hosts; the first two are the pair, each runs ftd with the other as peer.
    pub hosts: &'static [&'static str],
    pub guests: &'static [GuestShape],
    /// ftd's checkpoint interval (heartbeat and detection: ftd's defaults with
    /// the witness, 50 and 200 ms).
    pub checkpoint_ms: u64,
    /// Protect every guest before the body runs (until protected, which ftd
    /// reports after the session's first checkpoint).
    pub protect: bool,
    /// Runs after the guests booted and before the ftds start.
    pub prepare: Option<fn(&mut Lab) -> Result<()>>,
}

impl Setup {
    /// Hosts a and b, the standard guest on a, protected by b.
    pub const STANDARD: Setup = Setup {
        hosts: &["a", "b"],
        guests: &[GuestShape::STANDARD],
        checkpoint_ms: 1000,
        protect: true,
        prepare: None,
    };

    /// The same, left unprotected (the body calls `Enable` itself).
    pub const UNPROTECTED: Setup = Setup {
        protect: false,
        ..Setup::STANDARD
    };
}

/// A guest, its client and where it runs.
#[derive(Debug)]
pub struct Tenant {
    pub shape: GuestShape,
    pub guest: Guest,
    pub writer: Option<Writer>,
    pub boot_id: String,
    /// The host running the copy clients see, and its peer.
    pub primary: String,
    pub peer: String,
    /// The client's connection must survive (false where the scenario shows a
    /// guest dying with its unprotected host).
    pub tcp_promised: bool,
    /// Highest record read back (`LAST`) by the last verification.
    pub found: Option<u64>,
    pub lost: u64,
}

/// ftd's process on a host, as first seen (for leak checks at the end).
#[derive(Debug, Clone, Copy)]
pub struct FtdProbe {
    pub pid: u32,
    pub fds: usize,
    pub rss_kib: u64,
}

/// A scenario's lab and everything running in it.
#[derive(Debug)]
pub struct World {
    pub lab: Lab,
    pub ftds: Ftds,
    pub bin: PathBuf,
    pub setup: Setup,
    pub tenants: Vec<Tenant>,
    /// Largest fault -> first reply time seen so far.
    pub failover: Option<Duration>,
    /// What happened, for the row's notes.
    pub notes: Vec<String>,
    /// Each paired host's ftd when the guests were protected.
    pub baseline: Vec<(String, FtdProbe)>,
    /// Objects the body found left behind (the runner adds its own checks).
    pub leaked: Vec<String>,
    pub(crate) watch: Option<Watch>,
}

impl World {
    /// A fresh lab with its guests booted, both ftds up, each guest's client
    /// writing on its one connection, the split-brain watch running, and (if the
    /// setup says so) every guest protected.
    pub fn start(setup: &Setup, bin: &std::path::Path) -> Result<World> {
        // The etcd witness on host w, as production runs (ftd's arbiter and its
        // detection defaults with it).
        let lab =
            Lab::start(LabConfig::hosts(setup.hosts).with_etcd(1)).context("starting the lab")?;
        say(&format!(
            "lab {} up in {:.1}s ({}; {})",
            lab.id,
            lab.startup.as_secs_f64(),
            lab.accel,
            lab.qemu.label
        ));
        let mut w = World {
            lab,
            ftds: Ftds::new()?,
            bin: bin.to_path_buf(),
            setup: *setup,
            tenants: Vec::new(),
            failover: None,
            notes: Vec::new(),
            baseline: Vec::new(),
            leaked: Vec::new(),
            watch: None,
        };
        let mut guests = Vec::new();
        for (i, s) in setup.guests.iter().enumerate() {
            let mut spec = GuestSpec::standard(s.name, i as u8);
            spec.vcpus = s.vcpus;
            spec.memory_mib = s.memory_mib;
            let g = w.lab.boot_guest(s.host, &spec)?;
            say(&format!(
                "{} READY on {} after {} ms ({} vCPUs, {} MiB)",
                s.name,
                s.host,
                g.boot_time.as_millis(),
                s.vcpus,
                s.memory_mib
            ));
            guests.push(g);
        }
        if let Some(prepare) = setup.prepare {
            prepare(&mut w.lab).context("preparing the lab")?;
        }
        for h in w.pair() {
            w.start_ftd(h)?;
        }
        for (s, g) in setup.guests.iter().zip(guests) {
            w.tenants.push(w.client(s, g)?);
        }
        let hosts = w
            .lab
            .hosts()
            .iter()
            .map(|h| (h.name.clone(), h.uri()))
            .collect();
        let doms = setup.guests.iter().map(|g| g.name.to_string()).collect();
        w.watch = Some(Watch::start(hosts, doms).context("starting the split-brain watch")?);
        if setup.protect {
            for i in 0..w.tenants.len() {
                w.protect(i)?;
            }
        }
        w.baseline = w
            .pair()
            .into_iter()
            .filter_map(|h| Some((h.to_string(), w.probe(h)?)))
            .collect();
        Ok(w)
    }

    /// The two paired hosts.
    pub fn pair(&self) -> Vec<&'static str> {
        self.setup.hosts.iter().take(2).copied().collect()
    }

    /// The other host of the pair.
    pub fn other(&self, host: &str) -> &'static str {
        self.pair().into_iter().find(|h| *h != host).unwrap_or("b")
    }

    /// Start host `name`'s system bus and ftd (paired with the other host, the
    /// lab's etcd witness its arbiter).
    pub fn start_ftd(&mut self, name: &str) -> Result<()> {
        let peer = self.other(name);
        let cfg = ftvirt_lab::ftd::lab_yaml(
            &self.lab,
            self.lab.host(name)?,
            self.lab.host(peer)?,
            self.setup.checkpoint_ms,
        );
        let bin = self.bin.clone();
        let h = self.lab.host_mut(name)?;
        h.start_dbus()
            .with_context(|| format!("starting the system bus of host {name}"))?;
        h.start_ftd(&bin, &cfg, ftd::config::DEFAULT_BUS_NAME)
            .with_context(|| format!("starting ftd on host {name}"))?;
        Ok(())
    }

    /// The guest's client: ONE connection from the client namespace, `INFO` to
    /// check the vCPUs and note the boot, then the writer thread on it.
    fn client(&self, s: &GuestShape, g: Guest) -> Result<Tenant> {
        let mut conn = self.lab.connect(&g)?;
        conn.set_timeout(REPLY_TIMEOUT);
        let info = conn.info()?;
        if info.nproc != s.vcpus {
            return Err(broken(
                format!("nproc={}", info.nproc),
                format!(
                    "{} reports {} vCPUs, expected {}",
                    s.name, info.nproc, s.vcpus
                ),
            ));
        }
        let writer = Writer::start(conn, 1, info.last).context("starting the client thread")?;
        Ok(Tenant {
            shape: *s,
            guest: g,
            writer: Some(writer),
            boot_id: info.boot_id,
            primary: s.host.to_string(),
            peer: s.peer.to_string(),
            tcp_promised: true,
            found: None,
            lost: 0,
        })
    }

    /// `Enable` guest `i` on its primary; returns once the primary is protected
    /// and the peer secondary.
    pub fn protect(&mut self, i: usize) -> Result<Duration> {
        let t = &self.tenants[i];
        let (dom, p, s) = (t.shape.name, t.primary.clone(), t.peer.clone());
        let t0 = Instant::now();
        let st = self.ftds.enable(&self.lab, &p, dom)?;
        say(&format!("Enable({dom}) on {p}: {st}"));
        self.wait(
            &[(&p, dom, &["protected"]), (&s, dom, &["secondary"])],
            PROTECT_TIMEOUT,
        )?;
        say(&format!(
            "{dom}: protected on {p}, secondary on {s} in {} ms",
            t0.elapsed().as_millis()
        ));
        self.check_clients()?;
        Ok(t0.elapsed())
    }

    /// Poll until every `(host, domain, any of states)` holds at once (see
    /// [`Ftds::wait_all`]).
    pub fn wait(
        &self,
        want: &[(&str, &str, &[&str])],
        timeout: Duration,
    ) -> Result<Vec<DomainStatus>> {
        self.ftds.wait_all(&self.lab, want, timeout)
    }

    pub fn status(&self, host: &str, dom: &str) -> Result<DomainStatus> {
        self.ftds.status(&self.lab, host, dom)
    }

    /// Wait until guest `i`'s primary counted `n` more checkpoints than now (the
    /// client's connection then lives through them).
    pub fn checkpoints(&self, i: usize, n: u64) -> Result<u64> {
        let t = &self.tenants[i];
        let first = self.status(&t.primary, t.shape.name)?.checkpoints;
        let timeout = Duration::from_secs(30) + Duration::from_millis(self.setup.checkpoint_ms * n);
        let s =
            self.ftds
                .wait_checkpoints(&self.lab, &t.primary, t.shape.name, first + n, timeout)?;
        Ok(s.checkpoints)
    }

    /// Power-cut host `name` (links down, every process SIGKILLed); returns
    /// when it happened.
    pub fn kill_host(&mut self, name: &str) -> Result<Instant> {
        say(&format!("POWER CUT of host {name}"));
        let t = Instant::now();
        self.lab
            .kill_host(name)
            .with_context(|| format!("killing host {name}"))?;
        Ok(t)
    }

    /// Power host `name` on again and start its ftd.
    pub fn restart_host(&mut self, name: &str) -> Result<()> {
        let took = self
            .lab
            .restart_host(name)
            .with_context(|| format!("restarting host {name}"))?;
        self.start_ftd(name)?;
        say(&format!(
            "host {name} up again in {} ms, its ftd started",
            took.as_millis()
        ));
        Ok(())
    }

    /// SIGKILL the QEMU of `dom` on `host` (libvirt's pid file); returns when.
    pub fn kill_qemu(&self, host: &str, dom: &str) -> Result<Instant> {
        let pid = qemu_pid(&self.lab, host, dom)?;
        say(&format!("SIGKILL of {dom}'s QEMU on {host} (pid {pid})"));
        let t = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .with_context(|| format!("killing QEMU pid {pid}"))?;
        Ok(t)
    }

    /// ftd on `host`: pid, open file descriptors and resident memory.
    pub fn probe(&self, host: &str) -> Option<FtdProbe> {
        let pid = self.lab.host(host).ok()?.ftd_pid()?;
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())?;
        Some(FtdProbe { pid, fds, rss_kib })
    }

    pub fn note(&mut self, s: impl Into<String>) {
        let s = s.into();
        say(&s);
        self.notes.push(s);
    }
}

/// The pid of `dom`'s QEMU on `host`, from libvirt's pid file, checked against
/// `/proc` (it must be a live QEMU).
pub fn qemu_pid(lab: &Lab, host: &str, dom: &str) -> Result<u32> {
    let f = lab.host(host)?.dir.join(format!("run/qemu/{dom}.pid"));
    let pid: u32 = std::fs::read_to_string(&f)
        .with_context(|| format!("reading {}", f.display()))?
        .trim()
        .parse()
        .with_context(|| format!("{} holds no pid", f.display()))?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    anyhow::ensure!(
        comm.starts_with("qemu"),
        "pid {pid} from {} is {:?}, not a QEMU",
        f.display(),
        comm.trim()
    );
    Ok(pid)
}
