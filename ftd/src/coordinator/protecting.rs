//! The primary's side until protection runs: `Unprotected` (the domain runs
//! here alone, protection not requested), then one protection attempt through
//! `Preparing` (the peer creates the secondary), `Syncing` (the full disk copy)
//! and `Starting` (replication, the proxy, migration into COLO). An attempt
//! that fails ends in `Failed` with `Undo` (see `retry.rs` for the retry), and
//! `Disable` ends it through `Disabling`.

use super::machine::{Coordinator, Outcome, ALREADY_SETTING_UP};
use super::rules::{ALREADY_RUNS, NOT_REATTACHING, NO_COLO};
use super::types::{Action, Event, PeerMsg, State, Step};

const NOT_ESTABLISHED: &str = "protection is not established yet";
const UNEXPECTED: &str = "unexpected message from the peer while protecting";

impl Coordinator {
    pub(super) fn on_unprotected(&mut self, ev: Event) -> Outcome {
        use Event as E;
        use PeerMsg as M;
        match ev {
            E::Enable => {
                self.wanted = true;
                self.protect()
            }
            E::Disable => {
                self.wanted = false;
                self.stay()
            }
            E::SwitchOver => self.invalid(&ev, "the domain is not protected"),
            E::PeerUp => self.maybe_reprotect(),
            E::PeerLost => self.stay(),
            E::PeerDaemonLost => self.daemon_lost_as_host_lost(),
            // The peer is ready to host a secondary (it handed the domain over,
            // or its copy died): protect again if wanted.
            E::Peer(M::StandingBy) => self.maybe_reprotect(),
            ev @ E::Peer(
                M::HostSecondary
                | M::SecondaryReady
                | M::SecondaryFailed(_)
                | M::PrimaryProtected
                | M::ReleaseSecondary
                | M::TakeOver
                | M::TookOver,
            ) => self.invalid(&ev, "the domain runs here unprotected"),
            E::Peer(M::CheckPair { primary }) => self.check_pair(primary),
            // A late answer: only a re-attached `Protected` or `Secondary` asks.
            E::Peer(M::PairConfirmed | M::PairDenied { .. }) => self.stay(),
            // Advice for the domain task, which checks its copy at once.
            E::Peer(M::ColoEnded) => self.stay(),
            E::StepDone(st) => self.step_after_abandon(st, None),
            E::StepFailed(st, e) => self.step_after_abandon(st, Some(e)),
            E::Checkpoint => self.invalid(&ev, NO_COLO),
            E::ColoExited(_) => self.stay(),
            E::DomainStarted => self.invalid(&ev, ALREADY_RUNS),
            E::DomainStopped => self.go(State::Stopped, Vec::new()),
            // A verdict for an arbitration this state has left behind.
            E::Verdict(_) => self.stay(),
            E::Found(_) => self.invalid(&ev, NOT_REATTACHING),
            E::DiskFailed(_) => self.stay(),
            // A timer for an attempt this state has left behind.
            E::Retry(_) => self.stay(),
        }
    }

    pub(super) fn on_preparing(&mut self, ev: Event) -> Outcome {
        use Event as E;
        use PeerMsg as M;
        match ev {
            // A second Enable (another caller, the hook and the start-up scan at
            // once) is refused: exactly one request starts protection.
            E::Enable => self.invalid(&ev, ALREADY_SETTING_UP),
            E::Disable => self.disable_attempt(),
            E::SwitchOver => self.invalid(&ev, NOT_ESTABLISHED),
            E::PeerUp => self.stay(),
            E::PeerLost => self.attempt_lost_peer("it prepared the secondary"),
            E::PeerDaemonLost => self.daemon_lost_as_host_lost(),
            E::Peer(M::SecondaryReady) => self.go(State::Syncing, vec![Action::Run(Step::Sync)]),
            E::Peer(M::SecondaryFailed(e)) => self.attempt_failed_on_peer(e),
            // The peer is (again) ready to host the secondary: it may have missed
            // the first request while its own copy of the domain was going away
            // (its QEMU died and the secondary here took over before it noticed).
            // Or the request was lost while its ftd was restarting: ask again.
            E::Peer(M::StandingBy) => Ok(vec![Action::Send(M::HostSecondary)]),
            ev @ E::Peer(
                M::HostSecondary
                | M::PrimaryProtected
                | M::ReleaseSecondary
                | M::TakeOver
                | M::TookOver,
            ) => self.invalid(&ev, UNEXPECTED),
            E::Peer(M::CheckPair { primary }) => self.check_pair(primary),
            E::Peer(M::PairConfirmed | M::PairDenied { .. }) => self.stay(),
            E::Peer(M::ColoEnded) => self.stay(),
            E::StepDone(st) => self.step_not_started(st, None),
            E::StepFailed(st, e) => self.step_not_started(st, Some(e)),
            E::Checkpoint => self.invalid(&ev, NO_COLO),
            E::ColoExited(_) => self.stay(),
            E::DomainStarted => self.invalid(&ev, ALREADY_RUNS),
            // The secondary is incomplete: release it.
            E::DomainStopped => self.attempt_domain_stopped(),
            E::Verdict(_) => self.stay(),
            E::Found(_) => self.invalid(&ev, NOT_REATTACHING),
            // Replication is not in place yet.
            E::DiskFailed(_) => self.stay(),
            E::Retry(_) => self.stay(),
        }
    }

