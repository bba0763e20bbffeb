//! The rules several states share. Each handler calls them by name for the
//! events they decide, so that what a state does with an event is read in the
//! handler's own match:
//!
//! - a checkpoint counts where a COLO session runs ([`Coordinator::checkpoint`]),
//!   and is refused elsewhere ([`NO_COLO`]);
//! - a step outcome the state does not wait for: a clean-up step may finish in
//!   any state (its failure is kept), a progress step is ignored where an
//!   attempt ends ([`Coordinator::step_after_abandon`]) and refused where
//!   nothing could have started it ([`Coordinator::step_not_started`]);
//! - the loss of the peer's ftd alone counts as the loss of its host wherever a
//!   running COLO pair does not go on without it
//!   ([`Coordinator::daemon_lost_as_host_lost`]).
//!
//! The pair check after a re-attach (`CheckPair`, `PairConfirmed`,
//! `PairDenied`) is in `reattach.rs`, the retry timer in `retry.rs`, a failed
//! replicated write in `disk.rs`.

use super::machine::{Coordinator, Outcome, PEER_DAEMON_LOST};
use super::types::{Event, EventKind, Step};
use super::InvalidTransition;

/// Why a checkpoint is refused outside a COLO session.
pub(super) const NO_COLO: &str = "no COLO session runs here";
/// Why a progress step's outcome is refused where nothing started it.
pub(super) const NOT_STARTED: &str = "no such step was started in this state";
/// Why `Found` is refused outside `Reattaching`.
pub(super) const NOT_REATTACHING: &str = "nothing is being re-attached";
/// Why `DomainStarted` is refused where the domain runs.
pub(super) const ALREADY_RUNS: &str = "the domain already runs here";

impl Coordinator {
    /// A checkpoint completed in this state's COLO session.
    pub(super) fn checkpoint(&mut self) -> Outcome {
        self.checkpoints += 1;
        self.session_checkpoints += 1;
        self.stay()
    }

    /// The outcome (`failed`: its error) of a step this state does not wait
    /// for, in a state where protection attempts end (`Unprotected`,
    /// `Degraded`, `Failed`, `Disabling`, `Standby`, `Stopped`, `Fenced`): a
    /// progress step's outcome belongs to the attempt left behind; ignored.
    pub(super) fn step_after_abandon(&mut self, st: Step, failed: Option<String>) -> Outcome {
        debug_assert!(!self.waits_for(st), "{:?} waits for {st:?}", self.state);
        if st.is_cleanup() {
            self.cleanup_finished(st, failed)
        } else {
            self.stay()
        }
    }

    /// The outcome of a step this state does not wait for, in a state that
    /// abandons no attempt: a clean-up step as anywhere; a progress step that
    /// nothing here could have started is refused.
    pub(super) fn step_not_started(&mut self, st: Step, failed: Option<String>) -> Outcome {
        debug_assert!(!self.waits_for(st), "{:?} waits for {st:?}", self.state);
        if st.is_cleanup() {
            return self.cleanup_finished(st, failed);
        }
        Err(InvalidTransition {
            state: self.state,
            event: if failed.is_some() {
                EventKind::StepFailed
            } else {
                EventKind::StepDone
            },
            why: NOT_STARTED,
        })
    }

    /// A clean-up step finished where nobody waits for it: keep its failure.
    fn cleanup_finished(&mut self, st: Step, failed: Option<String>) -> Outcome {
        if let Some(e) = failed {
            self.last_error = Some(format!("{st:?}: {e}"));
        }
        self.stay()
    }

    /// `PeerDaemonLost` where a running COLO pair does not go on without the
    /// peer's ftd (a protection attempt, a switch-over, preparing the secondary,
    /// ...): it cannot finish without it, so it is handled as `PeerLost`, the
    /// link fact included.
    pub(super) fn daemon_lost_as_host_lost(&mut self) -> Outcome {
        self.step(Event::PeerLost)
    }

    /// `PeerDaemonLost` in a running COLO pair (`Protected`, `Secondary`): QEMU
    /// checkpoints without ftd and the peer's restart re-attaches; the note says
    /// so until the peer's host is heard of again.
    pub(super) fn daemon_lost_colo_goes_on(&mut self) -> Outcome {
        self.last_error = Some(PEER_DAEMON_LOST.into());
        self.stay()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Coordinator, Settings, State};
    use super::*;
    use strum::VariantArray;

    /// `waits_for` (which the domain task asks before cutting an abandoned
    /// step) agrees with the handlers: the outcome of a step a state does not
    /// wait for changes neither the state nor anything it does.
    #[test]
    fn a_step_no_state_waits_for_changes_nothing() {
        for &s in State::VARIANTS {
            for &st in Step::VARIANTS {
                for ev in [Event::StepDone(st), Event::StepFailed(st, "boom".into())] {
                    let mut c = Coordinator::new(s, Settings::default());
                    c.set_wanted(true);
                    c.peer_up = true;
                    if c.waits_for(st) {
                        continue;
                    }
                    let out = c.on(ev.clone());
                    match out {
                        Ok(acts) => assert!(acts.is_empty(), "{s:?} + {ev:?}: {acts:?}"),
                        Err(e) => assert_eq!(e.why, NOT_STARTED, "{s:?} + {ev:?}"),
                    }
                    assert_eq!(c.state(), s, "{s:?} + {ev:?}");
                }
            }
        }
    }
}
