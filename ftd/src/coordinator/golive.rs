//! Going live: the transitions that let a copy serve alone, and, with a witness
//! (`Settings::witness`), the claim on the domain's record that must be won first.
//!
//! A copy serves alone when the primary leaves COLO (`LeaveColo` removes
//! colo-compare, which releases every packet it holds: after a lost peer, a failed
//! secondary, a COLO exit, a failed replicated write, a `Disable`, a denied pair)
//! and when the secondary takes over (`TakeOver`: a lost primary, a planned
//! switch-over, the primary's copy stopped, COLO exited with the primary
//! unreachable). Each of these is a [`GoLive`] handed to [`Coordinator::go_live`]:
//!
//! - without a witness it is carried out at once ([`Coordinator::perform`]), as
//!   ftd always did (and, with the corosync arbiter, a lost peer still asks it
//!   first, `arbitration.rs`);
//! - with a witness the state becomes `Arbitrating` (primary, whose guest is cut
//!   off the network at once: `Freeze`) or `SecondaryArbitrating` (secondary) and
//!   the task claims the record ([`Action::Arbitrate`], `crate::witness::claim`). `Verdict(Proceed)`: the claim
//!   was won, carry the go-live out; `Verdict(Lost)`: the peer holds the record, this
//!   copy is fenced (cut off the network at once, then destroyed) and never served;
//!   `Verdict(Stop)`: the witness does not answer, nobody goes live (the primary's
//!   guest is cut off the network meanwhile) and the claim goes on until it does.
//!
//! ```text
//! Protected --PeerLost | SecondaryFailed | ColoExited | DiskFailed | Disable-->
//!   Arbitrating (Freeze) --Proceed--> Degraded or Disabling (LeaveColo, Thaw)
//!               --Lost--> Fenced (Freeze, DestroyPrimary; StandingBy to a reachable peer)
//! Secondary --PeerLost | TakeOver | StandingBy | ColoExited (peer lost)-->
//!   SecondaryArbitrating --Proceed--> TakingOver (TakeOver)
//!                        --Lost--> Fenced (DestroySecondary)
//! ```
//!
//! While a claim runs, nothing but its verdict (or a message that the peer runs
//! the domain, or this copy's own end) moves the state: a claim sent cannot be
//! recalled, so giving the copy up meanwhile (as the corosync rules do when the
//! link returns) could leave the record naming a host whose copy is gone.

use super::machine::{Coordinator, Outcome};
use super::types::{Action, PeerMsg, State, Step, Verdict};

/// `last_error` while the witness does not answer a claim.
pub const WITNESS_UNREACHABLE: &str = "the witness (etcd) does not answer: nobody goes live \
     until it does (the primary's guest is cut off the network meanwhile); ftd keeps asking; \
     see ftd's journal for the error";

/// A transition that lets this host's copy serve alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum GoLive {
    /// Primary: leave COLO and run alone (`Degraded`). `why` becomes the last
    /// failover, `error` (if any) the last error; `acts` are the actions to run
    /// (`LeaveColo`, perhaps with `ReleaseSecondary`); `reprotect`: protect again
    /// at once if wanted.
    RunAlone {
        why: String,
        error: Option<String>,
        acts: Vec<Action>,
        reprotect: bool,
    },
    /// Primary: the user disables protection (`Disabling`).
    Disable,
    /// Secondary: take over (`TakingOver`); `planned`: the primary asked for it.
    TakeOver { why: String, planned: bool },
}

impl GoLive {
    /// Leave COLO after `why`, with `LeaveColo` only.
    pub(super) fn alone(why: impl Into<String>) -> GoLive {
        GoLive::RunAlone {
            why: why.into(),
            error: None,
            acts: vec![Action::Run(Step::LeaveColo)],
            reprotect: false,
        }
    }
}

impl Coordinator {
    /// Go live as `g` says: at once without a witness, after a won claim with one.
    pub(super) fn go_live(&mut self, g: GoLive) -> Outcome {
        if !self.settings.witness {
            return self.perform(g);
        }
        self.claim(g)
    }

