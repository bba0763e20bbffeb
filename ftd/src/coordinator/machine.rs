//! The transition function. Every (state, event) pair is decided here, in one
//! exhaustive match; the table test in `tests.rs` pins each of them down.
//!
//! Two rules keep late events harmless: a *cleanup* step (`LeaveColo`, `Undo`,
//! `DestroySecondary`, `DestroyPrimary`) may finish in any state, and a *progress*
//! step (`Sync`, `StartColo`, `CreateSecondary`, `TakeOver`, `StopPrimary`) that
//! finishes after its attempt was abandoned (`Failed`, `Disabling`, `Stopped`,
//! `Degraded`, `Standby`, `Unprotected`) is ignored. A progress step finishing
//! anywhere else is an [`InvalidTransition`]: nothing could have started it.

use super::types::{Action, Event, EventKind, PeerMsg, State, Step};

/// Per-domain settings the coordinator needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Re-protect automatically when a peer is back after a failover.
    pub auto_reprotect: bool,
    /// A partition arbiter is configured: a lost peer is arbitrated (see
    /// `arbitration.rs`) instead of being taken for dead.
    pub arbiter: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            auto_reprotect: true,
            arbiter: false,
        }
    }
}

const ALREADY_SETTING_UP: &str =
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
    checkpoints: u64,
    /// Checkpoints since the current COLO session started (0 until the first).
    session_checkpoints: u64,
    pub(super) last_error: Option<String>,
    pub(super) last_failover: Option<String>,
    /// Re-attached to a running COLO copy, and the peer has not confirmed yet
    /// that it holds the other half (`CheckPair` goes out on every `PeerUp`).
    pub(super) unconfirmed: bool,
}

pub(super) type Outcome = Result<Vec<Action>, InvalidTransition>;

pub(super) const NOT_HERE: &str =
    "the domain does not run as primary on this host; use the host that runs it";
pub(super) const ON_SECONDARY: &str =
    "this host holds the secondary; manage protection on the primary's host";
