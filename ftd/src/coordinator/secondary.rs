//! The secondary's side: a host standing by to hold the secondary (`Standby`,
//! and `Stopped`: the domain is defined here but shut off), preparing and
//! holding it (`SecondaryPreparing`, `Secondary`), and taking over
//! (`TakingOver`), which makes this host the primary (`Degraded`, re-protecting
//! onto the peer when it can).

use super::golive::GoLive;
use super::machine::{Coordinator, Outcome, NOT_HERE, ON_SECONDARY};
use super::rules::{NOT_REATTACHING, NO_COLO};
use super::types::{Action, Event, PeerMsg, State, Step};

const NO_COPY: &str = "no copy of the domain runs here";
const STOPPED_HERE: &str = "the secondary domain stopped";

impl Coordinator {
    pub(super) fn on_standby(&mut self, ev: Event) -> Outcome {
        use Event as E;
        use PeerMsg as M;
        match ev {
            E::Enable | E::SwitchOver => self.invalid(&ev, NOT_HERE),
            E::Disable => {
                self.wanted = false;
                self.stay()
            }
            E::PeerUp | E::PeerLost => self.stay(),
            E::PeerDaemonLost => self.daemon_lost_as_host_lost(),
            E::Peer(M::HostSecondary) => self.host_secondary(),
            E::Peer(M::ReleaseSecondary | M::StandingBy | M::SecondaryFailed(_)) => self.stay(),
            ev @ E::Peer(M::SecondaryReady | M::PrimaryProtected | M::TakeOver | M::TookOver) => {
                self.invalid(&ev, NO_COPY)
            }
            E::Peer(M::CheckPair { primary }) => self.check_pair(primary),
            // A late answer: only a re-attached `Protected` or `Secondary` asks.
            E::Peer(M::PairConfirmed | M::PairDenied { .. }) => self.stay(),
            // Advice for the domain task, which checks its copy at once.
            E::Peer(M::ColoEnded) => self.stay(),
            E::StepDone(st) => self.step_after_abandon(st, None),
            E::StepFailed(st, e) => self.step_after_abandon(st, Some(e)),
            E::Checkpoint => self.invalid(&ev, NO_COLO),
            E::ColoExited(_) => self.stay(),
            E::DomainStarted => self.started_here(),
            E::DomainStopped => self.stay(),
            // A verdict for an arbitration this state has left behind.
            E::Verdict(_) => self.stay(),
            E::Found(_) => self.invalid(&ev, NOT_REATTACHING),
            E::DiskFailed(_) => self.stay(),
            // A timer for an attempt this host has left behind.
            E::Retry(_) => self.stay(),
        }
    }

    pub(super) fn on_stopped(&mut self, ev: Event) -> Outcome {
        use Event as E;
        use PeerMsg as M;
        match ev {
            // Remembered: protection starts when the domain starts here.
            E::Enable => {
                self.wanted = true;
                self.stay()
            }
            E::SwitchOver => self.invalid(&ev, "the domain is shut off"),
            E::Disable => {
                self.wanted = false;
                self.stay()
            }
            E::PeerUp | E::PeerLost => self.stay(),
            E::PeerDaemonLost => self.daemon_lost_as_host_lost(),
            E::Peer(M::HostSecondary) => self.host_secondary(),
            E::Peer(M::ReleaseSecondary | M::StandingBy | M::SecondaryFailed(_)) => self.stay(),
            ev @ E::Peer(M::SecondaryReady | M::PrimaryProtected | M::TakeOver | M::TookOver) => {
                self.invalid(&ev, NO_COPY)
            }
            E::Peer(M::CheckPair { primary }) => self.check_pair(primary),
            E::Peer(M::PairConfirmed | M::PairDenied { .. }) => self.stay(),
            E::Peer(M::ColoEnded) => self.stay(),
            E::StepDone(st) => self.step_after_abandon(st, None),
            E::StepFailed(st, e) => self.step_after_abandon(st, Some(e)),
            E::Checkpoint => self.invalid(&ev, NO_COLO),
            E::ColoExited(_) => self.stay(),
            E::DomainStarted => self.started_here(),
            E::DomainStopped => self.stay(),
            E::Verdict(_) => self.stay(),
            E::Found(_) => self.invalid(&ev, NOT_REATTACHING),
            E::DiskFailed(_) => self.stay(),
            E::Retry(_) => self.stay(),
        }
    }

