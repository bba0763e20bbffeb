//! The primary running alone although it may be protected: `Degraded` (the
//! secondary or the old primary was lost; it re-protects when a peer is back,
//! with automatic re-protection on) and `Failed` (the last protection attempt
//! failed; it is tried again by the retry timer, see `retry.rs`, or when the
//! peer is back). Both end in `Unprotected` on `Disable`.

use super::machine::{Coordinator, Outcome};
use super::rules::{ALREADY_RUNS, NOT_REATTACHING, NO_COLO};
use super::types::{Event, PeerMsg, State};

impl Coordinator {
    pub(super) fn on_degraded(&mut self, ev: Event) -> Outcome {
        self.alone(ev, "there is no secondary to switch over to", false)
    }

    pub(super) fn on_failed(&mut self, ev: Event) -> Outcome {
        self.alone(
            ev,
            "the domain is not protected (the last attempt failed)",
            true,
        )
    }

    /// `Degraded` and `Failed` decide alike but for two events: why a
    /// `SwitchOver` is refused (`no_switch_over`), and whether the retry timer
    /// tries again (`retries`: only `Failed` asked for one; in `Degraded` a
    /// timer is one of an attempt left behind).
    fn alone(&mut self, ev: Event, no_switch_over: &'static str, retries: bool) -> Outcome {
        use Event as E;
        use PeerMsg as M;
        match ev {
            E::Enable => {
                self.wanted = true;
                self.attempts = 0;
                self.protect()
            }
            E::Disable => {
                self.wanted = false;
                self.attempts = 0;
                self.go(State::Unprotected, Vec::new())
            }
            E::SwitchOver => self.invalid(&ev, no_switch_over),
            E::PeerUp => self.maybe_reprotect(),
            E::PeerLost => self.stay(),
            E::PeerDaemonLost => self.daemon_lost_as_host_lost(),
            E::Peer(M::StandingBy) => self.maybe_reprotect(),
            // The secondary's own account of its failure, after this side already
            // left COLO (its QEMU went first): keep the cause.
            E::Peer(M::SecondaryFailed(e)) => {
                self.last_error = Some(format!("the secondary failed: {e}"));
                self.stay()
            }
            E::Peer(M::SecondaryReady) => self.stay(),
            ev @ E::Peer(
                M::HostSecondary
                | M::PrimaryProtected
                | M::ReleaseSecondary
                | M::TakeOver
                | M::TookOver,
            ) => self.invalid(&ev, "unexpected message from the peer"),
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
            // No replication runs: COLO was left.
            E::DiskFailed(_) => self.stay(),
            E::Retry(n) if retries => self.retry(n),
            E::Retry(_) => self.stay(),
        }
    }
}
