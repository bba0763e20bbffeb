//! Partitions: what a domain does when its peer is lost and an arbiter is
//! configured (`arbiter:` in ftd.yaml; `crate::arbiter` answers). Without an arbiter
//! a lost peer is taken for dead (the secondary takes over, the primary runs on),
//! which splits the pair when only the link between the hosts is cut.
//!
//! With one, losing the peer in `Protected` or `Secondary` asks the arbiter
//! ([`Action::Arbitrate`]) and waits in `Arbitrating` / `SecondaryArbitrating`:
//!
//! ```text
//! Protected --PeerLost--> Arbitrating
//!   --Verdict(Stop)--> (Freeze: the guest is cut off the network at the host;
//!                       COLO was already holding its output)
//!   --Verdict(Proceed)--> Degraded (LeaveColo, and Thaw if frozen: runs alone)
//!   --Verdict(Lost)--> Fenced (DestroyPrimary: this copy is gone)
//!   --Verdict(PeerAlive)--> Protected (the peer host never left: only its ftd is mute)
//!   --Peer(SecondaryFailed)--> Degraded (the secondary gave up, see below)
//!   --Peer(HostSecondary)--> SecondaryPreparing (the peer runs the domain: fence, rejoin)
//! Secondary --PeerLost--> SecondaryArbitrating
//!   --Verdict(Proceed)--> TakingOver
//!   --Verdict(Lost)--> Fenced (DestroySecondary)
//!   --Verdict(PeerAlive)--> Secondary
//!   --PeerUp--> Standby (gives the secondary up, tells the primary: SecondaryFailed)
//! Fenced --Peer(HostSecondary)--> SecondaryPreparing (the loser rejoins as secondary)
//! ```
//!
//! Why each rule keeps exactly one copy serving:
//! - A side acts alone only on `Proceed`, which needs quorum without the peer; the
//!   cluster engine gives quorum to one partition only. A secondary's `Proceed` comes
//!   only once the peer, without quorum, has certainly frozen its guest (the arbiter
//!   waits for that; see `crate::arbiter`).
//! - A frozen primary is never reconnected on the link's return alone: the peer
//!   may have taken over meanwhile. It resumes on `Proceed`, or when the peer says it
//!   gave its secondary up (`SecondaryFailed`), and is fenced when the peer turns out
//!   to run the domain (`HostSecondary`) or when it stays without quorum (`Lost`).
//! - A secondary whose link returns before a verdict gives its copy up at once
//!   (`PeerUp`): a verdict can then no longer make it take over, and the primary,
//!   told so, runs on alone and protects again.
//! - `PeerAlive` means the peer stayed in the same membership the whole time, so it
//!   cannot have taken over: the pair simply goes on.

use super::golive::{GoLive, WITNESS_UNREACHABLE};
use super::machine::{Coordinator, Outcome, ON_SECONDARY};
use super::rules::{ALREADY_RUNS, NOT_REATTACHING, NO_COLO};
use super::types::{Action, Event, PeerMsg, State, Step, Verdict};

const WAITING: &str =
    "the peer is unreachable and the arbiter has not yet decided which host keeps the domain; \
     try again once it has (see the state)";
const FENCED: &str = "this host lost a partition and its copy was stopped: the peer runs the \
                      domain and makes this host its secondary again when the link is back";
const RESIGNED: &str = "the link came back before the arbiter's verdict: this host gives its \
                        secondary up so that the primary can run on and protect again";
const UNEXPECTED: &str = "unexpected message while the arbiter decides";

impl Coordinator {
    /// The peer is lost and an arbiter is configured: ask it (with the
    /// witness: claim the record) before going live.
    pub(super) fn arbitrate(&mut self) -> Outcome {
        let g = self.lost_peer_go_live();
        self.claim(g)
    }

    /// Run alone from `Arbitrating`: leave COLO, and reconnect a frozen guest.
    fn run_alone(&mut self, why: &str) -> Outcome {
        self.perform(GoLive::alone(why))
    }

