//! What domain tasks tell the outside world: a snapshot of a domain's protection
//! every time it changes (state, checkpoints, peer, errors), with the transition
//! that caused it when the state moved. Domain tasks publish; the D-Bus side
//! ([`crate::api::publish`]) turns the stream into per-domain objects, their
//! `PropertiesChanged` signals and the manager's `StateChanged` signal.
//!
//! Publishing never blocks a domain task: the channel is unbounded and a closed
//! receiver (a daemon without a bus, as in unit tests) is ignored.

use crate::coordinator::State;
use std::time::Instant;
use tokio::sync::mpsc;

/// A snapshot of one domain's protection, for the API.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub domain: String,
    pub state: State,
    pub wanted: bool,
    pub peer: String,
    pub peer_up: bool,
    pub checkpoints: u64,
    /// Seconds since the last checkpoint, if any was seen.
    pub last_checkpoint_age: Option<f64>,
    pub last_error: Option<String>,
    pub last_failover: Option<String>,
}

impl Status {
    /// Equal in everything but the age of the last checkpoint (which grows by itself).
    pub fn same_but_age(a: &Status, b: &Status) -> bool {
        Status {
            last_checkpoint_age: None,
            ..a.clone()
        } == Status {
            last_checkpoint_age: None,
            ..b.clone()
        }
    }
}

/// A state transition, as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    /// What caused it (the coordinator event, in words).
    pub reason: String,
}

/// One published change of a domain.
#[derive(Debug, Clone)]
pub struct Change {
    pub status: Status,
    /// When `status` was taken (its `last_checkpoint_age` is relative to this).
    pub at: Instant,
    pub transition: Option<Transition>,
}

/// Where domain tasks publish their changes (cheap to clone).
#[derive(Debug, Clone)]
pub struct Observer {
    tx: mpsc::UnboundedSender<Change>,
}

impl Observer {
    /// An observer and the stream of what is published to it.
    pub fn channel() -> (Observer, mpsc::UnboundedReceiver<Change>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Observer { tx }, rx)
    }

    /// An observer nobody listens to.
    pub fn none() -> Observer {
        Observer::channel().0
    }

    pub fn publish(&self, change: Change) {
        let _ = self.tx.send(change);
    }
}

/// Remembers what a domain task last published, so that it publishes only changes.
#[derive(Debug, Default)]
pub struct Publisher {
    last: Option<Status>,
}

impl Publisher {
    /// The change to publish for `now`, if anything a client can see moved (the
    /// age of the last checkpoint grows by itself and does not count; a new
    /// checkpoint does).
    pub fn diff(&mut self, now: Status, transition: Option<Transition>) -> Option<Change> {
        let same = self
            .last
            .as_ref()
            .is_some_and(|l| Status::same_but_age(l, &now));
        if same && transition.is_none() {
            return None;
        }
        self.last = Some(now.clone());
        Some(Change {
            status: now,
            at: Instant::now(),
            transition,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(state: State, checkpoints: u64, age: Option<f64>) -> Status {
        Status {
            domain: "g".into(),
            state,
            wanted: true,
            peer: "b".into(),
            peer_up: true,
            checkpoints,
            last_checkpoint_age: age,
            last_error: None,
            last_failover: None,
        }
    }

    #[test]
    fn only_visible_changes_are_published() {
        let mut p = Publisher::default();
        assert!(p.diff(st(State::Protected, 1, Some(0.1)), None).is_some());
        // Only the age moved: nothing to say.
        assert!(p.diff(st(State::Protected, 1, Some(1.5)), None).is_none());
        // A checkpoint is a change.
        let c = p.diff(st(State::Protected, 2, Some(0.0)), None).unwrap();
        assert_eq!(c.status.checkpoints, 2);
        // A transition is always published, even back to the same snapshot.
        let t = Transition {
            from: State::Protected,
            to: State::Protected,
            reason: "x".into(),
        };
        assert!(p
            .diff(st(State::Protected, 2, Some(0.0)), Some(t))
            .is_some());
    }

    #[test]
    fn publishing_without_a_listener_is_harmless() {
        let o = Observer::none();
        o.publish(Change {
            status: st(State::Degraded, 0, None),
            at: Instant::now(),
            transition: None,
        });
    }
}
