//! The coordinator itself: its data, its accessors, [`Coordinator::on`] (which
//! rolls back on an [`InvalidTransition`]) and the transition function's entry,
//! `step`: one fact is recorded for every event (is the peer reachable?), then
//! the current state's handler decides. The handlers live by side and phase:
//! `protecting.rs` (`Unprotected` to `Starting`), `primary.rs` (`Protected`,
//! `SwitchingOver`, `Disabling`), `alone.rs` (`Degraded`, `Failed`),
//! `secondary.rs`, `arbitration.rs` and `reattach.rs`; the rules they share are
//! in `rules.rs`, `disk.rs` and `retry.rs`. The table test in `tests.rs` and the
//! generated `docs/transitions.md` pin every (state, event) pair down.
//!
//! Two rules keep late events harmless: a *cleanup* step (`LeaveColo`, `Undo`,
//! `DestroySecondary`, `DestroyPrimary`, `Freeze`, `Thaw`) may finish in any
//! state, and a *progress* step (`Sync`, `StartColo`, `CreateSecondary`,
//! `TakeOver`, `StopPrimary`) that finishes after its attempt was abandoned
//! (`Failed`, `Disabling`, `Stopped`, `Degraded`, `Standby`, `Unprotected`,
//! `Fenced`) is ignored. A progress step finishing anywhere else is an
//! [`InvalidTransition`]: nothing could have started it.

use super::golive::GoLive;
use super::types::{Action, Event, EventKind, PeerMsg, State, Step};

/// Per-domain settings the coordinator needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Re-protect automatically when a peer is back after a failover.
    pub auto_reprotect: bool,
    /// A partition arbiter is configured: a lost peer is arbitrated (see
    /// `arbitration.rs`) instead of being taken for dead.
    pub arbiter: bool,
    /// The arbiter is the witness: every go-live is claimed on the domain's
    /// record first (see `golive.rs`), a lost peer included.
    pub witness: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            auto_reprotect: true,
            arbiter: false,
            witness: false,
        }
    }
}

pub(super) const ALREADY_SETTING_UP: &str =
    "protection is already being set up (by an earlier request); follow it with Status";

/// An event that makes no sense in the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{event:?} is not possible while the domain is {}: {why}", state.name())]
pub struct InvalidTransition {
    pub state: State,
    pub event: EventKind,
    pub why: &'static str,
}

/// One protected domain's coordinator on one host.
#[derive(Debug, Clone)]
pub struct Coordinator {
    pub(super) state: State,
    pub(super) settings: Settings,
    pub(super) wanted: bool,
    /// Consecutive failed protection attempts (see `retry.rs`).
    pub(super) attempts: u32,
    pub(super) peer_up: bool,
    pub(super) planned: bool,
    /// The guest was paused by [`Step::Freeze`] while arbitrating.
    pub(super) frozen: bool,
    pub(super) checkpoints: u64,
    /// Checkpoints since the current COLO session started (0 until the first).
    pub(super) session_checkpoints: u64,
    pub(super) last_error: Option<String>,
    pub(super) last_failover: Option<String>,
    /// Re-attached to a running COLO copy, and the peer has not confirmed yet
    /// that it holds the other half (`CheckPair` goes out on every `PeerUp`).
    pub(super) unconfirmed: bool,
    /// What to do once the claim this host waits for is won (`golive.rs`).
    pub(super) go_live: Option<GoLive>,
}

pub(super) type Outcome = Result<Vec<Action>, InvalidTransition>;

pub(super) const NOT_HERE: &str =
    "the domain does not run as primary on this host; use the host that runs it";
pub(super) const ON_SECONDARY: &str =
    "this host holds the secondary; manage protection on the primary's host";
pub(super) const REATTACHING: &str =
    "ftd is reading the running domain's COLO state after its restart; try again in a moment";
