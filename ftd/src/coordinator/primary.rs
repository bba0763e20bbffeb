//! The primary's side while protection runs: `Protected` (COLO with a live
//! secondary), and the two ways out a user asks for, `SwitchingOver` (the
//! planned hand-over: `StopPrimary`, `TakeOver` to the peer, then on `TookOver`
//! `DestroyPrimary` and `Standby`) and `Disabling` (`LeaveColo` or `Undo`, then
//! `Unprotected`). Losing the secondary leads to `Degraded` (`alone.rs`); with
//! an arbiter, losing the peer leads to `Arbitrating` (`arbitration.rs`).

use super::golive::GoLive;
use super::machine::{Coordinator, Outcome};
use super::rules::{ALREADY_RUNS, NOT_REATTACHING};
use super::types::{Action, Event, PeerMsg, State, Step};

impl Coordinator {
    pub(super) fn on_protected(&mut self, ev: Event) -> Outcome {
        use Event as E;
        use PeerMsg as M;
        use State as S;
        match ev {
            E::Enable => self.invalid(&ev, "the domain is already protected"),
            E::Disable => self.go_live(GoLive::Disable),
            E::SwitchOver => {
                self.planned = true;
                self.go(S::SwitchingOver, vec![Action::Run(Step::StopPrimary)])
            }
            E::PeerUp => Ok(self.check_if_unconfirmed(true)),
            E::PeerLost if self.arbitrated() => self.arbitrate(),
            E::PeerLost => self.perform(GoLive::alone("secondary host lost (no heartbeat)")),
            E::PeerDaemonLost => self.daemon_lost_colo_goes_on(),
            E::Peer(M::SecondaryFailed(e)) => self.go_live(GoLive::RunAlone {
                why: format!("secondary failed: {e}"),
                error: Some(format!("the secondary failed: {e}")),
                acts: vec![Action::Run(Step::LeaveColo)],
                reprotect: false,
            }),
            E::Peer(M::StandingBy) => self.stay(),
            // `HostSecondary`: the peer took over while this copy still runs
            // (see `a_request_to_host_the_secondary_missed_while_the_old_copy_died_is_repeated`):
            // refused until this host notices its copy stopped.
            ev @ E::Peer(
                M::HostSecondary
                | M::SecondaryReady
                | M::PrimaryProtected
                | M::ReleaseSecondary
                | M::TakeOver
                | M::TookOver,
            ) => self.invalid(&ev, "unexpected message from the peer while protected"),
            E::Peer(M::CheckPair { primary }) => self.check_pair(primary),
            E::Peer(M::PairConfirmed) => self.pair_confirmed(),
            E::Peer(M::PairDenied { runs, why }) => self.pair_denied_primary(runs, why),
            E::Peer(M::ColoEnded) => self.stay(),
            E::StepDone(st) => self.step_not_started(st, None),
            E::StepFailed(st, e) => self.step_not_started(st, Some(e)),
            E::Checkpoint => self.checkpoint(),
            E::ColoExited(r) => self.go_live(GoLive::RunAlone {
                why: format!("COLO exited on the primary ({r})"),
                error: None,
                acts: vec![
                    Action::Run(Step::LeaveColo),
                    Action::Send(M::ReleaseSecondary),
                ],
                reprotect: false,
            }),
            E::DomainStarted => self.invalid(&ev, ALREADY_RUNS),
            // The secondary is a full copy: it takes over, and this host stands
            // by to host the next secondary.
            E::DomainStopped => {
                self.last_failover =
                    Some("this host's copy stopped; the secondary on the peer takes over".into());
                self.go(S::Stopped, vec![Action::Send(M::StandingBy)])
            }
            E::Verdict(_) => self.stay(),
            E::Found(_) => self.invalid(&ev, NOT_REATTACHING),
            E::DiskFailed(e) => self.replication_failed(e),
            E::Retry(_) => self.stay(),
        }
    }

