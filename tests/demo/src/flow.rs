//! The demo's scenario, one phase after the other, with every guarantee checked:
//!
//! 1. boot the 2-vCPU guest on host a; start each host's system bus and ftd; open
//!    ONE client connection, check `INFO nproc=2`, start the client thread;
//! 2. protect: `Enable` on a, until a is `protected` and b `secondary`;
//! 3. run protected until a has made a few checkpoints with the client writing;
//! 4. power-cut host a: b takes over by itself; the client's next reply times the
//!    failover; b must report `degraded`;
//! 5. check: same connection, same boot, every acknowledged write on the disk;
//! 6. power a on again and start its ftd: b re-protects onto it by itself;
//! 7. fail back: `Failover` on b, until a is `protected` and b `secondary`; check
//!    again.
//!
//! Any broken guarantee ends the flow with a [`Broken`](crate::report::Broken).

use crate::ftd::{self, Ftds};
use crate::report::{broken, Report};
use crate::say;
use anyhow::{Context, Result};
use ftvirt_lab::writer::{verify_writes, Writer};
use ftvirt_lab::{GuestSpec, Lab};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub const DOMAIN: &str = "ftdemo";
/// A reply may take this long before the connection counts as lost.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// Writes the client makes before protection, and after re-protection and
/// fail-back before the next phase (about a second at one write every 50 ms).
const RUN_WRITES: u64 = 20;
/// Checkpoints the primary makes in the "protected" phase, and after re-protection.
const PROTECTED_CHECKPOINTS: u64 = 3;
const WRITES_TIMEOUT: Duration = Duration::from_secs(30);
const CHECKPOINTS_TIMEOUT: Duration = Duration::from_secs(60);
const PROTECT_TIMEOUT: Duration = Duration::from_secs(120);
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(60);
const REPROTECT_TIMEOUT: Duration = Duration::from_secs(180);

/// Console lines that mean the guest kernel crashed.
const CRASH_MARKS: &[&str] = &[
    "Kernel panic",
    "BUG:",
    "kernel BUG",
    "not a head",
    "Oops",
    "general protection fault",
];

/// The figures of the RESULT line.
#[derive(Debug, Default)]
pub struct Summary {
    pub vcpus: u32,
    pub failover_ms: u128,
    pub lost: u64,
    pub reprotect_ms: u128,
}

/// The lab, the hosts' ftds, the client and what was seen so far.
#[derive(Debug)]
pub struct Demo {
    pub lab: Lab,
    pub ftds: Ftds,
    pub ftd_bin: PathBuf,
    pub writer: Option<Writer>,
    pub report: Report,
    boot_id: String,
    summary: Summary,
}

impl Demo {
    pub fn new(lab: Lab, ftds: Ftds, ftd_bin: PathBuf) -> Demo {
        Demo {
            lab,
            ftds,
            ftd_bin,
            writer: None,
            report: Report::default(),
            boot_id: String::new(),
            summary: Summary::default(),
        }
    }

    pub fn run(&mut self) -> Result<Summary> {
        self.boot()?;
        self.protect()?;
        self.run_protected()?;
        self.kill_and_fail_over()?;
        self.reprotect()?;
        self.fail_back()?;
        Ok(std::mem::take(&mut self.summary))
    }

    fn writer(&self) -> Result<&Writer> {
        self.writer
            .as_ref()
            .context("the client thread is not running")
    }

    fn boot(&mut self) -> Result<()> {
        let spec = GuestSpec::standard(DOMAIN, 0);
        say(&format!(
            "booting domain {} on host a: {} vCPUs, {} MiB, virtio disk and NIC, {} on the LAN",
            spec.name, spec.vcpus, spec.memory_mib, spec.ip
        ));
        let t0 = Instant::now();
        let g = self.lab.boot_guest("a", &spec)?;
        self.report.begin_at("boot / unprotected", t0).time = Some(g.boot_time);
        say(&format!("guest READY after {} ms", g.boot_time.as_millis()));
        say("starting each host's own system bus and ftd (checkpoint 2000 ms; heartbeat 50 ms and detection 200 ms, ftd's defaults with the witness)");
        ftd::start(&mut self.lab, &self.ftd_bin, "a", "b")?;
        ftd::start(&mut self.lab, &self.ftd_bin, "b", "a")?;
        say(&format!(
            "client {} opens ONE TCP connection to {}:{}",
            ftvirt_lab::CLIENT_IP,
            g.ip,
            g.port
        ));
        let mut conn = self.lab.connect(&g)?;
        conn.set_timeout(REPLY_TIMEOUT);
        let info = conn.info()?;
        self.summary.vcpus = info.nproc;
        if info.nproc != 2 {
            return Err(broken(
                format!("nproc={}", info.nproc),
                format!("the guest reports {} vCPUs, expected 2", info.nproc),
            ));
        }
        self.boot_id = info.boot_id;
        say(&format!(
            "INFO nproc={} boot_id={}; the client thread starts PUT n every ~50 ms on that connection",
            info.nproc, self.boot_id
        ));
        // INFO was the first request on the connection.
        self.writer = Some(Writer::start(conn, 1, 0).context("starting the client thread")?);
        self.run_writes("unprotected")?;
        if let Some(p) = self.report.current() {
            p.note = format!("guest booted on a; client made {RUN_WRITES} writes unprotected");
        }
        Ok(())
    }

