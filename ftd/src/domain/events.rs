//! What a domain task makes of what it sees (pure, table-tested): QEMU monitor
//! events, COLO status polls and libvirt's view of the domain, turned into the
//! coordinator's events. The task keeps the few facts these rules need between
//! calls ([`Seen`]) and does the I/O; nothing here waits or reads a clock.
//!
//! - A COLO checkpoint pauses and resumes the guest (QEMU 7.2 has no checkpoint
//!   counter in QMP): a `STOP` then a `RESUME` in COLO is one checkpoint. The first
//!   `RESUME` after COLO starts ends the initial migration (its `STOP` came before
//!   this side was in COLO) and is not one.
//! - `COLO_EXIT` counts only in the COLO mode this host runs: a copy this host no
//!   longer runs can still speak (a fenced primary's QEMU, while libvirt destroys
//!   it, sees its COLO connections reset once the network heals, and says so after
//!   this host already took the secondary's part).
//! - A `query-colo-status` mode `none` means COLO ended only once this side was
//!   seen in COLO (before that, COLO has not started yet).
//! - libvirt's lifecycle events (`started`, `stopped`) are read as its state and
//!   go through the same rules as a poll of it.
//! - libvirt's "running" for a domain this host does not run is a start only if
//!   QEMU's monitor answers (a copy killed a moment ago stays "running" for libvirt
//!   until it has cleaned up, about 2 s); "shut off" for a copy this host runs is a
//!   stop, except during a planned switch-over (which destroys it on purpose).

use crate::coordinator::{Event, State};
use crate::libvirt::DomState;
use serde_json::Value;

/// What the task remembers between events; reset on every state change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    /// A `STOP` was seen in COLO: the next `RESUME` completes a checkpoint.
    pub in_checkpoint: bool,
    /// `query-colo-status` showed this side in COLO.
    pub colo: bool,
}

/// What one QEMU monitor event means.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum QmpMeaning {
    /// Nothing for the coordinator.
    Nothing,
    /// Feed this event to the coordinator.
    Feed(Event),
    /// A `COLO_EXIT` of a copy in another role (a previous QEMU): logged only.
    StaleColoExit {
        mode: String,
        expected: &'static str,
    },
    /// A disk error event: [`super::disk::failure`] says whether it matters.
    Disk,
    /// libvirt says the domain started (`Running`) or stopped (`ShutOff`) here:
    /// [`lifecycle`] says what that means, at once rather than at the next poll.
    Libvirt(DomState),
}

/// Read QMP event `event` with `data` in state `st`; `seen` is updated.
pub(crate) fn qmp_event(st: State, seen: &mut Seen, event: &str, data: &Value) -> QmpMeaning {
    let in_colo = matches!(st, State::Protected | State::Secondary);
    match event {
        "STOP" if in_colo => {
            seen.in_checkpoint = true;
            QmpMeaning::Nothing
        }
        "RESUME" if in_colo && seen.in_checkpoint => {
            seen.in_checkpoint = false;
            QmpMeaning::Feed(Event::Checkpoint)
        }
        "COLO_EXIT" => {
            let mode = data["mode"].as_str().unwrap_or("unknown");
            let expected = st.colo_mode_here();
            if mode != expected {
                return QmpMeaning::StaleColoExit {
                    mode: mode.to_string(),
                    expected,
                };
            }
            let reason = data["reason"].as_str().unwrap_or("unknown").to_string();
            match st {
                State::Protected
                | State::Secondary
                | State::Starting
                | State::SecondaryPreparing => QmpMeaning::Feed(Event::ColoExited(reason)),
                _ => QmpMeaning::Nothing,
            }
        }
        "QUORUM_REPORT_BAD" | "QUORUM_FAILURE" | "BLOCK_IO_ERROR" => QmpMeaning::Disk,
        crate::qmp_events::LIFECYCLE => match data["event"].as_str() {
            Some("started") => QmpMeaning::Libvirt(DomState::Running),
            Some("stopped") => QmpMeaning::Libvirt(DomState::ShutOff),
            _ => QmpMeaning::Nothing,
        },
        _ => QmpMeaning::Nothing,
    }
}

/// Read a `query-colo-status` reply (a fallback for a missed `COLO_EXIT`).
pub(crate) fn colo_status(seen: &mut Seen, reply: &Value) -> Option<Event> {
    if reply["mode"] != "none" {
        seen.colo = true;
        return None;
    }
    if !seen.colo {
        return None;
    }
    let reason = reply["reason"].as_str().unwrap_or("unknown").to_string();
    Some(Event::ColoExited(reason))
}

/// What libvirt's view of the domain (`None`: not defined here) says, in state
/// `st`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    Nothing,
    /// It runs although this host ran no copy: a start, if its monitor answers.
    StartedIfMonitorAnswers,
    /// The copy this host ran is gone.
    Stopped,
}

