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

use super::machine::Coordinator;
use super::types::{Action, Event, PeerMsg, State, Step, Verdict};
use super::InvalidTransition;

type Outcome = Result<Vec<Action>, InvalidTransition>;

const WAITING: &str =
    "the peer is unreachable and the arbiter has not yet decided which host keeps the domain; \
     try again once it has (see the state)";
const FENCED: &str = "this host lost a partition and its copy was stopped: the peer runs the \
                      domain and makes this host its secondary again when the link is back";
const RESIGNED: &str = "the link came back before the arbiter's verdict: this host gives its \
                        secondary up so that the primary can run on and protect again";

impl Coordinator {
    /// The peer is lost and an arbiter is configured: ask it.
    pub(super) fn arbitrate(&mut self) -> Outcome {
        let next = if self.state() == State::Secondary {
            State::SecondaryArbitrating
        } else {
            State::Arbitrating
        };
        self.go(next, vec![Action::Arbitrate])
    }

    /// Run alone from `Arbitrating`: leave COLO, and reconnect a frozen guest.
    fn run_alone(&mut self, why: &str) -> Outcome {
        self.set_last_failover(why);
        let mut acts = vec![Action::Run(Step::LeaveColo)];
        if self.frozen {
            acts.push(Action::Run(Step::Thaw));
        }
        self.go(State::Degraded, acts)
    }

    /// Cut the guest off unless it already is.
    fn freeze(&mut self) -> Outcome {
        if self.frozen {
            return self.stay();
        }
        self.frozen = true;
        Ok(vec![Action::Run(Step::Freeze)])
    }

