//! The benchmark's lab and what every phase shares: options, the two hosts' ftds,
//! booting and connecting to guests, waiting for states, and getting the lab back
//! into shape after a phase failed.

use crate::report::Report;
use anyhow::{Context, Result};
use ftvirt_demo::ftd::{self, Ftds};
use ftvirt_lab::ftdlog::FtdLog;
use ftvirt_lab::{wait_until, Guest, GuestConn, GuestSpec, Lab, Look};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// The table's sections, in the order.
pub mod sections {
    pub const OVERHEAD: &str = "1. guest overhead: protected / unprotected (512 MiB, 2 vCPUs)";
    pub const FAILOVER: &str =
        "2. failover: kill -> client's first reply to a request sent after it";
    pub const HA: &str = "3. HA baseline: kill -> domain started on the survivor -> first reply";
    pub const CHECKPOINTS: &str = "4. checkpoints (primary's QEMU STOP/RESUME events)";
    pub const PROTECT: &str = "5. protect (Enable -> protected) vs. plain live migration";
    pub const FOOTPRINT: &str = "6. ftd footprint";
    pub const TLS: &str =
        "7. COLO's TLS: the same guest with COLO's channels in clear and over TLS";
    pub const ALL: [&str; 7] = [OVERHEAD, FAILOVER, HA, CHECKPOINTS, PROTECT, FOOTPRINT, TLS];
}

/// A reply may take this long before a request fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
pub const PROTECT_TIMEOUT: Duration = Duration::from_secs(300);
pub const REPROTECT_TIMEOUT: Duration = Duration::from_secs(300);

/// How long each measurement runs.
#[derive(Debug, Clone)]
pub struct Opts {
    pub runs: usize,
    pub rr: Duration,
    pub writes: Duration,
    /// Target length of one unprotected CPU run.
    pub cpu: Duration,
    /// Idle window (checkpoints idle, ftd footprint).
    pub idle: Duration,
    pub phases: Vec<String>,
    pub json: PathBuf,
}

impl Opts {
    pub fn full(runs: usize) -> Opts {
        Opts {
            runs,
            rr: Duration::from_secs(5),
            writes: Duration::from_secs(5),
            cpu: Duration::from_secs(4),
            idle: Duration::from_secs(10),
            phases: PHASES.iter().map(|p| p.to_string()).collect(),
            json: PathBuf::from("bench.json"),
        }
    }

    pub fn quick() -> Opts {
        Opts {
            rr: Duration::from_secs(2),
            writes: Duration::from_secs(2),
            cpu: Duration::from_millis(1500),
            idle: Duration::from_secs(4),
            ..Opts::full(2)
        }
    }
}

/// The phases, in the order they run.
pub const PHASES: [&str; 5] = ["overhead", "protect", "failover", "ha", "tls"];

pub fn say(msg: &str) {
    eprintln!("[bench] {msg}");
}

/// The lab of two hosts, a and b, each with its own system bus and ftd.
#[derive(Debug)]
pub struct Bench {
    pub lab: Lab,
    pub ftds: Ftds,
    pub ftd_bin: PathBuf,
    pub opts: Opts,
    pub report: Report,
    /// Primary-loss failover times, for the HA comparison (kept if a later
    /// failover kind fails).
    pub ft_primary_ms: Vec<f64>,
}

impl Bench {
    pub fn new(lab: Lab, ftd_bin: PathBuf, opts: Opts) -> Result<Bench> {
        let mut b = Bench {
            lab,
            ftds: Ftds::new()?,
            ftd_bin,
            opts,
            report: Report::with_sections(&sections::ALL),
            ft_primary_ms: Vec::new(),
        };
        b.start_ftd("a", "b")?;
        b.start_ftd("b", "a")?;
        Ok(b)
    }

    /// Start host `name`'s system bus and ftd (same timings as the demo).
    pub fn start_ftd(&mut self, name: &str, peer: &str) -> Result<()> {
        ftd::start(&mut self.lab, &self.ftd_bin, name, peer)
    }

    pub fn ftd_pid(&self, host: &str) -> Result<u32> {
        self.lab
            .host(host)?
            .ftd_pid()
            .with_context(|| format!("host {host} has no ftd running"))
    }

