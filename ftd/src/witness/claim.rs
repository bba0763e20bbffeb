//! Claims on the witness's record: what a host writes before it pairs a domain
//! and before a copy of it serves alone, decided from the record as read (pure:
//! [`plan_pair`], [`plan_go_live`]), then swapped in ([`pair`], [`go_live`]), and the
//! loop a domain task runs until the witness answers ([`spawn_go_live`]).
//!
//! ## Why one copy serves
//!
//! While a COLO pair runs, the record names the primary's host as `holder` and the
//! secondary's host as `partner`, at some version V (the primary wrote it, by a swap,
//! before it started COLO: [`plan_pair`]). A copy that is about to serve alone
//! (the secondary taking over, the primary leaving COLO, which releases every packet
//! colo-compare holds) first swaps the record away from V:
//!
//! - the primary to `holder: itself, partner: null`;
//! - the secondary to `holder: itself, partner: null`, and only if V names the peer
//!   as holder and itself as partner.
//!
//! Both swap from the same version V, so exactly one of them wins; the other finds
//! the winner's record and has lost: it never runs its go-live step, and its copy is
//! fenced. A record with no partner is one nobody else may take by a go-live claim,
//! so a secondary that reads the record only after the primary went alone (V+1)
//! loses too. A lost swap is decided again from what the store holds now (which
//! settles a retried swap whose first answer was lost).
//!
//! A record that is missing while a pair runs (deleted by hand, or a pair set up
//! before the witness was configured) is claimed by a first record: of two such
//! claims one wins, as with any swap.

use super::{Record, Swap, Versioned, Witness, WitnessError};
use crate::arbiter::Role;
use crate::coordinator::Verdict;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What to do about the record as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Swap this record in (from the one read).
    Swap(Record),
    /// The record already says what the claim wants.
    Won,
    /// Another host holds the domain; the message says which and what follows.
    Lost(String),
}

/// Who asks and for what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub domain: String,
    /// This host.
    pub me: String,
    /// The other host of the pair.
    pub peer: String,
    /// The disk this host's copy uses (the copy of record if the claim wins);
    /// `None`: unknown, keep the record's.
    pub disk: Option<PathBuf>,
}

impl Claim {
    fn disk_or<'a>(&'a self, r: Option<&'a Record>) -> &'a Path {
        match (&self.disk, r) {
            (Some(d), _) => d,
            (None, Some(r)) => &r.disk,
            (None, None) => Path::new("/unknown"),
        }
    }
}

/// The outcome of a claim that the witness answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// The record names this host as the holder (this version).
    Won(Option<Versioned<Record>>),
    /// It does not; why.
    Lost(String),
}

fn held_by(r: &Record) -> String {
    format!(
        "the witness's record says {} holds {} (epoch {})",
        r.holder, r.domain, r.epoch
    )
}

/// Before COLO starts on the primary (`c.me`): name this host the holder and the
/// peer the partner. Refused (`Lost`) when another host holds the domain and a copy
/// of it is meant to run: this host's copy is then not the copy of record.
pub fn plan_pair(c: &Claim, current: Option<&Record>) -> Plan {
    let disk = c.disk_or(current).to_path_buf();
    match current {
        None => match Record::first(&c.domain, &c.me, disk, true) {
            Ok(r) => Plan::Swap(r.with_partner(Some(&c.peer))),
            Err(e) => Plan::Lost(format!("no valid first record: {e}")),
        },
        Some(r) if r.holder == c.me || !r.running => {
            let want = r.next(&c.me, disk, true).with_partner(Some(&c.peer));
            if r.holder == want.holder
                && r.partner == want.partner
                && r.disk == want.disk
                && r.running
            {
                Plan::Won
            } else {
                Plan::Swap(want)
            }
        }
        Some(r) => Plan::Lost(format!(
            "{}: this host's copy is not the copy of record and is not protected; \
             stop it (the holder's copy serves), or, if the holder's copy is certainly \
             gone, take the record over with `etcdctl` as docs/witness.md shows",
            held_by(r)
        )),
    }
}

/// May host `me` start its copy of `domain` (libvirt's `prepare`, from the hook)?
/// Yes when the record names no running copy or names this host; otherwise the
/// reason, which the hook hands to libvirt (`virsh start` prints it).
pub fn plan_start(me: &str, current: Option<&Record>) -> Result<(), String> {
    match current {
        None => Ok(()),
        Some(r) if r.holder == me || !r.running => Ok(()),
        Some(r) => Err(format!(
            "{}, whose copy runs: the copy on this host ({me}) is stale and must not start. \
             {} makes this host its secondary once the two hosts reach each other; \
             if {} is gone for good, take the record over first (docs/witness.md)",
            held_by(r),
            r.holder,
            r.holder
        )),
    }
}

/// Before this host's copy starts (libvirt's `prepare`, [`plan_start`] allows it):
/// a record that names a copy is taken by this host (holder, no partner, epoch + 1),
/// so that a go-live claim the peer may have in flight, compared against the old
/// record, loses. No record: nothing to take (the first pairing writes it); the
/// record already names this host's copy alone and running: nothing to change.
pub fn plan_start_claim(c: &Claim, current: Option<&Record>) -> Plan {
    let Some(r) = current else {
        return Plan::Won;
    };
    if let Err(why) = plan_start(&c.me, Some(r)) {
        return Plan::Lost(why);
    }
    if r.holder == c.me && r.partner.is_none() && r.running {
        return Plan::Won;
    }
    Plan::Swap(r.next(&c.me, c.disk_or(current), true))
}

