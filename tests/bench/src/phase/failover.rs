//! Phase 2: failover of a protected guest, timed by a client that keeps ONE TCP
//! connection and makes a durable write every ~50 ms (the demo's client,
//! [`ftvirt_lab::writer`]).
//!
//! - primary loss: the primary's host is power-cut; the time is to the client's
//!   first reply to a request *sent after* the cut (a reply in flight does not
//!   count). Detection is when the survivor's ftd logged leaving `Secondary`
//!   (heartbeats missed), takeover the rest.
//! - secondary loss: the secondary's host is power-cut; the primary's packets are
//!   held by colo-compare until it leaves COLO, so the client sees a stall too.
//!   Detection is when the primary's ftd logged leaving `Protected`.
//! - planned: `Failover` over D-Bus on the primary; the time is the longest gap
//!   between the client's replies from the call until the guest is protected
//!   again the other way round; the hand-over is the call until the secondary's
//!   ftd logged `TakingOver`.
//!
//! After each run the lost host is powered on again with its ftd and the
//! survivor re-protects onto it by itself (timed too); the roles then swap.

use crate::bench::{say, sections, Bench, REPROTECT_TIMEOUT};
use crate::report::{ids, Target};
use crate::stats::ms;
use anyhow::{Context, Result};
use ftvirt_lab::ftdlog::FtdLog;
use ftvirt_lab::writer::{Stats, Writer};
use ftvirt_lab::Guest;
use std::time::{Duration, Instant, SystemTime};

pub const DOMAIN: &str = "benchft";
const FIRST_REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// Checkpoints the primary must make with the client connected before the event:
/// a steady state, not the first seconds of a connection (see `warm_up`).
const WARM_UP_CHECKPOINTS: u64 = 2;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    PrimaryLoss,
    SecondaryLoss,
    Planned,
}

#[derive(Debug, Default)]
struct Run {
    total_ms: f64,
    detect_ms: f64,
    takeover_ms: f64,
    tcp_kept: bool,
    reprotect_ms: f64,
}

#[derive(Debug)]
struct Roles {
    primary: &'static str,
    secondary: &'static str,
}

impl Roles {
    fn swap(&mut self) {
        std::mem::swap(&mut self.primary, &mut self.secondary);
    }
}

pub fn run(b: &mut Bench) -> Result<()> {
    let g = b.boot("a", DOMAIN, 1, 512)?;
    let t = b.protect(DOMAIN, "a", "b")?;
    say(&format!("{DOMAIN} protected in {} ms", t.as_millis()));
    let mut roles = Roles {
        primary: "a",
        secondary: "b",
    };
    let mut done: Vec<(Kind, Run)> = Vec::new();
    let result = (|| -> Result<()> {
        for kind in [Kind::PrimaryLoss, Kind::SecondaryLoss, Kind::Planned] {
            for i in 1..=b.opts.runs {
                say(&format!(
                    "failover {kind:?} run {i}/{}: primary {}, secondary {}",
                    b.opts.runs, roles.primary, roles.secondary
                ));
                let r = one(b, &g, kind, &mut roles)?;
                say(&format!(
                    "  {:.0} ms (detection {:.0} ms, takeover {:.0} ms), TCP kept: {}, re-protected in {:.0} ms",
                    r.total_ms, r.detect_ms, r.takeover_ms, r.tcp_kept, r.reprotect_ms
                ));
                done.push((kind, r));
            }
        }
        Ok(())
    })();
    let _ = b.unprotect(DOMAIN, roles.primary, roles.secondary);
    b.remove(DOMAIN);
    b.ft_primary_ms = add_figures(b, &done);
    result
}

