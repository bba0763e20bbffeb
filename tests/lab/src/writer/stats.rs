//! What the writing client did: every request with when it was sent, when its
//! reply came and what came back ([`Stats`]), and the questions the demo, the
//! matrix, the bench and the tests ask of that record (the first reply after a
//! fault, the longest gap between replies, whether the connection broke).

use super::Broken;
use std::time::{Duration, Instant};

/// What one request got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The expected reply (for a `PUT n`: `DURABLE n`).
    Ok(String),
    /// A reply, but not the expected one (e.g. `ERR expected 7 got 9`).
    Refused(String),
    /// No reply: I/O error, timeout or EOF. The connection is gone.
    Broken(String),
}

/// One request on the connection.
#[derive(Debug, Clone)]
pub struct Req {
    pub line: String,
    /// The record number of a `PUT`, `None` for the main flow's own requests.
    pub put: Option<u64>,
    pub sent: Instant,
    pub done: Instant,
    pub outcome: Outcome,
}

impl Req {
    pub fn ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_))
    }
    pub fn rtt(&self) -> Duration {
        self.done - self.sent
    }
}

/// Everything the client did so far.
#[derive(Debug, Default)]
pub struct Stats {
    pub log: Vec<Req>,
    /// Requests sent on this connection, including those before the thread started.
    pub sent: u64,
    /// Highest `n` for which `DURABLE n` came back (writes are acknowledged in order).
    pub acked: u64,
    /// Why the connection broke, if it did.
    pub broken: Option<String>,
    /// The first unexpected reply to a `PUT`, if any (writes stop there).
    pub refused: Option<String>,
    /// When the request now waiting for its reply was sent, if one is.
    pub in_flight: Option<Instant>,
}

impl Stats {
    /// Highest acknowledged write whose `DURABLE` came back before `t`.
    pub fn acked_before(&self, t: Instant) -> u64 {
        self.log
            .iter()
            .filter(|r| r.ok() && r.done < t)
            .filter_map(|r| r.put)
            .max()
            .unwrap_or(0)
    }

    /// The first successful reply to a request sent at or after `t`: the survivor's
    /// answer for sure (a reply that was in flight when the primary died may still
    /// arrive after `t` without any failover having happened).
    pub fn first_reply_sent_after(&self, t: Instant) -> Option<&Req> {
        self.log.iter().find(|r| r.ok() && r.sent >= t)
    }

    /// The last successful reply that came back before `t`.
    pub fn last_reply_before(&self, t: Instant) -> Option<&Req> {
        self.log.iter().rev().find(|r| r.ok() && r.done < t)
    }

    /// Successful replies in `[from, to)`.
    pub fn replies_in(&self, from: Instant, to: Instant) -> impl Iterator<Item = &Req> {
        self.log
            .iter()
            .filter(move |r| r.ok() && r.done >= from && r.done < to)
    }

    /// Did the connection break before `t`?
    pub fn broken_before(&self, t: Instant) -> bool {
        self.log
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Broken(_)) && r.done < t)
    }

    /// Longest time without any successful reply in `[from, to)` (the guest-visible
    /// interruption), counted from the last reply before `from`.
    pub fn longest_gap(&self, from: Instant, to: Instant) -> Duration {
        let mut prev = self.last_reply_before(from).map(|r| r.done).unwrap_or(from);
        let mut gap = Duration::ZERO;
        for r in self.replies_in(from, to) {
            gap = gap.max(r.done - prev);
            prev = r.done;
        }
        gap.max(to.saturating_duration_since(prev))
    }

    /// How long the request now in flight has waited for its reply (zero when
    /// none is in flight).
    pub fn waiting(&self) -> Duration {
        self.in_flight.map(|t| t.elapsed()).unwrap_or_default()
    }

    /// A broken connection (`connection_lost`) or a refused write
    /// (`write_refused`): both are broken guarantees.
    pub fn trouble(&self) -> Result<(), Broken> {
        if let Some(why) = &self.broken {
            return Err(Broken::new(
                "connection_lost",
                format!("the client's connection broke: {why}"),
            ));
        }
        if let Some(why) = &self.refused {
            return Err(Broken::new(
                "write_refused",
                format!("the guest refused a write: {why}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(put: Option<u64>, done: Instant, ok: bool) -> Req {
        Req {
            line: String::new(),
            put,
            sent: done,
            done,
            outcome: if ok {
                Outcome::Ok("x".into())
            } else {
                Outcome::Broken("eof".into())
            },
        }
    }

    #[test]
    fn windows_and_gaps_are_read_from_the_log() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let s = Stats {
            log: vec![
                req(Some(1), ms(100), true),
                req(Some(2), ms(200), true),
                // Sent before 150 but answered after it: in flight, not the survivor's.
                Req {
                    sent: ms(140),
                    ..req(Some(3), ms(1500), true)
                },
                req(None, ms(1600), true),
                req(Some(4), ms(1700), false),
            ],
            ..Stats::default()
        };
        assert_eq!(s.acked_before(ms(1000)), 2);
        assert_eq!(s.acked_before(ms(2000)), 3);
        assert_eq!(s.first_reply_sent_after(ms(250)).unwrap().done, ms(1600));
        assert_eq!(s.replies_in(ms(0), ms(1600)).count(), 3);
        assert_eq!(
            s.longest_gap(ms(250), ms(1650)),
            Duration::from_millis(1300)
        );
        assert!(!s.broken_before(ms(1700)));
        assert!(s.broken_before(ms(1701)));
    }

    #[test]
    fn a_broken_connection_is_trouble_before_a_refused_write() {
        let mut s = Stats::default();
        assert!(s.trouble().is_ok());
        s.refused = Some("\"PUT 3\" got \"ERR\"".into());
        assert_eq!(s.trouble().unwrap_err().reason, "write_refused");
        s.broken = Some("eof".into());
        assert_eq!(s.trouble().unwrap_err().reason, "connection_lost");
        assert_eq!(s.waiting(), Duration::ZERO);
    }
}