pub(crate) fn lifecycle(st: State, libvirt: Option<&DomState>) -> Lifecycle {
    let runs_here = st.runs_primary_here() || st.holds_secondary();
    match libvirt {
        Some(DomState::Running | DomState::Paused) if !runs_here => {
            Lifecycle::StartedIfMonitorAnswers
        }
        Some(DomState::ShutOff) | None if runs_here && st != State::SwitchingOver => {
            Lifecycle::Stopped
        }
        _ => Lifecycle::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use State as S;

    fn feed(st: State, seen: &mut Seen, ev: &str, data: Value) -> QmpMeaning {
        qmp_event(st, seen, ev, &data)
    }

    #[test]
    fn a_stop_then_a_resume_in_colo_is_one_checkpoint() {
        for st in [S::Protected, S::Secondary] {
            let mut seen = Seen::default();
            // The RESUME that ends the initial migration: no STOP seen in COLO.
            assert_eq!(
                feed(st, &mut seen, "RESUME", json!({})),
                QmpMeaning::Nothing
            );
            assert_eq!(feed(st, &mut seen, "STOP", json!({})), QmpMeaning::Nothing);
            assert!(seen.in_checkpoint);
            assert_eq!(
                feed(st, &mut seen, "RESUME", json!({})),
                QmpMeaning::Feed(Event::Checkpoint)
            );
            assert_eq!(
                feed(st, &mut seen, "RESUME", json!({})),
                QmpMeaning::Nothing
            );
        }
        // Out of COLO a pause is a pause.
        for st in [S::Starting, S::Unprotected, S::Degraded, S::TakingOver] {
            let mut seen = Seen::default();
            feed(st, &mut seen, "STOP", json!({}));
            assert_eq!(
                feed(st, &mut seen, "RESUME", json!({})),
                QmpMeaning::Nothing,
                "{st:?}"
            );
        }
    }

    #[test]
    fn colo_exit_counts_only_in_this_hosts_mode() {
        let exit = |mode: &str| json!({"mode": mode, "reason": "error"});
        let cases: &[(State, &str, Option<bool>)] = &[
            // (state, mode in the event, Some(fed) / None = stale)
            (S::Protected, "primary", Some(true)),
            (S::Starting, "primary", Some(true)),
            (S::Secondary, "secondary", Some(true)),
            (S::SecondaryPreparing, "secondary", Some(true)),
            // A fenced primary's old QEMU speaking after this host became secondary.
            (S::SecondaryPreparing, "primary", None),
            (S::Secondary, "primary", None),
            (S::Protected, "secondary", None),
            // In the right mode but nothing to end.
            (S::Degraded, "primary", Some(false)),
            (S::TakingOver, "secondary", Some(false)),
        ];
        for (st, mode, want) in cases {
            let m = feed(*st, &mut Seen::default(), "COLO_EXIT", exit(mode));
            match want {
                Some(true) => assert_eq!(
                    m,
                    QmpMeaning::Feed(Event::ColoExited("error".into())),
                    "{st:?} {mode}"
                ),
                Some(false) => assert_eq!(m, QmpMeaning::Nothing, "{st:?} {mode}"),
                None => assert!(
                    matches!(m, QmpMeaning::StaleColoExit { .. }),
                    "{st:?} {mode}: {m:?}"
                ),
            }
        }
    }

    #[test]
    fn disk_events_are_handed_on() {
        for ev in ["QUORUM_REPORT_BAD", "QUORUM_FAILURE", "BLOCK_IO_ERROR"] {
            assert_eq!(
                feed(S::Protected, &mut Seen::default(), ev, json!({})),
                QmpMeaning::Disk
            );
        }
        assert_eq!(
            feed(S::Protected, &mut Seen::default(), "SHUTDOWN", json!({})),
            QmpMeaning::Nothing
        );
    }

    #[test]
    fn libvirts_lifecycle_events_are_read_as_its_state() {
        let lc = |e: &str| json!({"event": e, "detail": 0});
        let ev = crate::qmp_events::LIFECYCLE;
        assert_eq!(
            feed(S::Standby, &mut Seen::default(), ev, lc("started")),
            QmpMeaning::Libvirt(DomState::Running)
        );
        assert_eq!(
            feed(S::Protected, &mut Seen::default(), ev, lc("stopped")),
            QmpMeaning::Libvirt(DomState::ShutOff)
        );
        for other in ["suspended", "resumed", "defined", "shutdown"] {
            assert_eq!(
                feed(S::Protected, &mut Seen::default(), ev, lc(other)),
                QmpMeaning::Nothing,
                "{other}"
            );
        }
    }

    #[test]
    fn mode_none_is_an_exit_only_after_colo_was_seen() {
        let mut seen = Seen::default();
        let none = json!({"mode": "none", "reason": "request"});
        assert_eq!(colo_status(&mut seen, &none), None, "COLO not started yet");
        assert_eq!(colo_status(&mut seen, &json!({"mode": "primary"})), None);
        assert!(seen.colo);
        assert_eq!(
            colo_status(&mut seen, &none),
            Some(Event::ColoExited("request".into()))
        );
    }

    #[test]
    fn libvirts_view_of_the_domain() {
        use Lifecycle as L;
        let run = Some(&DomState::Running);
        let off = Some(&DomState::ShutOff);
        let cases: &[(State, Option<&DomState>, L)] = &[
            (S::Standby, run, L::StartedIfMonitorAnswers),
            (
                S::Stopped,
                Some(&DomState::Paused),
                L::StartedIfMonitorAnswers,
            ),
            (S::Fenced, run, L::StartedIfMonitorAnswers),
            (S::Protected, run, L::Nothing),
            (S::Secondary, run, L::Nothing),
            (S::Protected, off, L::Stopped),
            (S::Unprotected, None, L::Stopped),
            (S::Secondary, off, L::Stopped),
            (S::TakingOver, None, L::Stopped),
            // A planned switch-over destroys this copy on purpose.
            (S::SwitchingOver, off, L::Nothing),
            (S::Standby, off, L::Nothing),
            (S::Stopped, None, L::Nothing),
            (
                S::Protected,
                Some(&DomState::Other("crashed".into())),
                L::Nothing,
            ),
        ];
        for (st, lv, want) in cases {
            assert_eq!(&lifecycle(*st, *lv), want, "{st:?} {lv:?}");
        }
    }
}