    /// Every event in `Arbitrating`, `SecondaryArbitrating` and `Fenced`.
    pub(super) fn partitioned(&mut self, ev: Event) -> Outcome {
        use Event as E;
        use State as S;
        match (self.state(), ev) {
            // ------------------------------------------------------------ Arbitrating
            (S::Arbitrating, ev @ (E::Enable | E::Disable | E::SwitchOver)) => {
                self.invalid(&ev, WAITING)
            }
            (S::Arbitrating, E::PeerUp | E::PeerLost) => self.stay(),
            (S::Arbitrating, E::Verdict(Verdict::Stop)) => self.freeze(),
            (S::Arbitrating, E::Verdict(Verdict::Proceed)) => {
                self.run_alone("secondary host lost; this host kept quorum (arbiter)")
            }
            (S::Arbitrating, E::Verdict(Verdict::Lost)) => {
                self.set_last_failover(
                    "fenced: this host lost quorum, the peer keeps the domain (arbiter)",
                );
                self.go(S::Fenced, vec![Action::Run(Step::DestroyPrimary)])
            }
            (S::Arbitrating, E::Verdict(Verdict::PeerAlive)) => {
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
            (S::Arbitrating, E::Peer(PeerMsg::SecondaryFailed(e))) => {
                self.run_alone(&format!("secondary failed: {e}"))
            }
            (S::Arbitrating, E::Peer(PeerMsg::HostSecondary)) => {
                self.set_last_failover("fenced: the peer took the domain over");
                self.go(
                    S::SecondaryPreparing,
                    vec![
                        Action::Run(Step::DestroyPrimary),
                        Action::Run(Step::CreateSecondary),
                    ],
                )
            }
            (S::Arbitrating, E::Peer(PeerMsg::StandingBy)) => self.stay(),
            (S::Arbitrating, ev @ E::Peer(_)) => {
                self.invalid(&ev, "unexpected message while the arbiter decides")
            }
            // COLO broke: make sure nothing leaks out until the verdict.
            (S::Arbitrating, E::ColoExited(_)) => self.freeze(),
            (S::Arbitrating, ev @ E::DomainStarted) => {
                self.invalid(&ev, "the domain already runs here")
            }
            (S::Arbitrating, E::DomainStopped) => {
                self.go(S::Stopped, vec![Action::Send(PeerMsg::ReleaseSecondary)])
            }

            // ------------------------------------------------------------ SecondaryArbitrating
            (S::SecondaryArbitrating, ev @ (E::Enable | E::Disable | E::SwitchOver)) => self
                .invalid(
                    &ev,
                    "this host holds the secondary; manage protection on the primary's host",
                ),
            (S::SecondaryArbitrating, E::PeerUp) => {
                self.set_last_error(RESIGNED);
                self.go(
                    S::Standby,
                    vec![
                        Action::Run(Step::DestroySecondary),
                        Action::Send(PeerMsg::SecondaryFailed(RESIGNED.into())),
                    ],
                )
            }
            (S::SecondaryArbitrating, E::PeerLost) => self.stay(),
            // The secondary emits nothing to clients: there is nothing to cut off.
            (S::SecondaryArbitrating, E::Verdict(Verdict::Stop)) => self.stay(),
            (S::SecondaryArbitrating, E::Verdict(Verdict::Proceed)) => {
                self.set_last_failover("primary host lost; this host kept quorum (arbiter)");
                self.go(S::TakingOver, vec![Action::Run(Step::TakeOver)])
            }
            (S::SecondaryArbitrating, E::Verdict(Verdict::Lost)) => {
                self.set_last_failover(
                    "fenced: this host lost quorum, the peer keeps the domain (arbiter)",
                );
                self.go(S::Fenced, vec![Action::Run(Step::DestroySecondary)])
            }
            (S::SecondaryArbitrating, E::Verdict(Verdict::PeerAlive)) => {
                self.go(S::Secondary, Vec::new())
            }
            (S::SecondaryArbitrating, E::Peer(PeerMsg::ReleaseSecondary)) => {
                self.go(S::Standby, vec![Action::Run(Step::DestroySecondary)])
            }
            (S::SecondaryArbitrating, E::Peer(PeerMsg::HostSecondary)) => self.go(
                S::SecondaryPreparing,
                vec![Action::Run(Step::CreateSecondary)],
            ),
            (
                S::SecondaryArbitrating,
                E::Peer(PeerMsg::StandingBy | PeerMsg::SecondaryFailed(_)),
            ) => self.stay(),
            (S::SecondaryArbitrating, ev @ E::Peer(_)) => {
                self.invalid(&ev, "unexpected message while the arbiter decides")
            }
            (S::SecondaryArbitrating, E::ColoExited(_) | E::DomainStarted) => self.stay(),
            (S::SecondaryArbitrating, E::DomainStopped) => self.go(
                S::Standby,
                vec![
                    Action::Run(Step::DestroySecondary),
                    Action::Send(PeerMsg::SecondaryFailed(
                        "the secondary domain stopped".into(),
                    )),
                ],
            ),

            // ------------------------------------------------------------ Fenced
            (S::Fenced, ev @ (E::Enable | E::SwitchOver)) => self.invalid(&ev, FENCED),
            (S::Fenced, E::Disable) => {
                self.set_wanted(false);
                self.stay()
            }
            (S::Fenced, E::PeerUp | E::PeerLost | E::Verdict(_)) => self.stay(),
            (S::Fenced, E::Peer(PeerMsg::HostSecondary)) => self.go(
                S::SecondaryPreparing,
                vec![Action::Run(Step::CreateSecondary)],
            ),
            (
                S::Fenced,
                E::Peer(
                    PeerMsg::ReleaseSecondary | PeerMsg::StandingBy | PeerMsg::SecondaryFailed(_),
                ),
            ) => self.stay(),
            (S::Fenced, ev @ E::Peer(_)) => self.invalid(&ev, "no copy of the domain runs here"),
            (S::Fenced, E::ColoExited(_) | E::DomainStopped) => self.stay(),
            // Started by hand: it runs here now, unprotected (as from Standby).
            (S::Fenced, E::DomainStarted) => {
                self.go(S::Unprotected, Vec::new())?;
                if self.wanted() {
                    self.protect()
                } else {
                    self.stay()
                }
            }

            // The peer's host answers but its ftd is gone: the arbiter still
            // decides (its membership shows the peer alive: `PeerAlive`).
            (S::Arbitrating | S::SecondaryArbitrating | S::Fenced, E::PeerDaemonLost) => {
                self.stay()
            }
            (_, ev @ E::Found(_)) => self.invalid(&ev, "nothing is being re-attached"),
            // A failed replicated write while the peer is unreachable: the
            // arbiter's verdict decides what happens to this copy anyway.
            (S::Arbitrating | S::SecondaryArbitrating | S::Fenced, E::DiskFailed(e)) => {
                self.set_last_error(&e);
                self.stay()
            }

            // Checkpoints and steps were decided before the transition table.
            (_, ev @ (E::StepDone(_) | E::StepFailed(..) | E::Checkpoint)) => {
                self.invalid(&ev, "no such step was started in this state")
            }
            (_, ev) => self.invalid(&ev, "not a partition state"),
        }
    }
}