    pub(super) fn on_secondary_preparing(&mut self, ev: Event) -> Outcome {
        use Event as E;
        use PeerMsg as M;
        use State as S;
        match ev {
            E::Enable | E::Disable | E::SwitchOver => self.invalid(&ev, ON_SECONDARY),
            E::PeerUp => self.stay(),
            E::PeerLost => {
                self.last_error =
                    Some("the primary was lost before the secondary was in sync".into());
                self.go(S::Standby, vec![Action::Run(Step::DestroySecondary)])
            }
            E::PeerDaemonLost => self.daemon_lost_as_host_lost(),
            E::Peer(M::PrimaryProtected) => self.go(S::Secondary, Vec::new()),
            E::Peer(M::HostSecondary) => self.stay(),
            E::Peer(M::ReleaseSecondary) => self.release_secondary(),
            ev @ E::Peer(
                M::SecondaryReady
                | M::SecondaryFailed(_)
                | M::TakeOver
                | M::TookOver
                | M::StandingBy,
            ) => self.invalid(&ev, "unexpected message while preparing the secondary"),
            E::Peer(M::CheckPair { primary }) => self.check_pair(primary),
            E::Peer(M::PairConfirmed | M::PairDenied { .. }) => self.stay(),
            E::Peer(M::ColoEnded) => self.stay(),
            E::StepDone(Step::CreateSecondary) => Ok(vec![Action::Send(M::SecondaryReady)]),
            E::StepFailed(Step::CreateSecondary, e) => {
                let e = format!("creating the secondary failed: {e}");
                self.last_error = Some(e.clone());
                self.give_secondary_up(e)
            }
            E::StepDone(st) => self.step_not_started(st, None),
            E::StepFailed(st, e) => self.step_not_started(st, Some(e)),
            E::Checkpoint => self.checkpoint(),
            E::ColoExited(r) => self.give_secondary_up(format!(
                "COLO exited on the secondary before protection was reached ({r})"
            )),
            E::DomainStarted => self.stay(),
            E::DomainStopped => self.give_secondary_up(STOPPED_HERE.into()),
            E::Verdict(_) => self.stay(),
            E::Found(_) => self.invalid(&ev, NOT_REATTACHING),
            E::DiskFailed(e) => self.secondary_disk_failed(e),
            E::Retry(_) => self.stay(),
        }
    }

    pub(super) fn on_secondary(&mut self, ev: Event) -> Outcome {
        use Event as E;
        use PeerMsg as M;
        match ev {
            E::Enable | E::Disable | E::SwitchOver => self.invalid(&ev, ON_SECONDARY),
            E::PeerUp => Ok(self.check_if_unconfirmed(false)),
            E::PeerLost if self.arbitrated() => self.arbitrate(),
            E::PeerLost => self.take_over("primary host lost (no heartbeat)".into()),
            E::PeerDaemonLost => self.daemon_lost_colo_goes_on(),
            E::Peer(M::TakeOver) => self.go_live(GoLive::TakeOver {
                why: "planned switch-over".into(),
                planned: true,
            }),
            // The primary's copy stopped on its host (its QEMU died) while its
            // ftd lives: this copy is the domain now.
            E::Peer(M::StandingBy) => {
                self.take_over("the primary's copy stopped on its host".into())
            }
            E::Peer(M::ReleaseSecondary) => self.release_secondary(),
            ev @ E::Peer(
                M::HostSecondary
                | M::SecondaryReady
                | M::SecondaryFailed(_)
                | M::PrimaryProtected
                | M::TookOver,
            ) => self.invalid(&ev, "unexpected message while secondary"),
            E::Peer(M::CheckPair { primary }) => self.check_pair(primary),
            E::Peer(M::PairConfirmed) => self.pair_confirmed(),
            E::Peer(M::PairDenied { why, .. }) => self.pair_denied_secondary(why),
            E::Peer(M::ColoEnded) => self.stay(),
            E::StepDone(st) => self.step_not_started(st, None),
            E::StepFailed(st, e) => self.step_not_started(st, Some(e)),
            E::Checkpoint => self.checkpoint(),
            // COLO ended here while the primary's ftd still answers: it knows
            // why, and says so within a moment (its copy died: StandingBy, take
            // over; it left COLO: ReleaseSecondary). Taking over now, with the
            // primary's copy perhaps still running, would run two copies.
            E::ColoExited(_) if self.peer_up => Ok(vec![Action::Send(M::ColoEnded)]),
            E::ColoExited(r) => self.take_over(format!("COLO exited on the secondary ({r})")),
            E::DomainStarted => self.stay(),
            E::DomainStopped => self.give_secondary_up(STOPPED_HERE.into()),
            E::Verdict(_) => self.stay(),
            E::Found(_) => self.invalid(&ev, NOT_REATTACHING),
            E::DiskFailed(e) => self.secondary_disk_failed(e),
            E::Retry(_) => self.stay(),
        }
    }