const REATTACHING: &str =
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
    /// Checkpoints counted since this coordinator started.
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
    /// Mark protection as requested (e.g. from the domain's XML annotation).
    /// New settings, used from the next decision on.
    pub fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
    }

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

    fn step(&mut self, ev: Event) -> Outcome {
        use Event as E;
        use State as S;

        // Facts every state records.
        match &ev {
            E::PeerUp | E::PeerLost => {
                self.peer_up = matches!(ev, E::PeerUp);
                if self.last_error.as_deref() == Some(PEER_DAEMON_LOST) {
                    self.last_error = None;
                }
            }
            E::PeerDaemonLost => self.peer_up = false,
            _ => {}
        }
        // A retry timer, answered in every state (it acts only in `Failed`).
        if let E::Retry(n) = ev {
            return self.retry(n);
        }
        // The pair check after a re-attach, answered in every state.
        match ev {
            E::Peer(PeerMsg::CheckPair { primary }) => return self.check_pair(primary),
            E::Peer(PeerMsg::PairConfirmed) => {
                if matches!(self.state, S::Protected | S::Secondary) {
                    self.unconfirmed = false;
                }
                return self.stay();
            }
            E::Peer(PeerMsg::PairDenied { runs, why }) => {
                return if matches!(self.state, S::Protected | S::Secondary) {
                    self.pair_denied(runs, why)
                } else {
                    self.stay()
                };
            }
            _ => {}
        }
        // Advice, not a change: the domain task checks its copy at once.
        if let E::Peer(PeerMsg::ColoEnded) = ev {
            return self.stay();
        }
        if let E::Checkpoint = ev {
            return if matches!(
                self.state,
                S::Starting
                    | S::Protected
                    | S::SwitchingOver
                    | S::Disabling
                    | S::SecondaryPreparing
                    | S::Secondary
                    | S::TakingOver
                    | S::Arbitrating
                    | S::SecondaryArbitrating
            ) {
                self.checkpoints += 1;
                self.session_checkpoints += 1;
                self.stay()
            } else {
                self.invalid(&ev, "no COLO session runs here")
            };
        }
        // Clean-up steps may finish anywhere; only a few states wait for them.
        if let E::StepDone(st) | E::StepFailed(st, _) = &ev {
            let st = *st;
            if st.is_cleanup() && !self.waits_for(st) {
                if let E::StepFailed(_, e) = &ev {
                    self.last_error = Some(format!("{st:?}: {e}"));
                }
                return self.stay();
            }
            if !st.is_cleanup() && !self.waits_for(st) {
                return if matches!(
                    self.state,
                    S::Failed
                        | S::Disabling
                        | S::Stopped
                        | S::Degraded
                        | S::Standby
                        | S::Unprotected
                        | S::Fenced
                ) {
                    self.stay()
                } else {
                    self.invalid(&ev, "no such step was started in this state")
                };
            }
        }

        // The secondary's side (`secondary.rs`), then everything else.
        let ev = match self.secondary_side(ev) {
            Ok(out) => return out,
            Err(ev) => ev,
        };
        match (self.state, ev) {
            // ---------------------------------------------------------------- Unprotected
            (S::Unprotected, E::Enable) => {
                self.wanted = true;
                self.protect()
            }
            (S::Unprotected, E::Disable) => {
                self.wanted = false;
                self.stay()
            }
            (S::Unprotected, ev @ E::SwitchOver) => {
                self.invalid(&ev, "the domain is not protected")
            }
            (S::Unprotected, E::PeerUp) => self.maybe_reprotect(),
            (S::Unprotected, E::PeerLost) => self.stay(),
            (S::Unprotected, E::Peer(PeerMsg::StandingBy)) => self.maybe_reprotect(),
            (S::Unprotected, ev @ E::Peer(_)) => {
                self.invalid(&ev, "the domain runs here unprotected")
            }

            // ---------------------------------------------------------------- Preparing
            // A second Enable (another caller, the hook and the start-up scan at
            // once) is refused: exactly one request starts protection.
            (S::Preparing, ev @ E::Enable) => self.invalid(&ev, ALREADY_SETTING_UP),
            (S::Preparing | S::Syncing | S::Starting, E::Disable) => {
                self.wanted = false;
                self.go(
                    S::Disabling,
                    vec![
                        Action::Send(PeerMsg::ReleaseSecondary),
                        Action::Run(Step::Undo),
                    ],
                )
            }
            (S::Preparing | S::Syncing | S::Starting, ev @ E::SwitchOver) => {
                self.invalid(&ev, "protection is not established yet")
            }
            (S::Preparing | S::Syncing | S::Starting, E::PeerUp) => self.stay(),
            (S::Preparing | S::Syncing | S::Starting, E::PeerLost) => {
                let what = self.attempt_phase();
                self.fail(
                    format!("the peer host was lost while {what}"),
                    vec![Action::Run(Step::Undo)],
                )
            }
            (S::Preparing, E::Peer(PeerMsg::SecondaryReady)) => {
                self.go(S::Syncing, vec![Action::Run(Step::Sync)])
            }
            (S::Preparing | S::Syncing | S::Starting, E::Peer(PeerMsg::SecondaryFailed(e))) => self
                .fail_attempt(
                    format!("protection failed on the peer: {e}"),
                    vec![Action::Run(Step::Undo)],
                ),
            // The peer is (again) ready to host the secondary: it may have missed
            // the first request while its own copy of the domain was going away
            // (its QEMU died and the secondary here took over before it noticed).
            // Or the request was lost while its ftd was restarting: ask again.
            (S::Preparing, E::Peer(PeerMsg::StandingBy)) => {
                Ok(vec![Action::Send(PeerMsg::HostSecondary)])
            }
            (S::Syncing | S::Starting, E::Peer(PeerMsg::StandingBy)) => self.stay(),
            (S::Preparing | S::Syncing | S::Starting, ev @ E::Peer(_)) => {
                self.invalid(&ev, "unexpected message from the peer while protecting")
            }

            // ---------------------------------------------------------------- Syncing
            (S::Syncing | S::Starting, ev @ E::Enable) => self.invalid(&ev, ALREADY_SETTING_UP),
            (S::Syncing, E::StepDone(Step::Sync)) => {
                self.go(S::Starting, vec![Action::Run(Step::StartColo)])
            }
            (S::Syncing, E::StepFailed(Step::Sync, e)) => self.fail_attempt(
                format!("disk sync to the secondary failed: {e}"),
                vec![
                    Action::Run(Step::Undo),
                    Action::Send(PeerMsg::ReleaseSecondary),
                ],
            ),

            // ---------------------------------------------------------------- Starting
            (S::Starting, E::StepDone(Step::StartColo)) => {
                self.attempts = 0;
                self.go(S::Protected, vec![Action::Send(PeerMsg::PrimaryProtected)])
            }
            (S::Starting, E::StepFailed(Step::StartColo, e)) => self.fail_attempt(
                format!("starting COLO failed: {e}"),
                vec![
                    Action::Run(Step::Undo),
                    Action::Send(PeerMsg::ReleaseSecondary),
                ],
            ),
            (S::Starting, E::ColoExited(r)) => self.fail_attempt(
                format!("COLO exited while starting ({r})"),
                vec![
                    Action::Run(Step::Undo),
                    Action::Send(PeerMsg::ReleaseSecondary),
                ],
            ),

            // ---------------------------------------------------------------- Protected
            (S::Protected, ev @ E::Enable) => self.invalid(&ev, "the domain is already protected"),
            (S::Protected, E::Disable) => {
                self.wanted = false;
                self.go(
                    S::Disabling,
                    vec![
                        Action::Run(Step::LeaveColo),
                        Action::Send(PeerMsg::ReleaseSecondary),
                    ],
                )
            }
            (S::Protected, E::SwitchOver) => {
                self.planned = true;
                self.go(S::SwitchingOver, vec![Action::Run(Step::StopPrimary)])
            }
            (S::Protected, E::PeerUp) => Ok(self.check_if_unconfirmed(true)),
            (S::Protected, E::PeerLost) if self.settings.arbiter => self.arbitrate(),
            (S::Protected, E::PeerLost) => {
                self.last_failover = Some("secondary host lost (no heartbeat)".into());
                self.go(S::Degraded, vec![Action::Run(Step::LeaveColo)])
            }
            (S::Protected, E::Peer(PeerMsg::SecondaryFailed(e))) => {
                self.last_failover = Some(format!("secondary failed: {e}"));
                self.last_error = Some(format!("the secondary failed: {e}"));
                self.go(S::Degraded, vec![Action::Run(Step::LeaveColo)])
            }
            (S::Protected, E::ColoExited(r)) => {
                self.last_failover = Some(format!("COLO exited on the primary ({r})"));
                self.go(
                    S::Degraded,
                    vec![
                        Action::Run(Step::LeaveColo),
                        Action::Send(PeerMsg::ReleaseSecondary),
                    ],
                )
            }
            (S::Protected, E::Peer(PeerMsg::StandingBy)) => self.stay(),
            (S::Protected, ev @ E::Peer(_)) => {
                self.invalid(&ev, "unexpected message from the peer while protected")
            }

            // ---------------------------------------------------------------- Degraded
            (S::Degraded | S::Failed, E::Enable) => {
                self.wanted = true;
                self.attempts = 0;
                self.protect()
            }
            (S::Degraded | S::Failed, E::Disable) => {
                self.wanted = false;
                self.attempts = 0;
                self.go(S::Unprotected, Vec::new())
            }
            (S::Degraded, ev @ E::SwitchOver) => {
                self.invalid(&ev, "there is no secondary to switch over to")
            }
            (S::Degraded | S::Failed, E::PeerUp) => self.maybe_reprotect(),
            (S::Degraded | S::Failed, E::PeerLost) => self.stay(),
            (S::Degraded | S::Failed, E::Peer(PeerMsg::StandingBy)) => self.maybe_reprotect(),
            // The secondary's own account of its failure, after this side already
            // left COLO (its QEMU went first): keep the cause.
            (S::Degraded | S::Failed, E::Peer(PeerMsg::SecondaryFailed(e))) => {
                self.last_error = Some(format!("the secondary failed: {e}"));
                self.stay()
            }
            (S::Degraded | S::Failed, E::Peer(PeerMsg::SecondaryReady)) => self.stay(),
            (S::Degraded | S::Failed, ev @ E::Peer(_)) => {
                self.invalid(&ev, "unexpected message from the peer")
            }

            // ---------------------------------------------------------------- SwitchingOver
            (S::SwitchingOver, E::SwitchOver) => self.stay(),
            (S::SwitchingOver, ev @ E::Enable) => self.invalid(
                &ev,
                "a planned failover is under way; the domain stays protected",
            ),
            (S::SwitchingOver, ev @ E::Disable) => {
                self.invalid(&ev, "a switch-over is in progress")
            }
            (S::SwitchingOver, E::StepDone(Step::StopPrimary)) => {
                Ok(vec![Action::Send(PeerMsg::TakeOver)])
            }
            (S::SwitchingOver, E::StepFailed(Step::StopPrimary, e)) => {
                self.planned = false;
                self.last_error = Some(format!("switch-over: pausing the primary failed: {e}"));
                self.go(S::Protected, Vec::new())
            }
            (S::SwitchingOver, E::Peer(PeerMsg::TookOver)) => {
                Ok(vec![Action::Run(Step::DestroyPrimary)])
            }
            (S::SwitchingOver, E::StepDone(Step::DestroyPrimary)) => {
                self.planned = false;
                self.last_failover = Some("planned switch-over".into());
                self.go(S::Standby, vec![Action::Send(PeerMsg::StandingBy)])
            }
            (S::SwitchingOver, E::StepFailed(Step::DestroyPrimary, e)) => {
                self.planned = false;
                self.last_error = Some(format!(
                    "switch-over: destroying the old primary failed: {e}"
                ));
                self.go(S::Standby, Vec::new())
            }
            (S::SwitchingOver, E::PeerUp) => self.stay(),
            // The peer may already have taken over (TakeOver was sent): the guest
            // stays paused here until the peer is heard from again.
            (S::SwitchingOver, E::PeerLost) if self.settings.arbiter => self.stay(),
            (S::SwitchingOver, E::PeerLost) => {
                // Without an arbiter the safest guess is that the peer is dead: run on.
                self.planned = false;
                self.last_failover = Some("secondary host lost during a switch-over".into());
                self.go(S::Degraded, vec![Action::Run(Step::LeaveColo)])
            }
            (S::SwitchingOver, E::Peer(PeerMsg::SecondaryFailed(e))) => {
                self.planned = false;
                self.last_failover = Some(format!("secondary failed during a switch-over: {e}"));
                self.go(S::Degraded, vec![Action::Run(Step::LeaveColo)])
            }
            (S::SwitchingOver, ev @ E::Peer(_)) => {
                self.invalid(&ev, "unexpected message during a switch-over")
            }
            (S::SwitchingOver, E::ColoExited(_)) => self.stay(),

            // ---------------------------------------------------------------- Disabling
            (S::Disabling, ev @ E::Enable) => self.invalid(
                &ev,
                "protection is being disabled; enable it again afterwards",
            ),
            (S::Disabling, E::Disable) => self.stay(),
            (S::Disabling, ev @ E::SwitchOver) => self.invalid(&ev, "protection is being disabled"),
            (S::Disabling, E::StepDone(Step::LeaveColo | Step::Undo)) => {
                self.go(S::Unprotected, Vec::new())
            }
            (S::Disabling, E::StepFailed(st @ (Step::LeaveColo | Step::Undo), e)) => {
                self.last_error = Some(format!("disable: {st:?} failed: {e}"));
                self.go(S::Unprotected, Vec::new())
            }
            (S::Disabling, E::PeerUp | E::PeerLost | E::ColoExited(_)) => self.stay(),
            (
                S::Disabling,
                E::Peer(
                    PeerMsg::SecondaryFailed(_) | PeerMsg::SecondaryReady | PeerMsg::StandingBy,
                ),
            ) => self.stay(),
            (S::Disabling, ev @ E::Peer(_)) => {
                self.invalid(&ev, "unexpected message while disabling")
            }

            // ---------------------------------------------------------------- Failed
            (S::Failed, ev @ E::SwitchOver) => {
                self.invalid(&ev, "the domain is not protected (the last attempt failed)")
            }

            // ---------------------------------------------------------------- partitions
            (S::Arbitrating | S::SecondaryArbitrating | S::Fenced, ev) => self.partitioned(ev),
            // A verdict for an arbitration this state has left behind.
            (_, E::Verdict(_)) => self.stay(),

            // ---------------------------------------------------------------- Reattaching
            // Nothing is decided before QEMU was read: a request waits for that
            // (Enable is remembered), a peer message is dropped (the pair check
            // after `Found` reconciles both sides).
            (S::Reattaching, E::Enable) => {
                self.wanted = true;
                self.stay()
            }
            (S::Reattaching, ev @ (E::Disable | E::SwitchOver)) => self.invalid(&ev, REATTACHING),
            (
                S::Reattaching,
                E::PeerUp
                | E::PeerLost
                | E::PeerDaemonLost
                | E::Peer(_)
                | E::ColoExited(_)
                | E::DomainStarted,
            ) => self.stay(),
            (S::Reattaching, E::DomainStopped) => self.go(S::Stopped, Vec::new()),
            (S::Reattaching, E::Found(f)) => self.found(f),
            (_, ev @ E::Found(_)) => self.invalid(&ev, "nothing is being re-attached"),

            // ---------------------------------------------------------------- the peer's ftd
            // A running COLO pair goes on without the peer's ftd (QEMU needs no
            // ftd to checkpoint); its restart re-attaches.
            (S::Protected | S::Secondary, E::PeerDaemonLost) => {
                self.last_error = Some(PEER_DAEMON_LOST.into());
                self.stay()
            }
            // Whatever else the peer's ftd was in the middle of (a protection
            // attempt, a switch-over, preparing the secondary, ...) cannot finish
            // without it: there its loss counts as the peer's.
            (_, E::PeerDaemonLost) => self.step(E::PeerLost),

            // ---------------------------------------------------------------- disk replication
            (_, E::DiskFailed(e)) => self.disk_failed(e),

            // ---------------------------------------------------------------- COLO exits elsewhere
            (
                S::Unprotected
                | S::Preparing
                | S::Syncing
                | S::Degraded
                | S::Failed
                | S::Standby
                | S::Stopped,
                E::ColoExited(_),
            ) => self.stay(),

            // ---------------------------------------------------------------- libvirt lifecycle
            (
                S::Unprotected
                | S::Preparing
                | S::Syncing
                | S::Starting
                | S::Protected
                | S::Degraded
                | S::Disabling
                | S::Failed,
                E::DomainStopped,
            ) => {
                // Protected, the secondary is a full copy: it takes over (this host
                // stands by to host the next secondary). Before that, the secondary
                // is incomplete: release it.
                let acts = match self.state {
                    S::Protected => {
                        self.last_failover = Some(
                            "this host's copy stopped; the secondary on the peer takes over".into(),
                        );
                        vec![Action::Send(PeerMsg::StandingBy)]
                    }
                    S::Preparing | S::Syncing | S::Starting | S::Disabling => {
                        vec![Action::Send(PeerMsg::ReleaseSecondary)]
                    }
                    _ => Vec::new(),
                };
                self.go(S::Stopped, acts)
            }
            (S::SwitchingOver | S::Standby | S::Stopped | S::TakingOver, E::DomainStopped) => {
                if self.state == S::TakingOver {
                    self.planned = false;
                    self.go(S::Stopped, Vec::new())
                } else {
                    self.stay()
                }
            }
            (
                S::Unprotected
                | S::Preparing
                | S::Syncing
                | S::Starting
                | S::Protected
                | S::Degraded
                | S::SwitchingOver
                | S::Disabling
                | S::Failed,
                ev @ E::DomainStarted,
            ) => self.invalid(&ev, "the domain already runs here"),

            // Steps and checkpoints were decided above; what is left is impossible.
            (_, ev @ (E::StepDone(_) | E::StepFailed(..) | E::Checkpoint)) => {
                self.invalid(&ev, "no such step was started in this state")
            }
            (S::Stopped, ev @ E::SwitchOver) => self.invalid(&ev, "the domain is shut off"),
            // Answered before the transition table (see `retry.rs`).
            (_, E::Retry(n)) => self.retry(n),
            // What `secondary_side` gave back and no rule above takes (none
            // today: the table test pins every cell).
            (
                S::Standby | S::Stopped | S::SecondaryPreparing | S::Secondary | S::TakingOver,
                ev,
            ) => self.invalid(&ev, "not possible on the secondary's side"),
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

    fn attempt_phase(&self) -> &'static str {
        match self.state {
            State::Preparing => "it prepared the secondary",
            State::Syncing => "the disk was syncing",
            _ => "COLO was starting",
        }
    }
}
