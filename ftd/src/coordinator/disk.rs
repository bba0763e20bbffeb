//! A write of the replicated disk failed (`Event::DiskFailed`): on the primary,
//! into the secondary's copy over NBD; on the secondary, into its own images
//! (e.g. a full overlay file system). Either way the secondary's copy is no longer
//! one to fail over to: it is dropped, the primary runs alone, and `last_error`
//! keeps the message (what failed and what to do). The arbitration states keep
//! the message and wait for the verdict (`arbitration.rs`); where no replication
//! runs, the handlers ignore it.

use super::golive::GoLive;
use super::machine::{Coordinator, Outcome};
use super::types::{Action, PeerMsg, Step};

impl Coordinator {
    /// `Protected`: the secondary's copy missed a write (the primary saw its NBD
    /// write fail): it is no copy to fail over to. Release it first (its COLO
    /// ends when this side leaves), then run alone.
    pub(super) fn replication_failed(&mut self, e: String) -> Outcome {
        self.go_live(GoLive::RunAlone {
            why: format!("replication to the secondary failed: {e}"),
            error: Some(e),
            acts: vec![
                Action::Send(PeerMsg::ReleaseSecondary),
                Action::Run(Step::LeaveColo),
            ],
            reprotect: false,
        })
    }

    /// `Starting`: the same, and the attempt fails (retried later).
    pub(super) fn replication_failed_while_starting(&mut self, e: String) -> Outcome {
        self.fail_attempt(
            format!("replication to the secondary failed: {e}"),
            vec![
                Action::Send(PeerMsg::ReleaseSecondary),
                Action::Run(Step::Undo),
            ],
        )
    }

    /// `SecondaryPreparing`, `Secondary`: this host cannot keep the secondary's
    /// copy: drop it, tell the primary.
    pub(super) fn secondary_disk_failed(&mut self, e: String) -> Outcome {
        self.set_last_error(&e);
        self.give_secondary_up(e)
    }
}