/// `last_error` while the peer's ftd is gone but its host answers.
pub const PEER_DAEMON_LOST: &str = "the peer's ftd is not running (its host answers): COLO goes \
     on without it and its restart re-attaches; the loss of the peer's host is still detected";

impl Coordinator {
    /// A coordinator for a domain found in `state` (`Unprotected` if it runs
    /// here, `Standby` if not, `Stopped` if it is defined here and shut off).
    pub fn new(state: State, settings: Settings) -> Coordinator {
        Coordinator {
            state,
            settings,
            wanted: false,
            attempts: 0,
            peer_up: false,
            planned: false,
            frozen: false,
            checkpoints: 0,
            session_checkpoints: 0,
            last_error: None,
            last_failover: None,
            unconfirmed: false,
            go_live: None,
        }
    }

    /// What to do first for a coordinator created in `state`: a domain found
    /// running at start-up ([`State::Reattaching`]) is inspected before anything.
    pub fn start(&self) -> Vec<Action> {
        if self.state == State::Reattaching {
            vec![Action::Run(Step::Inspect)]
        } else {
            Vec::new()
        }
    }

    pub fn state(&self) -> State {
        self.state
    }
    /// Is protection requested for this domain?
    pub fn wanted(&self) -> bool {
        self.wanted
    }
    pub fn peer_up(&self) -> bool {
        self.peer_up
    }
    /// The state as users see it: the primary counts as `Protected` once the
    /// first checkpoint of the COLO session completed (the secondary then holds a
    /// checkpointed copy and checkpoints flow); until then it is still `Starting`,
    /// although failover is already armed on both sides.
    pub fn reported_state(&self) -> State {
        if self.state == State::Protected && self.session_checkpoints == 0 {
            State::Starting
        } else {
            self.state
        }
    }