    /// The witness does not answer the claim: nobody goes live meanwhile.
    fn claim_unanswered(&mut self) {
        if self.settings.witness {
            self.set_last_error(WITNESS_UNREACHABLE);
        }
    }

    /// Cut the guest off unless it already is.
    fn freeze(&mut self) -> Outcome {
        if self.frozen {
            return self.stay();
        }
        self.frozen = true;
        Ok(vec![Action::Run(Step::Freeze)])
    }

    /// A failed replicated write while the peer is unreachable: the arbiter's
    /// verdict decides what happens to this copy anyway.
    fn disk_failed_unreachable(&mut self, e: String) -> Outcome {
        self.set_last_error(&e);
        self.stay()
    }

    pub(super) fn on_arbitrating(&mut self, ev: Event) -> Outcome {
        use Event as E;
        use PeerMsg as M;
        use State as S;
        match ev {
            E::Enable | E::Disable | E::SwitchOver => self.invalid(&ev, WAITING),
            E::PeerUp | E::PeerLost => self.stay(),
            // The peer's host answers but its ftd is gone: the arbiter still
            // decides (its membership shows the peer alive: `PeerAlive`).
            E::PeerDaemonLost => self.stay(),
            E::Verdict(Verdict::Stop) => {
                self.claim_unanswered();
                self.freeze()
            }
            E::Verdict(v @ (Verdict::Proceed | Verdict::Lost)) => self.claim_decided(v),
            E::Verdict(Verdict::PeerAlive) => {
                let thaw = std::mem::take(&mut self.frozen);
                self.go(
                    S::Protected,
                    if thaw {
                        vec![Action::Run(Step::Thaw)]
                    } else {
                        Vec::new()
                    },
                )
            }
            // With the witness the claim decides: the peer's own claim may be
            // on its way to the store.
            E::Peer(M::SecondaryFailed(_)) if self.settings.witness => self.stay(),
            E::Peer(M::SecondaryFailed(e)) => self.run_alone(&format!("secondary failed: {e}")),
            E::Peer(M::HostSecondary) => {
                self.set_last_failover("fenced: the peer took the domain over");
                self.go(
                    S::SecondaryPreparing,
                    vec![
                        Action::Run(Step::DestroyPrimary),
                        Action::Run(Step::CreateSecondary),
                    ],
                )
            }
            E::Peer(M::StandingBy) => self.stay(),
            ev @ E::Peer(
                M::SecondaryReady
                | M::PrimaryProtected
                | M::ReleaseSecondary
                | M::TakeOver
                | M::TookOver,
            ) => self.invalid(&ev, UNEXPECTED),
            E::Peer(M::CheckPair { primary }) => self.check_pair(primary),
            // A late answer: only a re-attached `Protected` or `Secondary` asks.
            E::Peer(M::PairConfirmed | M::PairDenied { .. }) => self.stay(),
            // Advice for the domain task, which checks its copy at once.
            E::Peer(M::ColoEnded) => self.stay(),
            E::StepDone(st) => self.step_not_started(st, None),
            E::StepFailed(st, e) => self.step_not_started(st, Some(e)),
            E::Checkpoint => self.checkpoint(),
            // COLO broke: make sure nothing leaks out until the verdict.
            E::ColoExited(_) => self.freeze(),
            E::DomainStarted => self.invalid(&ev, ALREADY_RUNS),
            E::DomainStopped => self.go(S::Stopped, vec![Action::Send(M::ReleaseSecondary)]),
            E::Found(_) => self.invalid(&ev, NOT_REATTACHING),
            E::DiskFailed(e) => self.disk_failed_unreachable(e),
            // A timer for an attempt this state has left behind.
            E::Retry(_) => self.stay(),
        }
    }