/// Before this host's copy serves alone (`role`: the part it holds in the pair).
pub fn plan_go_live(c: &Claim, role: Role, current: Option<&Record>) -> Plan {
    let disk = c.disk_or(current).to_path_buf();
    let Some(r) = current else {
        return match Record::first(&c.domain, &c.me, disk, true) {
            Ok(r) => Plan::Swap(r),
            Err(e) => Plan::Lost(format!("no valid first record: {e}")),
        };
    };
    let mine_alone = r.holder == c.me && r.partner.is_none();
    if mine_alone {
        return Plan::Won;
    }
    let ours_to_take = match role {
        Role::Primary => r.holder == c.me,
        Role::Secondary => r.holder == c.peer && r.partner.as_deref() == Some(&c.me),
    };
    if ours_to_take {
        Plan::Swap(r.next(&c.me, disk, true))
    } else {
        Plan::Lost(format!("{}: this host's copy must not serve", held_by(r)))
    }
}

/// How many times a claim is decided again after losing a swap to a change it
/// may still win against (each time from the record the store returned).
const REPLANS: usize = 3;

async fn claim(
    w: &dyn Witness,
    c: &Claim,
    plan: impl Fn(Option<&Record>) -> Plan,
) -> Result<Claimed, WitnessError> {
    let mut current = w.read(&c.domain).await?;
    for _ in 0..REPLANS {
        let new = match plan(current.as_ref().map(|v| &v.value)) {
            Plan::Won => return Ok(Claimed::Won(current)),
            Plan::Lost(why) => return Ok(Claimed::Lost(why)),
            Plan::Swap(new) => new,
        };
        match w.swap(&c.domain, current.as_ref(), &new).await? {
            Swap::Won(v) => return Ok(Claimed::Won(Some(v))),
            Swap::Lost(now) => current = now,
        }
    }
    Err(WitnessError::Refused {
        detail: format!(
            "the record of {} kept changing under {REPLANS} swaps in a row",
            c.domain
        ),
    })
}

/// Write the pairing record ([`plan_pair`]).
pub async fn pair(w: &dyn Witness, c: &Claim) -> Result<Claimed, WitnessError> {
    claim(w, c, |r| plan_pair(c, r)).await
}

/// Take the record before this host's copy starts ([`plan_start_claim`]).
pub async fn start(w: &dyn Witness, c: &Claim) -> Result<Claimed, WitnessError> {
    claim(w, c, |r| plan_start_claim(c, r)).await
}

/// Claim the domain before this host's copy serves alone ([`plan_go_live`]).
pub async fn go_live(w: &dyn Witness, c: &Claim, role: Role) -> Result<Claimed, WitnessError> {
    claim(w, c, |r| plan_go_live(c, role, r)).await
}

/// How long a secondary waits before its go-live claim when the peer is
/// unreachable: both sides notice a cut link within about a heartbeat of each
/// other, and the primary, whose copy clients already see, should win it.
pub fn secondary_delay(heartbeat: Duration) -> Duration {
    (heartbeat * 2).max(Duration::from_millis(100))
}

/// How long a claim waits before asking an unreachable witness again.
pub const RETRY: Duration = Duration::from_millis(250);

/// Claim until the witness answers, in a task of its own (`disk`, looked up while
/// the claim waits out `delay`, fills the claim's disk if it has none); its
/// verdicts arrive on the receiver: `Stop` once when the witness does not answer
/// (and the claim goes on), then `Proceed` (won) or `Lost`. Dropping the receiver
/// ends the claim at once (a swap already sent is not recalled: its outcome is
/// what the record says, and the next claim reads it).
pub fn spawn_go_live(
    w: Arc<dyn Witness>,
    mut c: Claim,
    role: Role,
    delay: Duration,
    disk: impl Future<Output = Option<PathBuf>> + Send + 'static,
) -> mpsc::Receiver<Verdict> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        // Given up (the receiver dropped): stop at once, even mid-call. A swap
        // already sent may still land; it compares against the record read
        // before, so it cannot take a record written since.
        let closed = tx.clone();
        tokio::select! {
            _ = closed.closed() => {}
            _ = claim_until_answered(w, &mut c, role, delay, disk, tx) => {}
        }
    });
    rx
}

async fn claim_until_answered(
    w: Arc<dyn Witness>,
    c: &mut Claim,
    role: Role,
    delay: Duration,
    disk: impl Future<Output = Option<PathBuf>>,
    tx: mpsc::Sender<Verdict>,
) {
    {
        let (_, disk) = tokio::join!(tokio::time::sleep(delay), disk);
        if c.disk.is_none() {
            c.disk = disk;
        }
        let mut told = false;
        loop {
            match go_live(&*w, c, role).await {
                Ok(Claimed::Won(v)) => {
                    let epoch = v.map(|v| v.value.epoch);
                    tracing::info!(domain = %c.domain, ?role, ?epoch, "witness: claim won; this copy may serve");
                    let _ = tx.send(Verdict::Proceed).await;
                    return;
                }
                Ok(Claimed::Lost(why)) => {
                    tracing::warn!(domain = %c.domain, ?role, %why, "witness: claim lost; this copy is fenced");
                    let _ = tx.send(Verdict::Lost).await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(domain = %c.domain, ?role, error = %e, "witness: claim not answered; nobody goes live until it is");
                    if !told {
                        told = true;
                        let _ = tx.send(Verdict::Stop).await;
                    }
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