    /// Checkpoints counted since this coordinator started.
    pub fn checkpoints(&self) -> u64 {
        self.checkpoints
    }
    /// Why the last protection attempt or clean-up failed.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
    /// Why the last failover happened.
    pub fn last_failover(&self) -> Option<&str> {
        self.last_failover.as_deref()
    }
    /// Re-attached, and the peer has not confirmed the pair yet.
    pub fn unconfirmed(&self) -> bool {
        self.unconfirmed
    }
    /// Is a lost peer arbitrated (by corosync or the witness) rather than taken
    /// for dead?
    pub(super) fn arbitrated(&self) -> bool {
        self.settings.arbiter || self.settings.witness
    }
    /// New settings, used from the next decision on.
    pub fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
    }

    /// Mark protection as requested (e.g. from the domain's XML annotation).
    pub fn set_wanted(&mut self, wanted: bool) {
        self.wanted = wanted;
    }

    /// Apply one event: the new state is kept, the actions are returned. On an
    /// invalid transition nothing changes.
    pub fn on(&mut self, ev: Event) -> Outcome {
        let before = self.clone();
        let out = self.step(ev);
        if out.is_err() {
            *self = before;
        }
        out
    }

    pub(super) fn invalid(&self, ev: &Event, why: &'static str) -> Outcome {
        Err(InvalidTransition {
            state: self.state,
            event: ev.kind(),
            why,
        })
    }

    pub(super) fn go(&mut self, s: State, actions: Vec<Action>) -> Outcome {
        if matches!(s, State::Starting | State::SecondaryPreparing) {
            self.session_checkpoints = 0;
        }
        if s != State::Arbitrating {
            self.frozen = false;
        }
        if !matches!(s, State::Arbitrating | State::SecondaryArbitrating) {
            self.go_live = None;
        }
        self.state = s;
        Ok(actions)
    }

    pub(super) fn stay(&self) -> Outcome {
        Ok(Vec::new())
    }

    pub(super) fn set_last_failover(&mut self, why: &str) {
        self.last_failover = Some(why.to_string());
    }

    pub(super) fn set_last_error(&mut self, why: &str) {
        self.last_error = Some(why.to_string());
    }

    pub(super) fn fail(&mut self, why: String, actions: Vec<Action>) -> Outcome {
        self.last_error = Some(why);
        self.go(State::Failed, actions)
    }

    /// Start (again) to protect, if the peer can be reached.
    pub(super) fn protect(&mut self) -> Outcome {
        if self.peer_up {
            self.last_error = None;
            self.go(State::Preparing, vec![Action::Send(PeerMsg::HostSecondary)])
        } else {
            self.fail(
                "the peer host is unreachable (no heartbeat); protection starts when it is back"
                    .into(),
                Vec::new(),
            )
        }
    }

    pub(super) fn maybe_reprotect(&mut self) -> Outcome {
        if self.wanted && self.settings.auto_reprotect && self.peer_up {
            self.protect()
        } else {
            self.stay()
        }
    }

    /// The transition function: record what every state records (`note_link`),
    /// then hand the event to the current state's handler. Each handler matches
    /// every [`Event`] (and every [`PeerMsg`]) without a wildcard, so that a new
    /// state or event does not compile until each state decided it; the rules
    /// several states share are functions the handlers call by name (`rules.rs`).
    pub(super) fn step(&mut self, ev: Event) -> Outcome {
        use State as S;
        self.note_link(&ev);
        match self.state {
            S::Unprotected => self.on_unprotected(ev),
            S::Preparing => self.on_preparing(ev),
            S::Syncing => self.on_syncing(ev),
            S::Starting => self.on_starting(ev),
            S::Protected => self.on_protected(ev),
            S::Degraded => self.on_degraded(ev),
            S::SwitchingOver => self.on_switching_over(ev),
            S::Disabling => self.on_disabling(ev),
            S::Failed => self.on_failed(ev),
            S::Standby => self.on_standby(ev),
            S::SecondaryPreparing => self.on_secondary_preparing(ev),
            S::Secondary => self.on_secondary(ev),
            S::TakingOver => self.on_taking_over(ev),
            S::Stopped => self.on_stopped(ev),
            S::Arbitrating => self.on_arbitrating(ev),
            S::SecondaryArbitrating => self.on_secondary_arbitrating(ev),
            S::Fenced => self.on_fenced(ev),
            S::Reattaching => self.on_reattaching(ev),
        }
    }

    /// The one fact every state records before deciding anything: whether the
    /// peer can be reached (and the note that its ftd is gone goes once its
    /// host is heard of again, either way).
    fn note_link(&mut self, ev: &Event) {
        use Event as E;
        match ev {
            E::PeerUp | E::PeerLost => {
                self.peer_up = matches!(ev, E::PeerUp);
                if self.last_error.as_deref() == Some(PEER_DAEMON_LOST) {
                    self.last_error = None;
                }
            }
            E::PeerDaemonLost => self.peer_up = false,
            E::Enable
            | E::Disable
            | E::SwitchOver
            | E::Peer(_)
            | E::StepDone(_)
            | E::StepFailed(..)
            | E::Checkpoint
            | E::ColoExited(_)
            | E::DomainStarted
            | E::DomainStopped
            | E::Verdict(_)
            | E::Found(_)
            | E::DiskFailed(_)
            | E::Retry(_) => {}
        }
    }

    /// Does the current state wait for this step's outcome? (A running progress
    /// step the state no longer waits for belongs to an abandoned attempt.)
    pub fn waits_for(&self, st: Step) -> bool {
        use State as S;
        matches!(
            (self.state, st),
            (S::Syncing, Step::Sync)
                | (S::Starting, Step::StartColo)
                | (S::SwitchingOver, Step::StopPrimary | Step::DestroyPrimary)
                | (S::Disabling, Step::LeaveColo | Step::Undo)
                | (S::SecondaryPreparing, Step::CreateSecondary)
                | (S::TakingOver, Step::TakeOver)
        )
    }
}
