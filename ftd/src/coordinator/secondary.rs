//! The secondary's side of the transition function: a host standing by to
//! hold the secondary (`Standby`, and `Stopped`: the domain is defined here but
//! shut off), preparing and holding it (`SecondaryPreparing`, `Secondary`), and
//! taking over (`TakingOver`). [`Coordinator::secondary_side`] decides the
//! events these states handle in their own way and gives every other event back
//! to the cross-state rules in `machine.rs` (the peer's ftd, disk replication,
//! libvirt's lifecycle, late steps). The table test pins every cell either way.

use super::machine::{Coordinator, Outcome, NOT_HERE, ON_SECONDARY};
use super::types::{Action, Event, PeerMsg, State, Step};

impl Coordinator {
    /// `Ok` with the outcome if this is the secondary side's to decide, else
    /// `Err` with the event, untouched.
    pub(super) fn secondary_side(&mut self, ev: Event) -> Result<Outcome, Event> {
        use Event as E;
        use State as S;
        Ok(match (self.state, ev) {
            // ---------------------------------------------------------------- Standby
            (S::Stopped, E::Enable) => {
                self.wanted = true;
                self.stay()
            }
            (S::Standby, ev @ (E::Enable | E::SwitchOver)) => self.invalid(&ev, NOT_HERE),
            (S::Standby | S::Stopped, E::Disable) => {
                self.wanted = false;
                self.stay()
            }
            (S::Standby | S::Stopped, E::PeerUp | E::PeerLost) => self.stay(),
            (S::Standby | S::Stopped, E::Peer(PeerMsg::HostSecondary)) => self.go(
                S::SecondaryPreparing,
                vec![Action::Run(Step::CreateSecondary)],
            ),
            (
                S::Standby | S::Stopped,
                E::Peer(
                    PeerMsg::ReleaseSecondary | PeerMsg::StandingBy | PeerMsg::SecondaryFailed(_),
                ),
            ) => self.stay(),
            (S::Standby | S::Stopped, ev @ E::Peer(_)) => {
                self.invalid(&ev, "no copy of the domain runs here")
            }
            (S::Standby | S::Stopped, E::DomainStarted) => {
                self.state = S::Unprotected;
                if self.wanted {
                    self.protect()
                } else {
                    self.stay()
                }
            }

            // ---------------------------------------------------------------- SecondaryPreparing
            (
                S::SecondaryPreparing | S::Secondary,
                ev @ (E::Enable | E::Disable | E::SwitchOver),
            ) => self.invalid(&ev, ON_SECONDARY),
            (S::SecondaryPreparing, E::StepDone(Step::CreateSecondary)) => {
                Ok(vec![Action::Send(PeerMsg::SecondaryReady)])
            }
            (S::SecondaryPreparing, E::StepFailed(Step::CreateSecondary, e)) => {
                let e = format!("creating the secondary failed: {e}");
                self.last_error = Some(e.clone());
                self.go(
                    S::Standby,
                    vec![
                        Action::Run(Step::DestroySecondary),
                        Action::Send(PeerMsg::SecondaryFailed(e)),
                    ],
                )
            }
            (S::SecondaryPreparing, E::Peer(PeerMsg::PrimaryProtected)) => {
                self.go(S::Secondary, Vec::new())
            }
            (S::SecondaryPreparing, E::Peer(PeerMsg::HostSecondary)) => self.stay(),
            (S::SecondaryPreparing | S::Secondary, E::Peer(PeerMsg::ReleaseSecondary)) => {
                self.go(S::Standby, vec![Action::Run(Step::DestroySecondary)])
            }
            (S::SecondaryPreparing, E::PeerLost) => {
                self.last_error =
                    Some("the primary was lost before the secondary was in sync".into());
                self.go(S::Standby, vec![Action::Run(Step::DestroySecondary)])
            }
            (S::SecondaryPreparing, E::PeerUp) => self.stay(),
            (S::Secondary, E::PeerUp) => Ok(self.check_if_unconfirmed(false)),
            (S::SecondaryPreparing, E::ColoExited(r)) => {
                let e = format!("COLO exited on the secondary before protection was reached ({r})");
                self.go(
                    S::Standby,
                    vec![
                        Action::Run(Step::DestroySecondary),
                        Action::Send(PeerMsg::SecondaryFailed(e)),
                    ],
                )
            }
            (S::SecondaryPreparing | S::Secondary, E::DomainStopped) => self.go(
                S::Standby,
                vec![
                    Action::Run(Step::DestroySecondary),
                    Action::Send(PeerMsg::SecondaryFailed(
                        "the secondary domain stopped".into(),
                    )),
                ],
            ),
            (S::SecondaryPreparing | S::Secondary | S::TakingOver, E::DomainStarted) => self.stay(),
            (S::SecondaryPreparing, ev @ E::Peer(_)) => {
                self.invalid(&ev, "unexpected message while preparing the secondary")
            }

            // ---------------------------------------------------------------- Secondary
            (S::Secondary, E::PeerLost) if self.settings.arbiter => self.arbitrate(),
            (S::Secondary, E::PeerLost) => {
                self.last_failover = Some("primary host lost (no heartbeat)".into());
                self.go(S::TakingOver, vec![Action::Run(Step::TakeOver)])
            }
            (S::Secondary, E::Peer(PeerMsg::TakeOver)) => {
                self.planned = true;
                self.last_failover = Some("planned switch-over".into());
                self.go(S::TakingOver, vec![Action::Run(Step::TakeOver)])
            }
            // COLO ended here while the primary's ftd still answers: it knows
            // why, and says so within a moment (its copy died: StandingBy, take
            // over; it left COLO: ReleaseSecondary). Taking over now, with the
            // primary's copy perhaps still running, would run two copies.
            (S::Secondary, E::ColoExited(_)) if self.peer_up => {
                Ok(vec![Action::Send(PeerMsg::ColoEnded)])
            }
            (S::Secondary, E::ColoExited(r)) => {
                self.last_failover = Some(format!("COLO exited on the secondary ({r})"));
                self.go(S::TakingOver, vec![Action::Run(Step::TakeOver)])
            }
            // The primary's copy stopped on its host (its QEMU died) while its
            // ftd lives: this copy is the domain now.
            (S::Secondary, E::Peer(PeerMsg::StandingBy)) => {
                self.last_failover = Some("the primary's copy stopped on its host".into());
                self.go(S::TakingOver, vec![Action::Run(Step::TakeOver)])
            }
            (S::Secondary, ev @ E::Peer(_)) => {
                self.invalid(&ev, "unexpected message while secondary")
            }

            // ---------------------------------------------------------------- TakingOver
            (S::TakingOver, ev @ (E::Enable | E::Disable | E::SwitchOver)) => {
                self.invalid(&ev, "a takeover is in progress; try again when it is done")
            }
            (S::TakingOver, E::StepDone(Step::TakeOver)) => {
                self.wanted = true;
                if std::mem::take(&mut self.planned) {
                    self.go(S::Degraded, vec![Action::Send(PeerMsg::TookOver)])
                } else {
                    self.state = S::Degraded;
                    self.maybe_reprotect()
                }
            }
            (S::TakingOver, E::StepFailed(Step::TakeOver, e)) => {
                self.planned = false;
                self.fail(format!("takeover failed: {e}"), Vec::new())
            }
            (S::TakingOver, E::PeerUp | E::PeerLost | E::ColoExited(_)) => self.stay(),
            (S::TakingOver, E::Peer(PeerMsg::StandingBy | PeerMsg::ReleaseSecondary)) => {
                self.stay()
            }
            (S::TakingOver, ev @ E::Peer(_)) => {
                self.invalid(&ev, "unexpected message during a takeover")
            }
            (_, ev) => return Err(ev),
        })
    }
}
