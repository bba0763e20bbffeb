//! The verdict on a lost peer, decided from what the cluster engine says: a pure
//! function of the latest [`View`] and the clock, so that every rule is unit-tested
//! (the driver in `corosync.rs` only fills in views).
//!
//! One [`Judge`] per request (a domain that lost its peer). Rules, in order:
//!
//! 1. Quorate and the peer is not a member: `Proceed`. A primary proceeds at once
//!    (its peer is a secondary, which never serves without `Proceed` of its own); a
//!    secondary only [`Params::stop_wait`] after the peer left its membership, the
//!    time by which the peer, without quorum, has certainly cut its guest off.
//! 2. Not quorate (or corosync unreachable) and the peer is not a member: `Stop`
//!    at once (the guest is cut off the network, which can be undone), then `Lost`
//!    if quorum has not come after [`Params::give_up`].
//! 3. The peer stayed a member of the very ring it was in when the request was made,
//!    for [`Params::settle`] (the time corosync needs to drop a silent node):
//!    `PeerAlive`. Only its ftd is unreachable.
//! 4. The peer left and came back (a healed partition) without this side having
//!    won: no verdict; the two ftds settle it over the link (see the coordinator's
//!    `arbitration.rs`), or rule 2's `Lost` does.

use crate::coordinator::Verdict;
use std::time::{Duration, Instant};

/// A corosync ring: (representative node, sequence).
pub type Ring = (u32, u64);

/// Which copy the asking domain holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Secondary,
}

/// What the cluster engine says, as this ftd last heard it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Connected to corosync, the peer's node found, and this view is current.
    pub connected: bool,
    pub ring: Ring,
    pub quorate: bool,
    pub members: Vec<u32>,
    /// The peer's node id in corosync's nodelist.
    pub peer: u32,
    /// Since when the peer has been missing from this node's membership (as this
    /// ftd was told; `None` while it is a member).
    pub peer_absent_since: Option<Instant>,
    pub params: Params,
    /// Why the view is not connected, for the log.
    pub problem: Option<String>,
}

impl View {
    /// No corosync (yet): the peer counts as absent and quorum as lost.
    pub fn disconnected(params: Params, problem: String) -> View {
        View {
            connected: false,
            ring: (0, 0),
            quorate: false,
            members: Vec::new(),
            peer: 0,
            peer_absent_since: None,
            params,
            problem: Some(problem),
        }
    }

    fn peer_present(&self) -> bool {
        self.connected && self.members.contains(&self.peer)
    }

    fn quorate(&self) -> bool {
        self.connected && self.quorate
    }
}

/// The waits, derived from corosync's own timings (see [`Params::derive`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Rule 3: how long the peer must stay in the same ring before it counts as
    /// alive (corosync's detection: token + consensus, plus the quorum device's
    /// sync time and the margin).
    pub settle: Duration,
    /// Rule 1 for a secondary: the wait after the peer left the membership.
    pub stop_wait: Duration,
    /// Rule 2: how long without quorum before this side gives up (`Lost`).
    pub give_up: Duration,
}

/// Corosync's settings that bound its decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `runtime.config.totem.token` + `runtime.config.totem.consensus`: from the
    /// last token to a new membership.
    pub membership: Duration,
    /// `quorum.device.sync_timeout` (zero without a quorum device): after a
    /// membership change, votequorum waits at most this long for the quorum device,
    /// then counts it as not voting. So a node cut off from the peer and from the
    /// witness is without quorum at most this long after its membership changed.
    pub qdevice_sync: Duration,
    /// `quorum.device.timeout` (zero without): the quorum device's poll period; the
    /// witness drops a silent device after 1.2 times it.
    pub qdevice_timeout: Duration,
}

