//! Re-attaching after ftd restarted: what the coordinator makes of what QEMU
//! showed ([`Found`]), and the pair check with the peer that follows
//! (`CheckPair`, answered by `PairConfirmed` or `PairDenied`). Only a side that
//! re-attached asks; every state answers, from what it holds; whoever asked
//! yields when the answer says the pair is not what it found.

use super::golive::GoLive;
use super::machine::{Coordinator, Outcome, REATTACHING};
use super::rules::NO_COLO;
use super::types::{Action, Event, Found, PeerMsg, State, Step};

impl Coordinator {
    /// Nothing is decided before QEMU was read: a request waits for that
    /// (`Enable` is remembered), a peer message is dropped (the pair check after
    /// `Found` reconciles both sides).
    pub(super) fn on_reattaching(&mut self, ev: Event) -> Outcome {
        use Event as E;
        use PeerMsg as M;
        match ev {
            E::Enable => {
                self.wanted = true;
                self.stay()
            }
            E::Disable | E::SwitchOver => self.invalid(&ev, REATTACHING),
            E::PeerUp | E::PeerLost | E::PeerDaemonLost => self.stay(),
            E::Peer(
                M::HostSecondary
                | M::SecondaryReady
                | M::SecondaryFailed(_)
                | M::PrimaryProtected
                | M::ReleaseSecondary
                | M::TakeOver
                | M::TookOver
                | M::StandingBy
                | M::PairConfirmed
                | M::PairDenied { .. }
                | M::ColoEnded,
            ) => self.stay(),
            // Answered once this host knows what it holds (see `check_pair`).
            E::Peer(M::CheckPair { primary }) => self.check_pair(primary),
            E::StepDone(st) => self.step_not_started(st, None),
            E::StepFailed(st, e) => self.step_not_started(st, Some(e)),
            E::Checkpoint => self.invalid(&ev, NO_COLO),
            E::ColoExited(_) | E::DomainStarted => self.stay(),
            // The copy found running is gone before it was read. If it was the
            // primary of a COLO pair, the peer's secondary is the domain now
            // (its COLO exit alone does not tell it: while this host's ftd
            // answers, it waits for word); `StandingBy` says so, as from
            // `Protected`, and is harmless to a peer in any other state.
            E::DomainStopped => self.go(State::Stopped, vec![Action::Send(M::StandingBy)]),
            E::Verdict(_) => self.stay(),
            E::Found(f) => self.found(f),
            E::DiskFailed(_) => self.stay(),
            E::Retry(_) => self.stay(),
        }
    }

    /// `Found`: what QEMU said of the domain found running at start-up.
    pub(super) fn found(&mut self, f: Found) -> Outcome {
        use State as S;
        match f {
            Found::ColoPrimary => {
                self.wanted = true;
                self.unconfirmed = true;
                let acts = self.check_if_unconfirmed(true);
                self.go(S::Protected, acts)
            }
            Found::ColoSecondary => {
                self.unconfirmed = true;
                let acts = self.check_if_unconfirmed(false);
                self.go(S::Secondary, acts)
            }
            Found::Plain => self.started_here(),
            Found::Leftovers(why) => {
                self.go(
                    if self.wanted {
                        S::Degraded
                    } else {
                        S::Unprotected
                    },
                    Vec::new(),
                )?;
                // Undo: the attempt may have stopped anywhere (a sync job, a
                // migration, COLO's objects), and Undo removes all of it.
                let mut acts = vec![Action::Run(Step::Undo)];
                acts.extend(self.maybe_reprotect()?);
                self.last_error = Some(format!(
                    "after ftd's restart: {why}; removed what was left of COLO"
                ));
                Ok(acts)
            }
            Found::StaleSecondary(why) => {
                self.last_error = Some(format!(
                    "after ftd's restart: {why}; destroyed the secondary copy"
                ));
                self.go(
                    S::Standby,
                    vec![
                        Action::Run(Step::DestroySecondary),
                        Action::Send(PeerMsg::StandingBy),
                    ],
                )
            }
            Found::Unreadable(why) => {
                // Not knowing what runs here, touching it could break a running
                // COLO pair: nothing is done until someone looks.
                self.wanted = false;
                self.fail(
                    format!(
                        "after ftd's restart, QEMU's state could not be read ({why}); \
                         nothing was changed: check the domain, then Enable it or restart ftd"
                    ),
                    Vec::new(),
                )
            }
        }
    }

    /// The pair check to send on `PeerUp` while re-attached and unconfirmed.
    pub(super) fn check_if_unconfirmed(&self, primary: bool) -> Vec<Action> {
        if self.unconfirmed && self.peer_up {
            vec![Action::Send(PeerMsg::CheckPair { primary })]
        } else {
            Vec::new()
        }
    }

    /// The peer re-attached to its half of a COLO pair (`primary`: it holds the
    /// primary): confirm if this host holds the other half, deny otherwise.
    pub(super) fn check_pair(&mut self, primary: bool) -> Outcome {
        use State as S;
        let other_half = if primary { S::Secondary } else { S::Protected };
        if self.state == other_half {
            self.unconfirmed = false;
            return Ok(vec![Action::Send(PeerMsg::PairConfirmed)]);
        }
        if self.state == S::Reattaching {
            // It answers the check this host sends once it knows what it holds.
            return self.stay();
        }
        Ok(vec![Action::Send(PeerMsg::PairDenied {
            runs: self.state.runs_primary_here() || self.state == S::TakingOver,
            why: format!("the peer's copy is {}", self.state.name()),
        })])
    }

    /// `PairConfirmed` in `Protected` or `Secondary`: the peer holds the other
    /// half of the pair this host re-attached to.
    pub(super) fn pair_confirmed(&mut self) -> Outcome {
        self.unconfirmed = false;
        self.stay()
    }

    /// `PairDenied` in `Protected`: the peer does not hold the secondary of
    /// the pair this host re-attached to (`runs`: it runs the domain itself).
    pub(super) fn pair_denied_primary(&mut self, runs: bool, why: String) -> Outcome {
        use State as S;
        self.unconfirmed = false;
        if runs {
            // Two primaries: the peer's is the one its ftd kept running.
            self.last_error = Some(format!(
                "the peer runs the domain ({why}): this host's copy was stale and is destroyed"
            ));
            return self.go(
                S::Standby,
                vec![
                    Action::Run(Step::DestroyPrimary),
                    Action::Send(PeerMsg::StandingBy),
                ],
            );
        }
        self.go_live(GoLive::RunAlone {
            why: format!("the peer holds no secondary any more ({why}): left COLO"),
            error: None,
            acts: vec![
                Action::Run(Step::LeaveColo),
                Action::Send(PeerMsg::ReleaseSecondary),
            ],
            reprotect: true,
        })
    }

    /// `PairDenied` in `Secondary`: the peer does not run the primary of the
    /// pair this host re-attached to; the secondary copy is useless.
    pub(super) fn pair_denied_secondary(&mut self, why: String) -> Outcome {
        self.unconfirmed = false;
        self.last_error = Some(format!(
            "the peer does not run the primary in COLO ({why}): the secondary copy \
             is useless and destroyed"
        ));
        self.go(
            State::Standby,
            vec![
                Action::Run(Step::DestroySecondary),
                Action::Send(PeerMsg::StandingBy),
            ],
        )
    }
}
