//! The client side of a scenario's checks, on each guest's own connection:
//! waiting for writes, the failover as the client sees it (the first reply to a
//! request sent after the fault), and the verification after an event (same
//! boot, same connection, every acknowledged write read back).

use super::{World, FAILOVER_TIMEOUT};
use crate::say;
use anyhow::{Context, Result};
use ftvirt_demo::report::broken;
use ftvirt_demo::writer::payload;
use ftvirt_lab::client::field;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(100);

impl World {
    /// Wait until every client has `n` more writes acknowledged than now.
    pub fn writes(&self, n: u64) -> Result<()> {
        for t in &self.tenants {
            let w = t
                .writer
                .as_ref()
                .context("the client thread is not running")?;
            let first = w.stats().acked;
            let t0 = Instant::now();
            while w.stats().acked < first + n {
                if t0.elapsed() > Duration::from_secs(30) {
                    return Err(broken(
                        "no_writes",
                        format!(
                            "{}: fewer than {n} writes acknowledged in 30 s",
                            t.shape.name
                        ),
                    ));
                }
                std::thread::sleep(POLL);
            }
        }
        self.check_clients()
    }

    /// Wait until every guest's client got a reply to a request sent after `t`;
    /// the longest such time is the scenario's failover time. A broken
    /// connection or no reply within [`FAILOVER_TIMEOUT`] is a failure.
    pub fn failover_after(&mut self, t: Instant) -> Result<Duration> {
        let mut worst = Duration::ZERO;
        for tn in &self.tenants {
            let w = tn
                .writer
                .as_ref()
                .context("the client thread is not running")?;
            let took = loop {
                {
                    let s = w.stats();
                    if let Some(r) = s.first_reply_sent_after(t) {
                        break r.done - t;
                    }
                    if let Some(why) = &s.broken {
                        return Err(broken(
                            "connection_lost",
                            format!(
                                "{}: the client's connection broke after the fault: {why}",
                                tn.shape.name
                            ),
                        ));
                    }
                }
                if t.elapsed() > FAILOVER_TIMEOUT {
                    return Err(broken(
                        "no_reply_after_fault",
                        format!(
                            "{}: no client reply within {FAILOVER_TIMEOUT:?} of the fault",
                            tn.shape.name
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            say(&format!(
                "{}: first reply {} ms after the fault",
                tn.shape.name,
                took.as_millis()
            ));
            worst = worst.max(took);
        }
        self.failover = Some(self.failover.map_or(worst, |f| f.max(worst)));
        Ok(worst)
    }

    /// A broken connection or a refused write is a broken guarantee.
    pub fn check_clients(&self) -> Result<()> {
        for t in &self.tenants {
            let Some(w) = &t.writer else { continue };
            let s = w.stats();
            if let Some(why) = &s.broken {
                if t.tcp_promised {
                    return Err(broken(
                        "connection_lost",
                        format!("{}: the client's connection broke: {why}", t.shape.name),
                    ));
                }
            }
            if let Some(why) = &s.refused {
                return Err(broken(
                    "write_refused",
                    format!("{}: the guest refused a write: {why}", t.shape.name),
                ));
            }
        }
        Ok(())
    }

    /// Verify every guest (see [`World::verify`]).
    pub fn verify_all(&mut self, event: &str) -> Result<()> {
        for i in 0..self.tenants.len() {
            self.verify(i, event)?;
        }
        Ok(())
    }

    /// After `event`, on guest `i`'s own connection with its writes paused: the
    /// same boot, the same connection (the guest's request count for it matches
    /// the client's), every acknowledged write on the disk (`LAST`) and records
    /// read back intact (`GET`). Returns `LAST`.
    pub fn verify(&mut self, i: usize, event: &str) -> Result<u64> {
        let last = self.verify_paused(i, event)?;
        if let Some(w) = &self.tenants[i].writer {
            w.resume()?;
        }
        Ok(last)
    }

    /// [`World::verify`], leaving the client's writes paused (the writes
    /// acknowledged are then exactly those the read-back covered).
    pub fn verify_paused(&mut self, i: usize, event: &str) -> Result<u64> {
        self.check_clients()?;
        let t = &mut self.tenants[i];
        let dom = t.shape.name;
        let w = t
            .writer
            .as_ref()
            .context("the client thread is not running")?;
        w.pause()?;
        let who = format!("{dom}: ");
        let ask = |line: &str| ftvirt_demo::report::ask(w, &who, line, event);
        let info = ask("INFO")?;
        let boot_id = field(&info, "boot_id").unwrap_or_default();
        if boot_id != t.boot_id {
            return Err(broken(
                "guest_rebooted",
                format!(
                    "{dom}: boot_id was {} and is {boot_id:?} after {event}",
                    t.boot_id
                ),
            ));
        }
        let last = parse_last(&ask("LAST")?)?;
        let acked = w.stats().acked;
        t.found = Some(last);
        t.lost = acked.saturating_sub(last);
        if t.lost > 0 {
            return Err(broken(
                format!("lost={}", t.lost),
                format!(
                    "{dom}: {acked} writes were acknowledged, the disk holds {last} after {event}"
                ),
            ));
        }
        let mut picks = vec![1, acked / 2, acked];
        picks.retain(|&n| n > 0);
        picks.dedup();
        for n in &picks {
            let want = format!("REC {n} {}", payload(*n));
            let got = ask(&format!("GET {n}"))?;
            if got != want {
                return Err(broken(
                    format!("record_{n}_wrong"),
                    format!("{dom}: GET {n} got {got:?}, expected {want:?} after {event}"),
                ));
            }
        }
        let seq = ask("SEQ 1")?;
        let (ours, theirs) = (w.stats().sent, field(&seq, "conn").unwrap_or_default());
        if theirs != ours.to_string() {
            return Err(broken(
                "connection_changed",
                format!("{dom}: the guest counts {theirs} requests on this connection, the client sent {ours}"),
            ));
        }
        say(&format!(
            "{dom} after {event}: same boot, LAST {last} >= {acked} acknowledged, GET {picks:?} intact, same connection ({ours} requests)"
        ));
        Ok(last)
    }

    /// `LAST` on a new connection to guest `i` (when its own connection is gone).
    pub fn last_on_new_connection(&self, i: usize) -> Result<u64> {
        let mut c = self.lab.connect(&self.tenants[i].guest)?;
        c.set_timeout(Duration::from_secs(30));
        Ok(c.last()?)
    }
}

fn parse_last(reply: &str) -> Result<u64> {
    reply
        .strip_prefix("LAST ")
        .and_then(|n| n.trim().parse().ok())
        .with_context(|| format!("LAST got {reply:?}"))
}