impl Timing {
    /// corosync's and corosync-qdevice's defaults (token 3000 ms, consensus 1.2 x
    /// token, sync_timeout 30000 ms, timeout 10000 ms), used until corosync answers.
    pub const DEFAULT: Timing = Timing {
        membership: Duration::from_millis(3000 + 3600),
        qdevice_sync: Duration::from_millis(30_000),
        qdevice_timeout: Duration::from_millis(10_000),
    };
}

impl Params {
    /// The waits for corosync's `timing` and the configured `margin` (time for a
    /// node's ftd to cut its guest off once corosync told it it lost quorum):
    /// - `stop_wait` = qdevice sync + margin: the loser is without quorum at most
    ///   the qdevice sync time after the membership change that both sides see at
    ///   the same moment (they run the same token timers from the same last token),
    ///   and cuts its guest off within the margin;
    /// - `settle` = membership + qdevice sync + margin;
    /// - `give_up` = membership + 2 x qdevice timeout + margin: the witness gives its
    ///   vote to the surviving side at the latest 1.2 x the qdevice timeout after
    ///   the loser's device fell silent, so a side still without quorum then has lost.
    pub fn derive(t: Timing, margin: Duration) -> Params {
        Params {
            settle: t.membership + t.qdevice_sync + margin,
            stop_wait: t.qdevice_sync + margin,
            give_up: t.membership + 2 * t.qdevice_timeout + margin,
        }
    }
}

/// What to do after a look: a verdict to deliver now, and when to look again (if
/// nothing changes before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    pub verdict: Option<Verdict>,
    pub again_at: Option<Instant>,
}

/// One request's judge.
#[derive(Debug, Clone)]
pub struct Judge {
    role: Role,
    asked: Instant,
    ring_at_ask: Option<Ring>,
    peer_left: bool,
    stopped_at: Option<Instant>,
    done: bool,
}

impl Judge {
    pub fn new(role: Role, asked: Instant) -> Judge {
        Judge {
            role,
            asked,
            ring_at_ask: None,
            peer_left: false,
            stopped_at: None,
            done: false,
        }
    }

    /// A final verdict was given: nothing more will come.
    pub fn done(&self) -> bool {
        self.done
    }

    fn verdict(&mut self, v: Verdict) -> Look {
        self.done = matches!(v, Verdict::Proceed | Verdict::Lost | Verdict::PeerAlive);
        Look {
            verdict: Some(v),
            again_at: None,
        }
    }

    /// Judge the latest view at `now`.
    pub fn look(&mut self, v: &View, now: Instant) -> Look {
        let wait = |at: Option<Instant>| Look {
            verdict: None,
            again_at: at,
        };
        if self.done {
            return wait(None);
        }
        let p = v.params;
        if v.connected && self.ring_at_ask.is_none() {
            self.ring_at_ask = Some(v.ring);
        }
        let present = v.peer_present();
        if !present {
            self.peer_left = true;
        }
        // Rule 1.
        if !present && v.quorate() {
            let at = match self.role {
                Role::Primary => now,
                Role::Secondary => v.peer_absent_since.unwrap_or(now) + p.stop_wait,
            };
            return if now >= at {
                self.verdict(Verdict::Proceed)
            } else {
                wait(Some(at))
            };
        }
        // Rule 2.
        if !present && self.stopped_at.is_none() {
            self.stopped_at = Some(now);
            return Look {
                verdict: Some(Verdict::Stop),
                again_at: Some(now + p.give_up),
            };
        }
        if let Some(s) = self.stopped_at {
            let at = s + p.give_up;
            return if now >= at {
                self.verdict(Verdict::Lost)
            } else {
                wait(Some(at))
            };
        }
        // Rule 3.
        if v.quorate() && !self.peer_left && Some(v.ring) == self.ring_at_ask {
            let at = self.asked + p.settle;
            return if now >= at {
                self.verdict(Verdict::PeerAlive)
            } else {
                wait(Some(at))
            };
        }
        // Rule 4.
        wait(None)
    }
}

#[cfg(test)]
mod tests;
