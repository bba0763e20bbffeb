//! The check after an event (a failover, a re-protection, a restart), on the
//! writing client's own connection with its writes paused: the same boot, every
//! acknowledged write on the disk (`LAST`), records read back intact (`GET`), and
//! the same connection (the guest's request count for it equals the client's).
//! A failed check is a [`Broken`] guarantee with a short reason (`lost=3`,
//! `guest_rebooted`, ...) that the demo's and the matrix's result lines carry.

use super::{payload, Outcome, Writer};
use crate::client::field;
use std::fmt;

/// A guarantee the client checks did not hold. Its `Debug` is its message and
/// reason, so that a test's `.unwrap()` prints what broke.
#[derive(Clone, PartialEq, Eq)]
pub struct Broken {
    /// Short, space-free reason (`lost=3`, `guest_rebooted`, `connection_lost`, ...).
    pub reason: String,
    /// What happened, for people.
    pub detail: String,
    /// `LAST` (the highest record on the guest's disk), when the check read it
    /// before it failed (a `lost=N` failure always has it).
    pub found: Option<u64>,
}

impl Broken {
    pub fn new(reason: impl Into<String>, detail: impl Into<String>) -> Broken {
        Broken {
            reason: reason.into(),
            detail: detail.into(),
            found: None,
        }
    }

    /// The same, its detail prefixed with whose it is (`g: ...`).
    pub fn about(mut self, who: &str) -> Broken {
        self.detail = format!("{who}: {}", self.detail);
        self
    }
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl fmt::Debug for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.detail, self.reason)
    }
}

impl std::error::Error for Broken {}

/// What [`verify_writes`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `LAST`: the highest record on the guest's disk.
    pub last: u64,
    /// The highest record the client saw acknowledged.
    pub acked: u64,
    /// The records read back with `GET`.
    pub read: Vec<u64>,
    /// Requests the client sent on the connection (the guest counted as many).
    pub sent: u64,
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "same boot, LAST {} >= {} acknowledged, GET {:?} intact, same connection ({} requests on it)",
            self.last, self.acked, self.read, self.sent
        )
    }
}

impl Writer {
    /// A failed wait on this client as a broken guarantee: the client's own
    /// trouble (`connection_lost`, `write_refused`) when it has some, else
    /// `reason` with the wait's error (e.g. its time-out).
    pub fn broken_wait(&self, e: crate::LabError, reason: &str) -> Broken {
        match self.stats().trouble() {
            Err(b) => b,
            Ok(()) => Broken::new(reason, e.to_string()),
        }
    }

    /// One request of the main flow on the client's connection after `event`:
    /// the reply, or `unexpected_reply` / `connection_lost`.
    pub fn ask(&self, line: &str, event: &str) -> Result<String, Broken> {
        let out = self
            .request(line)
            .map_err(|e| Broken::new("connection_lost", format!("{line:?} after {event}: {e}")))?;
        match out {
            Outcome::Ok(r) => Ok(r),
            Outcome::Refused(r) => Err(Broken::new(
                "unexpected_reply",
                format!("{line:?} got {r:?} after {event}"),
            )),
            Outcome::Broken(e) => Err(Broken::new(
                "connection_lost",
                format!("{line:?} after {event}: {e}"),
            )),
        }
    }
}

/// After `event`, pause `w` (it stays paused: resume it to go on writing) and
/// check on its connection: the guest's boot is `boot_id`, it holds every
/// acknowledged write, records 1, the middle one, the last acknowledged one and
/// `also_read` read back intact, and it counted every request the client sent.
pub fn verify_writes(
    w: &Writer,
    boot_id: &str,
    event: &str,
    also_read: &[u64],
) -> Result<Verified, Broken> {
    w.pause()
        .map_err(|e| Broken::new("client_gone", format!("after {event}: {e}")))?;
    w.stats().trouble()?;
    let info = w.ask("INFO", event)?;
    let boot = field(&info, "boot_id").unwrap_or_default();
    if boot != boot_id {
        return Err(Broken::new(
            "guest_rebooted",
            format!("boot_id was {boot_id} and is {boot:?} after {event}"),
        ));
    }
    let reply = w.ask("LAST", event)?;
    let last: u64 = reply
        .strip_prefix("LAST ")
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| {
            Broken::new(
                "unexpected_reply",
                format!("LAST got {reply:?} after {event}"),
            )
        })?;
    let acked = w.stats().acked;
    if last < acked {
        return Err(Broken {
            found: Some(last),
            ..Broken::new(
                format!("lost={}", acked - last),
                format!("{acked} writes were acknowledged, the disk holds {last} after {event}"),
            )
        });
    }
    let read = picks(acked, also_read);
    for &n in &read {
        let want = format!("REC {n} {}", payload(n));
        let got = w.ask(&format!("GET {n}"), event)?;
        if got != want {
            return Err(Broken::new(
                format!("record_{n}_wrong"),
                format!("GET {n} got {got:?}, expected {want:?} after {event}"),
            ));
        }
    }
    let seq = w.ask("SEQ 1", event)?;
    let (ours, theirs) = (w.stats().sent, field(&seq, "conn").unwrap_or_default());
    if theirs != ours.to_string() {
        return Err(Broken::new(
            "connection_changed",
            format!(
                "the guest counts {theirs} requests on this connection, the client sent {ours}"
            ),
        ));
    }
    Ok(Verified {
        last,
        acked,
        read,
        sent: ours,
    })
}

/// The records to read back: 1, the middle one, the last acknowledged one and
/// `also`, in order, each once, none beyond `acked`.
fn picks(acked: u64, also: &[u64]) -> Vec<u64> {
    let mut v: Vec<u64> = [1, acked / 2, acked]
        .into_iter()
        .chain(also.iter().copied())
        .filter(|&n| n > 0 && n <= acked)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_records_read_back_are_in_range_and_each_once() {
        assert_eq!(picks(0, &[]), Vec::<u64>::new());
        assert_eq!(picks(1, &[]), vec![1]);
        assert_eq!(picks(10, &[4, 8, 10, 11]), vec![1, 4, 5, 8, 10]);
    }

    #[test]
    fn a_broken_guarantee_reads_as_its_detail() {
        let b = Broken::new("lost=2", "3 acknowledged, 1 on disk").about("g");
        assert_eq!(
            (b.reason.as_str(), b.to_string()),
            ("lost=2", "g: 3 acknowledged, 1 on disk".into())
        );
    }
}