fn one(b: &mut Bench, g: &Guest, kind: Kind, roles: &mut Roles) -> Result<Run> {
    let (p, s) = (roles.primary, roles.secondary);
    let mut conn = b.connect(g)?;
    let last = conn.last().context("LAST before the failover")?;
    let w = Writer::start(conn, 1, last).context("starting the client thread")?;
    warm_up(b, p)?;
    let (t0, t0_sys) = (Instant::now(), SystemTime::now());
    let mut run = Run::default();
    match kind {
        Kind::PrimaryLoss | Kind::SecondaryLoss => {
            let (lost, survivor) = if kind == Kind::PrimaryLoss {
                (p, s)
            } else {
                (s, p)
            };
            b.lab
                .kill_host(lost)
                .with_context(|| format!("killing host {lost}"))?;
            let first = wait_first_reply(&w, t0).inspect_err(|_| log_tail(b, survivor))?;
            run.total_ms = ms(first);
            b.wait(DOMAIN, &[(survivor, "degraded")], FIRST_REPLY_TIMEOUT)?;
            let from: &[&str] = if kind == Kind::PrimaryLoss {
                &["secondary"]
            } else {
                &["protected"]
            };
            let log = FtdLog::read(&b.lab.host(survivor)?.ftd_log())?.domain(DOMAIN);
            let detect = log
                .first_change_from(t0_sys, from)
                .and_then(|c| c.at.duration_since(t0_sys).ok())
                .context("the survivor's ftd log shows no state change after the kill")?;
            run.detect_ms = ms(detect);
            run.takeover_ms = run.total_ms - run.detect_ms;
            let stats = w.stop();
            run.tcp_kept = kept(&stats);
            b.lab
                .restart_host(lost)
                .with_context(|| format!("powering host {lost} on again"))?;
            b.start_ftd(lost, survivor)?;
            let t_up = Instant::now();
            b.wait(
                DOMAIN,
                &[(survivor, "protected"), (lost, "secondary")],
                REPROTECT_TIMEOUT,
            )?;
            run.reprotect_ms = ms(t_up.elapsed());
            if kind == Kind::PrimaryLoss {
                roles.swap();
            }
        }
        Kind::Planned => {
            b.ftds.failover(&b.lab, p, DOMAIN)?;
            b.wait(
                DOMAIN,
                &[(s, "protected"), (p, "secondary")],
                REPROTECT_TIMEOUT,
            )?;
            let t_end = Instant::now();
            w.wait_reply_sent_after(t_end, FIRST_REPLY_TIMEOUT)
                .map_err(|e| w.broken_wait(e, "no_reply_after_failover"))
                .context("the client after the planned failover")?;
            let stats = w.stop();
            run.total_ms = ms(stats.longest_gap(t0, t_end));
            run.tcp_kept = kept(&stats);
            let log = FtdLog::read(&b.lab.host(s)?.ftd_log())?.domain(DOMAIN);
            let handover = log
                .first_change_from(t0_sys, &["secondary"])
                .and_then(|c| c.at.duration_since(t0_sys).ok())
                .context("the secondary's ftd log shows no take-over after Failover")?;
            run.detect_ms = ms(handover);
            run.takeover_ms = log
                .step_after(t0_sys, "TakeOver")
                .map_or(f64::NAN, |st| st.ms as f64);
            run.reprotect_ms = ms(t_end - t0);
            roles.swap();
        }
    }
    Ok(run)
}

/// Wait until the primary made [`WARM_UP_CHECKPOINTS`] checkpoints with the
/// client's connection open, so that the secondary holds the connection from a
/// checkpoint and not only from replaying the primary's input.
fn warm_up(b: &Bench, primary: &str) -> Result<()> {
    let first = b.ftds.status(&b.lab, primary, DOMAIN)?.checkpoints;
    let n = first + WARM_UP_CHECKPOINTS;
    b.ftds
        .wait_checkpoints(&b.lab, primary, DOMAIN, n, Duration::from_secs(60))?;
    Ok(())
}

fn kept(s: &Stats) -> bool {
    s.broken.is_none() && s.refused.is_none()
}