    fn protect(&mut self) -> Result<()> {
        self.report.begin("protect");
        let t0 = Instant::now();
        let st = self.ftds.enable(&self.lab, "a", DOMAIN)?;
        say(&format!(
            "Enable({DOMAIN}) on a over D-Bus: {st}; waiting for a protected, b secondary"
        ));
        let (_, sts) = self.ftds.wait(
            &self.lab,
            DOMAIN,
            &[("a", "protected"), ("b", "secondary")],
            PROTECT_TIMEOUT,
        )?;
        let t = t0.elapsed();
        say(&format!("protected in {} ms", t.as_millis()));
        self.check_client()?;
        let p = self.report.current().context("no phase")?;
        p.time = Some(t);
        p.checkpoints = Some(sts[0].checkpoints);
        p.note = "Enable on a until a protected, b secondary".into();
        Ok(())
    }

    fn run_protected(&mut self) -> Result<()> {
        self.report.begin("protected");
        let t0 = Instant::now();
        let first = self.ftds.status(&self.lab, "a", DOMAIN)?.checkpoints;
        say(&format!(
            "running protected until a has made {PROTECTED_CHECKPOINTS} more checkpoints"
        ));
        let s = self.ftds.wait_checkpoints(
            &self.lab,
            "a",
            DOMAIN,
            first + PROTECTED_CHECKPOINTS,
            CHECKPOINTS_TIMEOUT,
        )?;
        self.check_client()?;
        say(&format!(
            "a: {} with {} checkpoints, last {:.1} s ago",
            s.state, s.checkpoints, s.last_checkpoint_age
        ));
        let p = self.report.current().context("no phase")?;
        p.time = Some(t0.elapsed());
        p.checkpoints = Some(s.checkpoints);
        p.note = format!("a {}, peer {}", s.state, s.peer);
        if s.state != "protected" {
            return Err(broken(
                "not_protected",
                format!("after {PROTECTED_CHECKPOINTS} checkpoints, a reports {s:?}"),
            ));
        }
        Ok(())
    }

    fn kill_and_fail_over(&mut self) -> Result<()> {
        say("POWER CUT of host a (links down, every process SIGKILLed)");
        let t_kill = Instant::now();
        self.report.begin_at("kill a + failover", t_kill);
        self.lab.kill_host("a").context("killing host a")?;
        let w = self.writer()?;
        let r = w
            .wait_reply_sent_after(t_kill, FAILOVER_TIMEOUT)
            .map_err(|e| w.broken_wait(e, "no_reply_after_kill"))?;
        say(&format!(
            "first reply to a request sent after the kill: to {:?} (sent {} ms after the kill, round trip {} ms)",
            r.line.split_whitespace().take(2).collect::<Vec<_>>().join(" "),
            r.sent.duration_since(t_kill).as_millis(),
            r.rtt().as_millis()
        ));
        let (failover, gap, acked_before) = {
            let s = w.stats();
            (
                r.done - t_kill,
                s.longest_gap(t_kill, r.done),
                s.acked_before(t_kill),
            )
        };
        self.summary.failover_ms = failover.as_millis();
        say(&format!(
            "client's first reply {} ms after the kill (longest gap between replies {} ms)",
            failover.as_millis(),
            gap.as_millis()
        ));
        self.ftds
            .wait(&self.lab, DOMAIN, &[("b", "degraded")], FAILOVER_TIMEOUT)?;
        let degraded = t_kill.elapsed();
        let s = self.ftds.status(&self.lab, "b", DOMAIN)?;
        say(&format!(
            "b: degraded {} ms after the kill ({})",
            degraded.as_millis(),
            s.last_failover
        ));
        let last = self.verify("the failover", acked_before)?;
        let p = self.report.current().context("no phase")?;
        p.time = Some(failover);
        p.last = Some(last);
        p.note = format!(
            "reply gap {} ms; b degraded at {} ms; acked before kill {acked_before}",
            gap.as_millis(),
            degraded.as_millis()
        );
        Ok(())
    }

