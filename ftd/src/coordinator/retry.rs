//! A failed protection attempt is tried again, later, by itself.
//!
//! When setting up protection fails (`Preparing`, `Syncing` or `Starting` ends
//! in `Failed`: the peer could not create the secondary, the disk sync or COLO's
//! start failed, the secondary's COLO ended first) and protection is still
//! wanted with automatic re-protection on, the coordinator asks for a timer
//! ([`Action::RetryIn`]) and tries again when it fires ([`Event::Retry`]), as a
//! user of VMware FT expects of a secondary that failed to start. The delay
//! doubles with each consecutive failure (10 s, 20 s, 40 s ... at most 5 min),
//! so that a cause someone must fix (a full disk on the peer, a missing
//! directory) is not hammered; `last_error` says when the next attempt comes.
//! Reaching `Protected`, or the user's `Enable`/`Disable`, starts the count
//! afresh. A timer that fires after the state moved on, or for an earlier
//! attempt, changes nothing.
//!
//! A failure because the peer is unreachable needs no timer: the peer's return
//! (`PeerUp`) re-protects.

use super::machine::{Coordinator, Outcome};
use super::types::{Action, State};
use std::time::Duration;

/// The first retry's delay; each further consecutive failure doubles it.
const FIRST: Duration = Duration::from_secs(10);
/// The longest delay between two attempts.
const LONGEST: Duration = Duration::from_secs(300);

/// The delay before retrying after the `attempt`-th consecutive failure (1-based).
pub fn backoff(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    (FIRST * 2u32.pow(doublings)).min(LONGEST)
}

impl Coordinator {
    /// A protection attempt failed: undo with `actions`, and try again later if
    /// protection is still wanted and automatic re-protection is on.
    pub(super) fn fail_attempt(&mut self, why: String, mut actions: Vec<Action>) -> Outcome {
        self.attempts = self.attempts.saturating_add(1);
        if !(self.wanted && self.settings.auto_reprotect) {
            return self.fail(why, actions);
        }
        let after = backoff(self.attempts);
        actions.push(Action::RetryIn {
            after,
            attempt: self.attempts,
        });
        let n = self.attempts;
        let why = format!(
            "{why} (attempt {n}; ftd tries again in {}s, or run ft-enable once the cause is fixed)",
            after.as_secs()
        );
        self.fail(why, actions)
    }

    /// The timer for failed attempt `attempt` fired.
    pub(super) fn retry(&mut self, attempt: u32) -> Outcome {
        if self.state == State::Failed && attempt == self.attempts {
            self.maybe_reprotect()
        } else {
            self.stay()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::{Event, PeerMsg, Settings, Step};

    /// A primary whose protection is wanted, peer up, in `Preparing`.
    fn preparing(auto_reprotect: bool) -> Coordinator {
        let mut c = Coordinator::new(
            State::Unprotected,
            Settings {
                auto_reprotect,
                arbiter: false,
                witness: false,
            },
        );
        c.peer_up = true;
        c.on(Event::Enable).unwrap();
        assert_eq!(c.state(), State::Preparing);
        c
    }

    fn secondary_fails(c: &mut Coordinator) -> Vec<Action> {
        c.on(Event::Peer(PeerMsg::SecondaryFailed("no room".into())))
            .unwrap()
    }

    fn timer(acts: &[Action]) -> Option<(u64, u32)> {
        acts.iter().find_map(|a| match a {
            Action::RetryIn { after, attempt } => Some((after.as_secs(), *attempt)),
            _ => None,
        })
    }

    #[test]
    fn a_failed_attempt_is_tried_again_later_and_backs_off() {
        let mut c = preparing(true);
        let acts = secondary_fails(&mut c);
        assert_eq!(c.state(), State::Failed);
        assert!(acts.contains(&Action::Run(Step::Undo)), "{acts:?}");
        assert_eq!(timer(&acts), Some((10, 1)));
        let e = c.last_error().unwrap();
        assert!(
            e.contains("no room") && e.contains("attempt 1") && e.contains("10s"),
            "{e}"
        );
        // The timer fires: a new attempt.
        assert_eq!(
            c.on(Event::Retry(1)).unwrap(),
            [Action::Send(PeerMsg::HostSecondary)]
        );
        assert_eq!(c.state(), State::Preparing);
        assert_eq!(timer(&secondary_fails(&mut c)), Some((20, 2)));
        // A timer of an earlier attempt changes nothing.
        assert!(c.on(Event::Retry(1)).unwrap().is_empty());
        assert_eq!(c.state(), State::Failed);
        c.on(Event::Retry(2)).unwrap();
        // This one works: the count starts afresh.
        c.on(Event::Peer(PeerMsg::SecondaryReady)).unwrap();
        c.on(Event::StepDone(Step::Sync)).unwrap();
        c.on(Event::StepDone(Step::StartColo)).unwrap();
        assert_eq!(c.state(), State::Protected);
        c.on(Event::Peer(PeerMsg::SecondaryFailed("gone".into())))
            .unwrap();
        assert_eq!(c.state(), State::Degraded);
        c.on(Event::PeerUp).unwrap();
        assert_eq!(c.state(), State::Preparing);
        assert_eq!(timer(&secondary_fails(&mut c)), Some((10, 1)));
    }

    #[test]
    fn no_retry_without_auto_reprotect_after_disable_or_while_the_peer_is_away() {
        let mut c = preparing(false);
        assert_eq!(timer(&secondary_fails(&mut c)), None);
        assert!(!c.last_error().unwrap().contains("tries again"));

        let mut c = preparing(true);
        secondary_fails(&mut c);
        c.on(Event::Disable).unwrap();
        assert!(c.on(Event::Retry(1)).unwrap().is_empty());
        assert_eq!(c.state(), State::Unprotected);

        // The peer went away meanwhile: its return re-protects, not the timer.
        let mut c = preparing(true);
        secondary_fails(&mut c);
        c.on(Event::PeerLost).unwrap();
        assert!(c.on(Event::Retry(1)).unwrap().is_empty());
        assert_eq!(c.state(), State::Failed);
        c.on(Event::PeerUp).unwrap();
        assert_eq!(c.state(), State::Preparing);

        // A lost peer while preparing waits for its return: no timer.
        let mut c = preparing(true);
        let acts = c.on(Event::PeerLost).unwrap();
        assert_eq!(timer(&acts), None);
    }

    #[test]
    fn the_delay_doubles_up_to_five_minutes() {
        let secs: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX), LONGEST);
        assert_eq!(backoff(0), FIRST);
    }
}