    pub(super) fn on_switching_over(&mut self, ev: Event) -> Outcome {
        use Event as E;
        use PeerMsg as M;
        use State as S;
        match ev {
            E::Enable => self.invalid(
                &ev,
                "a planned failover is under way; the domain stays protected",
            ),
            E::Disable => self.invalid(&ev, "a switch-over is in progress"),
            E::SwitchOver => self.stay(),
            E::PeerUp => self.stay(),
            // The peer may already have taken over (TakeOver was sent): the guest
            // stays paused here until the peer is heard from again.
            E::PeerLost if self.arbitrated() => self.stay(),
            E::PeerLost => {
                // Without an arbiter the safest guess is that the peer is dead: run on.
                self.planned = false;
                self.perform(GoLive::alone("secondary host lost during a switch-over"))
            }
            E::PeerDaemonLost => self.daemon_lost_as_host_lost(),
            E::Peer(M::TookOver) => Ok(vec![Action::Run(Step::DestroyPrimary)]),
            E::Peer(M::SecondaryFailed(e)) => {
                self.planned = false;
                self.go_live(GoLive::alone(format!(
                    "secondary failed during a switch-over: {e}"
                )))
            }
            ev @ E::Peer(
                M::HostSecondary
                | M::SecondaryReady
                | M::PrimaryProtected
                | M::ReleaseSecondary
                | M::TakeOver
                | M::StandingBy,
            ) => self.invalid(&ev, "unexpected message during a switch-over"),
            E::Peer(M::CheckPair { primary }) => self.check_pair(primary),
            E::Peer(M::PairConfirmed | M::PairDenied { .. }) => self.stay(),
            E::Peer(M::ColoEnded) => self.stay(),
            E::StepDone(Step::StopPrimary) => Ok(vec![Action::Send(M::TakeOver)]),
            E::StepFailed(Step::StopPrimary, e) => {
                self.planned = false;
                self.last_error = Some(format!("switch-over: pausing the primary failed: {e}"));
                // The peer went silent meanwhile (and was ignored, the switch-over
                // being under way): the arbiter decides now, as from `Protected`.
                if !self.peer_up && self.arbitrated() {
                    return self.arbitrate();
                }
                self.go(S::Protected, Vec::new())
            }
            E::StepDone(Step::DestroyPrimary) => {
                self.planned = false;
                self.last_failover = Some("planned switch-over".into());
                self.go(S::Standby, vec![Action::Send(M::StandingBy)])
            }
            E::StepFailed(Step::DestroyPrimary, e) => {
                self.planned = false;
                self.last_error = Some(format!(
                    "switch-over: destroying the old primary failed: {e}"
                ));
                self.go(S::Standby, Vec::new())
            }
            E::StepDone(st) => self.step_not_started(st, None),
            E::StepFailed(st, e) => self.step_not_started(st, Some(e)),
            E::Checkpoint => self.checkpoint(),
            E::ColoExited(_) => self.stay(),
            E::DomainStarted => self.invalid(&ev, ALREADY_RUNS),
            E::DomainStopped => self.stay(),
            E::Verdict(_) => self.stay(),
            E::Found(_) => self.invalid(&ev, NOT_REATTACHING),
            E::DiskFailed(_) => self.stay(),
            E::Retry(_) => self.stay(),
        }
    }

    pub(super) fn on_disabling(&mut self, ev: Event) -> Outcome {
        use Event as E;
        use PeerMsg as M;
        match ev {
            E::Enable => self.invalid(
                &ev,
                "protection is being disabled; enable it again afterwards",
            ),
            E::Disable => self.stay(),
            E::SwitchOver => self.invalid(&ev, "protection is being disabled"),
            E::PeerUp | E::PeerLost => self.stay(),
            E::PeerDaemonLost => self.daemon_lost_as_host_lost(),
            E::Peer(M::SecondaryFailed(_) | M::SecondaryReady | M::StandingBy) => self.stay(),
            ev @ E::Peer(
                M::HostSecondary
                | M::PrimaryProtected
                | M::ReleaseSecondary
                | M::TakeOver
                | M::TookOver,
            ) => self.invalid(&ev, "unexpected message while disabling"),
            E::Peer(M::CheckPair { primary }) => self.check_pair(primary),
            E::Peer(M::PairConfirmed | M::PairDenied { .. }) => self.stay(),
            E::Peer(M::ColoEnded) => self.stay(),
            E::StepDone(Step::LeaveColo | Step::Undo) => self.go(State::Unprotected, Vec::new()),
            E::StepFailed(st @ (Step::LeaveColo | Step::Undo), e) => {
                self.last_error = Some(format!("disable: {st:?} failed: {e}"));
                self.go(State::Unprotected, Vec::new())
            }
            E::StepDone(st) => self.step_after_abandon(st, None),
            E::StepFailed(st, e) => self.step_after_abandon(st, Some(e)),
            E::Checkpoint => self.checkpoint(),
            E::ColoExited(_) => self.stay(),
            E::DomainStarted => self.invalid(&ev, ALREADY_RUNS),
            E::DomainStopped => self.go(State::Stopped, vec![Action::Send(M::ReleaseSecondary)]),
            E::Verdict(_) => self.stay(),
            E::Found(_) => self.invalid(&ev, NOT_REATTACHING),
            E::DiskFailed(_) => self.stay(),
            E::Retry(_) => self.stay(),
        }
    }
}