    fn reprotect(&mut self) -> Result<()> {
        self.report.begin("re-protect");
        say("powering host a on again, starting its system bus and ftd");
        let boot = self.lab.restart_host("a").context("restarting host a")?;
        ftd::start(&mut self.lab, &self.ftd_bin, "a", "b")?;
        let t_up = Instant::now();
        say(&format!(
            "host a up in {} ms; waiting for b to re-protect onto it by itself",
            boot.as_millis()
        ));
        let (_, sts) = self.ftds.wait(
            &self.lab,
            DOMAIN,
            &[("b", "protected"), ("a", "secondary")],
            REPROTECT_TIMEOUT,
        )?;
        let t = t_up.elapsed();
        self.summary.reprotect_ms = t.as_millis();
        say(&format!(
            "b protected, a secondary {} ms after a's ftd came up",
            t.as_millis()
        ));
        let s = self.ftds.wait_checkpoints(
            &self.lab,
            "b",
            DOMAIN,
            sts[0].checkpoints + PROTECTED_CHECKPOINTS,
            CHECKPOINTS_TIMEOUT,
        )?;
        self.check_client()?;
        let p = self.report.current().context("no phase")?;
        p.time = Some(t);
        p.checkpoints = Some(s.checkpoints);
        p.note = format!("a restarted in {} ms; b {}", boot.as_millis(), s.state);
        Ok(())
    }

    fn fail_back(&mut self) -> Result<()> {
        self.report.begin("fail back");
        let t0 = Instant::now();
        let acked_before = self.writer()?.stats().acked;
        let st = self.ftds.failover(&self.lab, "b", DOMAIN)?;
        say(&format!(
            "Failover({DOMAIN}) on b over D-Bus: {st}; waiting for a protected, b secondary"
        ));
        self.ftds.wait(
            &self.lab,
            DOMAIN,
            &[("a", "protected"), ("b", "secondary")],
            PROTECT_TIMEOUT,
        )?;
        let t = t0.elapsed();
        let t_back = Instant::now();
        say(&format!(
            "back on a, protected by b, in {} ms",
            t.as_millis()
        ));
        let w = self.writer()?;
        w.wait_acked(RUN_WRITES, WRITES_TIMEOUT)
            .map_err(|e| w.broken_wait(e, "no_replies_after_failback"))?;
        let s = self.ftds.status(&self.lab, "a", DOMAIN)?;
        let (after, gap) = {
            let w = w.stats();
            (
                w.replies_in(t_back, Instant::now()).count(),
                w.longest_gap(t0, Instant::now()),
            )
        };
        say(&format!("{after} client replies since the fail-back"));
        let last = self.verify("the fail-back", acked_before)?;
        let p = self.report.current().context("no phase")?;
        p.time = Some(t);
        p.checkpoints = Some(s.checkpoints);
        p.last = Some(last);
        p.note = format!(
            "Failover on b; reply gap {} ms; a {}",
            gap.as_millis(),
            s.state
        );
        Ok(())
    }

    /// After a failure: what the guest copies' consoles say (a diverged COLO
    /// secondary dies with a kernel crash), and where the logs are.
    pub fn diagnose(&self) {
        for h in self.lab.hosts() {
            let p = h
                .dir
                .join(format!("overlays/{DOMAIN}/secondary/serial.log"));
            let log = std::fs::read_to_string(&p).unwrap_or_default();
            let bad: Vec<&str> = log
                .lines()
                .filter(|l| CRASH_MARKS.iter().any(|m| l.contains(m)))
                .take(4)
                .collect();
            if !bad.is_empty() {
                say(&format!(
                    "the secondary's console on host {} shows a guest crash:",
                    h.name
                ));
                for l in bad {
                    eprintln!("    {l}");
                }
            }
        }
        let keep = if std::env::var_os("FTVIRT_LAB_KEEP").is_some() {
            "kept after tear-down (FTVIRT_LAB_KEEP)"
        } else {
            "deleted at tear-down; set FTVIRT_LAB_KEEP=1 to keep them"
        };
        say(&format!(
            "logs (ftd.log, QEMU logs, consoles) are under {}: {keep}",
            self.lab.dir.display()
        ));
    }

    /// A broken connection or a refused write is a broken guarantee.
    fn check_client(&self) -> Result<()> {
        Ok(self.writer()?.stats().trouble()?)
    }

    /// Wait until the client made [`RUN_WRITES`] more writes.
    fn run_writes(&self, phase: &str) -> Result<()> {
        let w = self.writer()?;
        w.wait_acked(RUN_WRITES, WRITES_TIMEOUT)
            .map_err(|e| w.broken_wait(e, "no_writes"))
            .with_context(|| format!("the client writing {phase}"))?;
        Ok(())
    }

    /// After `event`, on the same connection with the client paused, every
    /// guarantee of [`verify_writes`]; reads back the records acknowledged before
    /// the event too. Returns `LAST`.
    fn verify(&mut self, event: &str, acked_before: u64) -> Result<u64> {
        let w = self.writer()?;
        let v = verify_writes(w, &self.boot_id, event, &[acked_before / 2, acked_before])?;
        self.summary.lost = v.acked.saturating_sub(v.last);
        say(&format!("after {event}: {v}"));
        self.writer()?.resume()?;
        Ok(v.last)
    }
}