    pub(super) fn on_syncing(&mut self, ev: Event) -> Outcome {
        use Event as E;
        use PeerMsg as M;
        match ev {
            E::Enable => self.invalid(&ev, ALREADY_SETTING_UP),
            E::Disable => self.disable_attempt(),
            E::SwitchOver => self.invalid(&ev, NOT_ESTABLISHED),
            E::PeerUp => self.stay(),
            E::PeerLost => self.attempt_lost_peer("the disk was syncing"),
            E::PeerDaemonLost => self.daemon_lost_as_host_lost(),
            E::Peer(M::SecondaryFailed(e)) => self.attempt_failed_on_peer(e),
            E::Peer(M::StandingBy) => self.stay(),
            ev @ E::Peer(
                M::HostSecondary
                | M::SecondaryReady
                | M::PrimaryProtected
                | M::ReleaseSecondary
                | M::TakeOver
                | M::TookOver,
            ) => self.invalid(&ev, UNEXPECTED),
            E::Peer(M::CheckPair { primary }) => self.check_pair(primary),
            E::Peer(M::PairConfirmed | M::PairDenied { .. }) => self.stay(),
            E::Peer(M::ColoEnded) => self.stay(),
            E::StepDone(Step::Sync) => self.go(State::Starting, vec![Action::Run(Step::StartColo)]),
            E::StepFailed(Step::Sync, e) => self.fail_attempt(
                format!("disk sync to the secondary failed: {e}"),
                vec![Action::Run(Step::Undo), Action::Send(M::ReleaseSecondary)],
            ),
            E::StepDone(st) => self.step_not_started(st, None),
            E::StepFailed(st, e) => self.step_not_started(st, Some(e)),
            E::Checkpoint => self.invalid(&ev, NO_COLO),
            E::ColoExited(_) => self.stay(),
            E::DomainStarted => self.invalid(&ev, ALREADY_RUNS),
            E::DomainStopped => self.attempt_domain_stopped(),
            E::Verdict(_) => self.stay(),
            E::Found(_) => self.invalid(&ev, NOT_REATTACHING),
            // Replication is not in place yet (the sync's own failure is
            // `StepFailed(Sync)`).
            E::DiskFailed(_) => self.stay(),
            E::Retry(_) => self.stay(),
        }
    }

    pub(super) fn on_starting(&mut self, ev: Event) -> Outcome {
        use Event as E;
        use PeerMsg as M;
        match ev {
            E::Enable => self.invalid(&ev, ALREADY_SETTING_UP),
            E::Disable => self.disable_attempt(),
            E::SwitchOver => self.invalid(&ev, NOT_ESTABLISHED),
            E::PeerUp => self.stay(),
            E::PeerLost => self.attempt_lost_peer("COLO was starting"),
            E::PeerDaemonLost => self.daemon_lost_as_host_lost(),
            E::Peer(M::SecondaryFailed(e)) => self.attempt_failed_on_peer(e),
            E::Peer(M::StandingBy) => self.stay(),
            ev @ E::Peer(
                M::HostSecondary
                | M::SecondaryReady
                | M::PrimaryProtected
                | M::ReleaseSecondary
                | M::TakeOver
                | M::TookOver,
            ) => self.invalid(&ev, UNEXPECTED),
            E::Peer(M::CheckPair { primary }) => self.check_pair(primary),
            E::Peer(M::PairConfirmed | M::PairDenied { .. }) => self.stay(),
            E::Peer(M::ColoEnded) => self.stay(),
            E::StepDone(Step::StartColo) => {
                self.attempts = 0;
                self.go(State::Protected, vec![Action::Send(M::PrimaryProtected)])
            }
            E::StepFailed(Step::StartColo, e) => self.fail_attempt(
                format!("starting COLO failed: {e}"),
                vec![Action::Run(Step::Undo), Action::Send(M::ReleaseSecondary)],
            ),
            E::StepDone(st) => self.step_not_started(st, None),
            E::StepFailed(st, e) => self.step_not_started(st, Some(e)),
            E::Checkpoint => self.checkpoint(),
            E::ColoExited(r) => self.fail_attempt(
                format!("COLO exited while starting ({r})"),
                vec![Action::Run(Step::Undo), Action::Send(M::ReleaseSecondary)],
            ),
            E::DomainStarted => self.invalid(&ev, ALREADY_RUNS),
            E::DomainStopped => self.attempt_domain_stopped(),
            E::Verdict(_) => self.stay(),
            E::Found(_) => self.invalid(&ev, NOT_REATTACHING),
            E::DiskFailed(e) => self.replication_failed_while_starting(e),
            E::Retry(_) => self.stay(),
        }
    }

    /// `Disable` during an attempt: release the secondary, undo what was added.
    fn disable_attempt(&mut self) -> Outcome {
        self.wanted = false;
        self.go(
            State::Disabling,
            vec![
                Action::Send(PeerMsg::ReleaseSecondary),
                Action::Run(Step::Undo),
            ],
        )
    }

    /// The peer's host was lost during an attempt (`while` what happened):
    /// undo; its return re-protects.
    fn attempt_lost_peer(&mut self, what: &str) -> Outcome {
        self.fail(
            format!("the peer host was lost while {what}"),
            vec![Action::Run(Step::Undo)],
        )
    }

    /// The peer could not create the secondary, or it died: undo, retry later.
    fn attempt_failed_on_peer(&mut self, e: String) -> Outcome {
        self.fail_attempt(
            format!("protection failed on the peer: {e}"),
            vec![Action::Run(Step::Undo)],
        )
    }

    /// This copy stopped during an attempt: the secondary is incomplete;
    /// release it.
    fn attempt_domain_stopped(&mut self) -> Outcome {
        self.go(
            State::Stopped,
            vec![Action::Send(PeerMsg::ReleaseSecondary)],
        )
    }
}