    pub(super) fn on_secondary_arbitrating(&mut self, ev: Event) -> Outcome {
        use Event as E;
        use PeerMsg as M;
        use State as S;
        match ev {
            E::Enable | E::Disable | E::SwitchOver => self.invalid(&ev, ON_SECONDARY),
            // A claim sent cannot be recalled: its verdict decides.
            E::PeerUp if self.settings.witness => self.stay(),
            E::PeerUp => {
                self.set_last_error(RESIGNED);
                self.give_secondary_up(RESIGNED.into())
            }
            E::PeerLost => self.stay(),
            E::PeerDaemonLost => self.stay(),
            // The secondary emits nothing to clients: there is nothing to cut off.
            E::Verdict(Verdict::Stop) => {
                self.claim_unanswered();
                self.stay()
            }
            E::Verdict(v @ (Verdict::Proceed | Verdict::Lost)) => self.claim_decided(v),
            E::Verdict(Verdict::PeerAlive) => self.go(S::Secondary, Vec::new()),
            // The primary releases this copy only once its own claim was won (or
            // its copy died): this claim's verdict follows.
            E::Peer(M::ReleaseSecondary) if self.settings.witness => self.stay(),
            E::Peer(M::ReleaseSecondary) => self.release_secondary(),
            E::Peer(M::HostSecondary) => self.host_secondary(),
            E::Peer(M::StandingBy | M::SecondaryFailed(_)) => self.stay(),
            ev @ E::Peer(M::SecondaryReady | M::PrimaryProtected | M::TakeOver | M::TookOver) => {
                self.invalid(&ev, UNEXPECTED)
            }
            E::Peer(M::CheckPair { primary }) => self.check_pair(primary),
            E::Peer(M::PairConfirmed | M::PairDenied { .. }) => self.stay(),
            E::Peer(M::ColoEnded) => self.stay(),
            E::StepDone(st) => self.step_not_started(st, None),
            E::StepFailed(st, e) => self.step_not_started(st, Some(e)),
            E::Checkpoint => self.checkpoint(),
            E::ColoExited(_) | E::DomainStarted => self.stay(),
            E::DomainStopped => self.give_secondary_up("the secondary domain stopped".into()),
            E::Found(_) => self.invalid(&ev, NOT_REATTACHING),
            E::DiskFailed(e) => self.disk_failed_unreachable(e),
            E::Retry(_) => self.stay(),
        }
    }

    pub(super) fn on_fenced(&mut self, ev: Event) -> Outcome {
        use Event as E;
        use PeerMsg as M;
        match ev {
            E::Enable | E::SwitchOver => self.invalid(&ev, FENCED),
            E::Disable => {
                self.set_wanted(false);
                self.stay()
            }
            E::PeerUp | E::PeerLost => self.stay(),
            E::PeerDaemonLost => self.stay(),
            // Late, or a second one: the verdict was given.
            E::Verdict(_) => self.stay(),
            E::Peer(M::HostSecondary) => self.host_secondary(),
            E::Peer(M::ReleaseSecondary | M::StandingBy | M::SecondaryFailed(_)) => self.stay(),
            ev @ E::Peer(M::SecondaryReady | M::PrimaryProtected | M::TakeOver | M::TookOver) => {
                self.invalid(&ev, "no copy of the domain runs here")
            }
            E::Peer(M::CheckPair { primary }) => self.check_pair(primary),
            E::Peer(M::PairConfirmed | M::PairDenied { .. }) => self.stay(),
            E::Peer(M::ColoEnded) => self.stay(),
            E::StepDone(st) => self.step_after_abandon(st, None),
            E::StepFailed(st, e) => self.step_after_abandon(st, Some(e)),
            E::Checkpoint => self.invalid(&ev, NO_COLO),
            E::ColoExited(_) | E::DomainStopped => self.stay(),
            // Started by hand: it runs here now, unprotected (as from Standby).
            E::DomainStarted => self.started_here(),
            E::Found(_) => self.invalid(&ev, NOT_REATTACHING),
            E::DiskFailed(e) => self.disk_failed_unreachable(e),
            E::Retry(_) => self.stay(),
        }
    }
}
