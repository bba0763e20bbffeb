//! A write of the replicated disk failed (`Event::DiskFailed`): on the primary,
//! into the secondary's copy over NBD; on the secondary, into its own images
//! (e.g. a full overlay file system). Either way the secondary's copy is no longer
//! one to fail over to: it is dropped, the primary runs alone, and `last_error`
//! keeps the message (what failed and what to do). The arbitration states are
//! handled in `arbitration.rs` (where they normally arrive first).

use super::machine::{Coordinator, Outcome};
use super::types::{Action, Event, PeerMsg, State, Step};

impl Coordinator {
    pub(super) fn disk_failed(&mut self, e: String) -> Outcome {
        use State as S;
        match self.state {
            // The secondary's copy missed a write (the primary saw its NBD write
            // fail): it is no copy to fail over to. Release it first (its COLO
            // ends when this side leaves), then run alone.
            S::Protected => {
                self.set_last_failover(&format!("replication to the secondary failed: {e}"));
                self.set_last_error(&e);
                self.go(
                    S::Degraded,
                    vec![
                        Action::Send(PeerMsg::ReleaseSecondary),
                        Action::Run(Step::LeaveColo),
                    ],
                )
            }
            S::Starting => self.fail_attempt(
                format!("replication to the secondary failed: {e}"),
                vec![
                    Action::Send(PeerMsg::ReleaseSecondary),
                    Action::Run(Step::Undo),
                ],
            ),
            // This host cannot keep the secondary's copy: drop it, tell the primary.
            S::SecondaryPreparing | S::Secondary => {
                self.set_last_error(&e);
                self.go(
                    S::Standby,
                    vec![
                        Action::Run(Step::DestroySecondary),
                        Action::Send(PeerMsg::SecondaryFailed(e)),
                    ],
                )
            }
            S::Unprotected
            | S::Preparing
            | S::Syncing
            | S::Degraded
            | S::SwitchingOver
            | S::Disabling
            | S::Failed
            | S::Standby
            | S::TakingOver
            | S::Stopped
            | S::Reattaching => self.stay(),
            S::Arbitrating | S::SecondaryArbitrating | S::Fenced => {
                self.partitioned(Event::DiskFailed(e))
            }
        }
    }
}