    /// Boot the standard guest number `n` with `memory_mib` on `host`.
    pub fn boot(&self, host: &str, name: &str, n: u8, memory_mib: u32) -> Result<Guest> {
        let spec = GuestSpec {
            memory_mib,
            ..GuestSpec::standard(name, n)
        };
        say(&format!(
            "booting {name} on host {host}: {} vCPUs, {memory_mib} MiB, {}",
            spec.vcpus, spec.ip
        ));
        let g = self
            .lab
            .boot_guest(host, &spec)
            .with_context(|| format!("booting {name} on host {host}"))?;
        say(&format!("{name} READY in {} ms", g.boot_time.as_millis()));
        Ok(g)
    }

    /// A new connection from the client namespace, with the bench's reply timeout.
    pub fn connect(&self, g: &Guest) -> Result<GuestConn> {
        let c = self
            .lab
            .connect(g)
            .with_context(|| format!("connecting to {}", g.name))?;
        c.set_timeout(REPLY_TIMEOUT);
        Ok(c)
    }

    /// Wait until every `(host, state)` holds at once.
    pub fn wait(&self, domain: &str, want: &[(&str, &str)], timeout: Duration) -> Result<Duration> {
        Ok(self.ftds.wait(&self.lab, domain, want, timeout)?.0)
    }

    /// `Enable` on `host` and wait until it is protected by `peer`; the time from the
    /// call to the `protected` state change in `host`'s ftd log.
    pub fn protect(&self, domain: &str, host: &str, peer: &str) -> Result<Duration> {
        let t0 = SystemTime::now();
        self.ftds.enable(&self.lab, host, domain)?;
        let polled = self.wait(
            domain,
            &[(host, "protected"), (peer, "secondary")],
            PROTECT_TIMEOUT,
        )?;
        Ok(self
            .logged_change(host, domain, t0, "protected")
            .unwrap_or(polled))
    }

    /// `Disable` on `host`; returns once it is unprotected and `peer` has destroyed
    /// the secondary (its state says `standby` before that step ends, and a new
    /// `Enable` would wait for it).
    pub fn unprotect(&self, domain: &str, host: &str, peer: &str) -> Result<()> {
        let t0 = SystemTime::now();
        self.ftds.disable(&self.lab, host, domain)?;
        self.wait(domain, &[(host, "unprotected")], PROTECT_TIMEOUT)?;
        let log = self.lab.host(peer)?.ftd_log();
        wait_until(
            &format!("host {peer}'s ftd to destroy the secondary of {domain}"),
            Duration::from_secs(60),
            Duration::from_millis(50),
            || match FtdLog::read(&log) {
                Ok(l) => {
                    let done = l
                        .domain(domain)
                        .step_after(t0, "DestroySecondary")
                        .is_some();
                    Look::holds(done, || {
                        "no DestroySecondary step done in its log yet".into()
                    })
                }
                Err(e) => Look::Seen(e.to_string()),
            },
        )?;
        Ok(())
    }

    /// When `host`'s ftd logged `domain` entering state `to` after `t0`.
    pub fn logged_change(
        &self,
        host: &str,
        domain: &str,
        t0: SystemTime,
        to: &str,
    ) -> Option<Duration> {
        let log = FtdLog::read(&self.lab.host(host).ok()?.ftd_log()).ok()?;
        let c = log.domain(domain).first_change_to(t0, to)?.clone();
        c.at.duration_since(t0).ok()
    }

    /// Destroy and undefine `domain` wherever it is.
    pub fn remove(&self, domain: &str) {
        for h in self.lab.hosts() {
            if h.is_up() {
                let _ = h.virsh(&["destroy", domain]);
                let _ = h.virsh(&["undefine", domain]);
            }
        }
    }

    /// After a failed phase: both hosts up with their ftd, no domain running.
    pub fn recover(&mut self) -> Result<()> {
        for (name, peer) in [("a", "b"), ("b", "a")] {
            let up = self.lab.host(name)?.is_up();
            if !up {
                say(&format!("recovering: powering host {name} on again"));
                self.lab.restart_host(name)?;
                self.start_ftd(name, peer)?;
                continue;
            }
            let h = self.lab.host(name)?;
            h.destroy_all()?;
            let alive = h
                .ftd_pid()
                .is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                say(&format!("recovering: starting host {name}'s ftd again"));
                let cfg = ftd::yaml(&self.lab, h, self.lab.host(peer)?);
                self.lab.host_mut(name)?.kill_ftd();
                self.lab.host_mut(name)?.start_ftd(
                    &self.ftd_bin,
                    &cfg,
                    ::ftd::config::DEFAULT_BUS_NAME,
                )?;
            }
        }
        Ok(())
    }
}