    pub(super) fn on_taking_over(&mut self, ev: Event) -> Outcome {
        use Event as E;
        use PeerMsg as M;
        use State as S;
        match ev {
            E::Enable | E::Disable | E::SwitchOver => {
                self.invalid(&ev, "a takeover is in progress; try again when it is done")
            }
            E::PeerUp | E::PeerLost => self.stay(),
            E::PeerDaemonLost => self.daemon_lost_as_host_lost(),
            E::Peer(M::StandingBy | M::ReleaseSecondary) => self.stay(),
            ev @ E::Peer(
                M::HostSecondary
                | M::SecondaryReady
                | M::SecondaryFailed(_)
                | M::PrimaryProtected
                | M::TakeOver
                | M::TookOver,
            ) => self.invalid(&ev, "unexpected message during a takeover"),
            E::Peer(M::CheckPair { primary }) => self.check_pair(primary),
            E::Peer(M::PairConfirmed | M::PairDenied { .. }) => self.stay(),
            E::Peer(M::ColoEnded) => self.stay(),
            E::StepDone(Step::TakeOver) => {
                self.wanted = true;
                if std::mem::take(&mut self.planned) {
                    self.go(S::Degraded, vec![Action::Send(M::TookOver)])
                } else {
                    self.go(S::Degraded, Vec::new())?;
                    self.maybe_reprotect()
                }
            }
            E::StepFailed(Step::TakeOver, e) => {
                self.planned = false;
                self.fail(format!("takeover failed: {e}"), Vec::new())
            }
            E::StepDone(st) => self.step_not_started(st, None),
            E::StepFailed(st, e) => self.step_not_started(st, Some(e)),
            E::Checkpoint => self.checkpoint(),
            E::ColoExited(_) => self.stay(),
            E::DomainStarted => self.stay(),
            E::DomainStopped => {
                self.planned = false;
                self.go(S::Stopped, Vec::new())
            }
            E::Verdict(_) => self.stay(),
            E::Found(_) => self.invalid(&ev, NOT_REATTACHING),
            E::DiskFailed(_) => self.stay(),
            E::Retry(_) => self.stay(),
        }
    }

    /// `HostSecondary` where no copy runs: create the secondary here.
    pub(super) fn host_secondary(&mut self) -> Outcome {
        self.go(
            State::SecondaryPreparing,
            vec![Action::Run(Step::CreateSecondary)],
        )
    }

    /// The domain was started here (by hand): it runs here now, unprotected,
    /// and is protected if that is wanted.
    pub(super) fn started_here(&mut self) -> Outcome {
        self.go(State::Unprotected, Vec::new())?;
        if self.wanted {
            self.protect()
        } else {
            self.stay()
        }
    }

    /// `ReleaseSecondary`: the primary ends protection; drop the copy.
    pub(super) fn release_secondary(&mut self) -> Outcome {
        self.go(State::Standby, vec![Action::Run(Step::DestroySecondary)])
    }

    /// This host cannot hold the secondary any more: drop it, tell the primary.
    pub(super) fn give_secondary_up(&mut self, why: String) -> Outcome {
        self.go(
            State::Standby,
            vec![
                Action::Run(Step::DestroySecondary),
                Action::Send(PeerMsg::SecondaryFailed(why)),
            ],
        )
    }

    /// Become the primary: fail over (`why` is kept as the last failover),
    /// once the witness agrees if there is one (`golive.rs`).
    fn take_over(&mut self, why: String) -> Outcome {
        self.go_live(GoLive::TakeOver {
            why,
            planned: false,
        })
    }
}
