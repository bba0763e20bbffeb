//! The client side of a scenario's checks, on each guest's own connection:
//! waiting for writes, the failover as the client sees it (the first reply to a
//! request sent after the fault), and the verification after an event (same
//! boot, same connection, every acknowledged write read back).

use super::{World, FAILOVER_TIMEOUT};
use crate::say;
use anyhow::{Context, Result};
use ftvirt_demo::report::broken;
use ftvirt_lab::writer::verify_writes;
use std::time::{Duration, Instant};

impl World {
    /// Wait until every client has `n` more writes acknowledged than now.
    pub fn writes(&self, n: u64) -> Result<()> {
        for t in &self.tenants {
            let w = t
                .writer
                .as_ref()
                .context("the client thread is not running")?;
            w.wait_acked(n, Duration::from_secs(30))
                .map_err(|e| w.broken_wait(e, "no_writes").about(t.shape.name))?;
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
            let r = w.wait_reply_sent_after(t, FAILOVER_TIMEOUT).map_err(|e| {
                w.broken_wait(e, "no_reply_after_fault")
                    .about(tn.shape.name)
            })?;
            let took = r.done - t;
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

    /// A broken connection (where the scenario promises it survives) or a
    /// refused write is a broken guarantee.
    pub fn check_clients(&self) -> Result<()> {
        for t in &self.tenants {
            let Some(w) = &t.writer else { continue };
            let s = w.stats();
            let lost_as_allowed = s.broken.is_some() && !t.tcp_promised;
            match s.trouble() {
                Err(b) if b.reason == "connection_lost" && lost_as_allowed => {}
                r => r.map_err(|b| b.about(t.shape.name))?,
            }
            if let (true, Some(why)) = (lost_as_allowed, &s.refused) {
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

    /// After `event`, on guest `i`'s own connection with its writes paused, the
    /// checks of [`verify_writes`]; the writes go on afterwards. Returns `LAST`.
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
        let v = verify_writes(w, &t.boot_id, event, &[]).map_err(|b| {
            if let Some(found) = b.found {
                t.found = Some(found);
                t.lost = w.stats().acked.saturating_sub(found);
            }
            b.about(dom)
        })?;
        t.found = Some(v.last);
        t.lost = 0;
        say(&format!("{dom} after {event}: {v}"));
        Ok(v.last)
    }

    /// `LAST` on a new connection to guest `i` (when its own connection is gone).
    pub fn last_on_new_connection(&self, i: usize) -> Result<u64> {
        let mut c = self.lab.connect(&self.tenants[i].guest)?;
        c.set_timeout(Duration::from_secs(30));
        Ok(c.last()?)
    }
}