/// After a failed run: the survivor's last ftd log lines for the domain.
fn log_tail(b: &Bench, host: &str) {
    let Ok(h) = b.lab.host(host) else { return };
    let text = std::fs::read_to_string(h.ftd_log()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(DOMAIN)).collect();
    say(&format!("host {host}'s ftd log for {DOMAIN} ends:"));
    for l in &lines[lines.len().saturating_sub(8)..] {
        eprintln!("    {l}");
    }
}

/// Time from `t0` to the first reply to a request sent at or after `t0`.
fn wait_first_reply(w: &Writer, t0: Instant) -> Result<Duration> {
    let r = w
        .wait_reply_sent_after(t0, FIRST_REPLY_TIMEOUT)
        .map_err(|e| w.broken_wait(e, "no_reply_after_fault"))?;
    Ok(r.done - t0)
}

/// The figures; returns the primary-loss times (for the HA comparison).
fn add_figures(b: &mut Bench, done: &[(Kind, Run)]) -> Vec<f64> {
    let r = &mut b.report;
    let f = sections::FAILOVER;
    let of = |k: Kind, g: fn(&Run) -> f64| -> Vec<f64> {
        done.iter()
            .filter(|(x, _)| *x == k)
            .map(|(_, r)| g(r))
            .collect()
    };
    use Kind::*;
    let primary = of(PrimaryLoss, |r| r.total_ms);
    r.add(
        f,
        ids::FAILOVER_MS,
        "primary loss: kill -> first reply",
        "ms",
        primary.clone(),
        Some(Target::Below(1000.0)),
    );
    r.add(
        f,
        "ft.primary_detect_ms",
        "  detection (survivor's ftd leaves Secondary)",
        "ms",
        of(PrimaryLoss, |r| r.detect_ms),
        None,
    );
    r.add(
        f,
        "ft.primary_takeover_ms",
        "  takeover (the rest, to the reply)",
        "ms",
        of(PrimaryLoss, |r| r.takeover_ms),
        None,
    );
    r.add(
        f,
        "ft.secondary_loss_ms",
        "secondary loss: kill -> first reply",
        "ms",
        of(SecondaryLoss, |r| r.total_ms),
        None,
    );
    r.add(
        f,
        "ft.secondary_detect_ms",
        "  detection (primary's ftd leaves Protected)",
        "ms",
        of(SecondaryLoss, |r| r.detect_ms),
        None,
    );
    r.add(
        f,
        "ft.secondary_takeover_ms",
        "  leaving COLO (the rest, to the reply)",
        "ms",
        of(SecondaryLoss, |r| r.takeover_ms),
        None,
    );
    r.add(
        f,
        "ft.planned_gap_ms",
        "planned Failover: longest client reply gap",
        "ms",
        of(Planned, |r| r.total_ms),
        None,
    );
    r.add(
        f,
        "ft.planned_handover_ms",
        "  Failover call -> secondary takes over",
        "ms",
        of(Planned, |r| r.detect_ms),
        None,
    );
    r.add(
        f,
        "ft.planned_takeover_ms",
        "  takeover step on the secondary",
        "ms",
        of(Planned, |r| r.takeover_ms),
        None,
    );
    r.add(
        f,
        "ft.planned_total_ms",
        "  Failover call -> protected the other way",
        "ms",
        of(Planned, |r| r.reprotect_ms),
        None,
    );
    let losses: Vec<f64> = done
        .iter()
        .filter(|(k, _)| *k != Planned)
        .map(|(_, r)| r.reprotect_ms)
        .collect();
    r.add(
        f,
        "ft.reprotect_ms",
        "re-protect: lost host's ftd up -> protected",
        "ms",
        losses,
        None,
    );
    let kept = done.iter().filter(|(_, r)| r.tcp_kept).count() as f64;
    let all = if done.is_empty() {
        Vec::new()
    } else {
        vec![kept / done.len() as f64]
    };
    r.add(
        f,
        "ft.tcp_kept",
        "client's TCP connection kept (share of runs)",
        "1 = all",
        all,
        Some(Target::AtLeast(1.0)),
    );
    primary
}