    /// Ask the arbiter (the witness's claim, or corosync's verdict on a lost
    /// peer) before `g`.
    pub(super) fn claim(&mut self, g: GoLive) -> Outcome {
        self.go_live = Some(g);
        if self.state.holds_secondary() {
            return self.go(State::SecondaryArbitrating, vec![Action::Arbitrate]);
        }
        // With the witness, the primary's guest is cut off the network while
        // the claim runs (a few milliseconds when the witness answers): the peer
        // may win it and serve, and colo-compare holds only the guest's IPv4
        // output, not ARP or IPv6 (see `WITNESS_UNREACHABLE` for a long wait).
        let mut acts = vec![Action::Arbitrate];
        if self.settings.witness && !self.frozen {
            acts.insert(0, Action::Run(Step::Freeze));
        }
        let freeze = acts.len() > 1;
        let out = self.go(State::Arbitrating, acts)?;
        self.frozen |= freeze;
        Ok(out)
    }

    /// Carry a go-live out (reconnecting a guest cut off while it was claimed).
    pub(super) fn perform(&mut self, g: GoLive) -> Outcome {
        // Only `Arbitrating` keeps a guest cut off (`go` forgets it elsewhere).
        let thaw = self.state == State::Arbitrating && std::mem::take(&mut self.frozen);
        let thaw = thaw.then_some(Action::Run(Step::Thaw));
        match g {
            GoLive::RunAlone {
                why,
                error,
                mut acts,
                reprotect,
            } => {
                self.set_last_failover(&why);
                if let Some(e) = error {
                    self.set_last_error(&e);
                }
                // Claimed while the peer was away, which is back now: its
                // secondary is of no use any more, and it must hear so.
                let release = Action::Send(PeerMsg::ReleaseSecondary);
                let claimed = self.state == State::Arbitrating;
                if claimed && self.peer_up && !acts.contains(&release) {
                    acts.push(release);
                }
                acts.extend(thaw);
                let mut out = self.go(State::Degraded, acts)?;
                if reprotect {
                    out.extend(self.maybe_reprotect()?);
                }
                Ok(out)
            }
            GoLive::Disable => {
                self.wanted = false;
                let mut acts = vec![
                    Action::Run(Step::LeaveColo),
                    Action::Send(PeerMsg::ReleaseSecondary),
                ];
                acts.extend(thaw);
                self.go(State::Disabling, acts)
            }
            GoLive::TakeOver { why, planned } => {
                self.planned = planned;
                self.last_failover = Some(why);
                self.go(State::TakingOver, vec![Action::Run(Step::TakeOver)])
            }
        }
    }

    /// The arbiter's verdict on the claim this state waits for.
    pub(super) fn claim_decided(&mut self, v: Verdict) -> Outcome {
        let secondary = self.state == State::SecondaryArbitrating;
        match v {
            Verdict::Proceed => {
                let g = self
                    .go_live
                    .take()
                    .unwrap_or_else(|| self.lost_peer_go_live());
                self.perform(g)
            }
            Verdict::Lost => {
                self.go_live = None;
                self.set_last_failover(if self.settings.witness {
                    "fenced: the witness's record names the peer, which keeps the domain; \
                     this copy never served alone and was stopped"
                } else {
                    "fenced: this host lost quorum, the peer keeps the domain (arbiter)"
                });
                let mut acts = if secondary {
                    vec![Action::Run(Step::DestroySecondary)]
                } else if self.settings.witness && !self.frozen {
                    // Cut the guest off at once: destroying it takes longer.
                    vec![Action::Run(Step::Freeze), Action::Run(Step::DestroyPrimary)]
                } else {
                    vec![Action::Run(Step::DestroyPrimary)]
                };
                // A primary that lost the witness's record while the peer is
                // reachable: the record names the peer, whose secondary may be
                // waiting for this primary (COLO ended, link up) and would
                // never go live on its own. Its copy is the domain: say so (it
                // claims the record too before it serves).
                if !secondary && self.settings.witness && self.peer_up {
                    acts.push(Action::Send(PeerMsg::StandingBy));
                }
                self.go(State::Fenced, acts)
            }
            Verdict::Stop | Verdict::PeerAlive => unreachable!("decided by the handlers"),
        }
    }

    /// What a lost peer makes this host do once the arbiter agrees.
    pub(super) fn lost_peer_go_live(&self) -> GoLive {
        let how = if self.settings.witness {
            "this host won the witness's record"
        } else {
            "this host kept quorum (arbiter)"
        };
        if self.state.holds_secondary() {
            GoLive::TakeOver {
                why: format!("primary host lost; {how}"),
                planned: false,
            }
        } else {
            GoLive::alone(format!("secondary host lost; {how}"))
        }
    }
}
