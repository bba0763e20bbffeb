//! The checkpoint coordinator: one pure, synchronous state machine per protected
//! domain on each host. It does no I/O: [`Coordinator::on`] takes an [`Event`] and
//! returns the [`Action`]s to execute, or an [`InvalidTransition`] that names the
//! state and event. The domain's task executes the actions (QMP plans, libvirt
//! calls, peer messages) and feeds their outcomes back as events.
//!
//! ## The life of a protected domain
//!
//! On the host running the domain (the *primary*):
//!
//! ```text
//! Unprotected --Enable--> Preparing --SecondaryReady--> Syncing --StepDone(Sync)-->
//!   Starting --StepDone(StartColo)--> Protected
//! Protected --PeerLost | SecondaryFailed | ColoExited--> Degraded   (runs LeaveColo)
//! Degraded --PeerUp (auto re-protect) | Enable--> Preparing ...
//! Protected --Disable--> Disabling --StepDone(LeaveColo)--> Unprotected
//! Protected --SwitchOver--> SwitchingOver: StopPrimary, then TakeOver to the peer,
//!   then on PeerTookOver DestroyPrimary --> Standby
//! Protected --DomainStopped (this copy died)--> Stopped, sends StandingBy: the
//!   secondary takes over and protects onto this host
//! any step failing while protecting --> Failed (runs Undo; the primary keeps running)
//! Failed --Retry (a timer, backing off; see `retry.rs`) | PeerUp | Enable--> Preparing ...
//! ```
//!
//! On the peer (the *secondary*):
//!
//! ```text
//! Standby --HostSecondary--> SecondaryPreparing --StepDone(CreateSecondary)-->
//!   (sends SecondaryReady) --PrimaryProtected--> Secondary
//! Secondary --PeerLost | TakeOver | StandingBy | ColoExited (peer lost)--> TakingOver --StepDone(TakeOver)-->
//!   Degraded (this host is now the primary, alone; re-protects when it can)
//! Secondary --ReleaseSecondary--> Standby (runs DestroySecondary)
//! Secondary --ColoExited (peer up)--> Secondary: the primary's ftd says what follows
//! ```
//!
//! With a partition arbiter configured, `PeerLost` in `Protected` or `Secondary`
//! asks the arbiter instead (`Arbitrating`, `SecondaryArbitrating`, `Fenced`): see
//! `arbitration.rs`. With the witness as the arbiter, every step that lets a copy
//! serve alone (leaving COLO, taking over) waits for a won claim on the domain's
//! record first, whatever caused it: see `golive.rs`.
//!
//! When only the peer's *ftd* is gone (its host answers, see [`crate::peer`]),
//! `PeerDaemonLost` leaves a running pair alone (`Protected`, `Secondary`: QEMU
//! checkpoints without ftd); a later `PeerLost` is the host's loss as above.
//!
//! A restarted ftd re-attaches (nothing is run in QEMU but reading it):
//!
//! ```text
//! Reattaching --Found(ColoPrimary)--> Protected    --CheckPair--> peer: PairConfirmed
//! Reattaching --Found(ColoSecondary)--> Secondary  --CheckPair--> peer: PairConfirmed
//! Reattaching --Found(Plain)--> Unprotected, protected if wanted
//! Reattaching --Found(Leftovers)--> Degraded (runs Undo), re-protects
//! Reattaching --Found(StaleSecondary)--> Standby (runs DestroySecondary)
//! Protected --PairDenied(peer runs it)--> Standby (runs DestroyPrimary)
//! Protected --PairDenied(no secondary)--> Degraded (runs LeaveColo), re-protects
//! Secondary --PairDenied--> Standby (runs DestroySecondary)
//! ```

mod alone;
mod arbitration;
mod disk;
mod golive;
mod machine;
mod primary;
mod protecting;
mod reattach;
mod retry;
mod rules;
mod secondary;
mod types;

#[cfg(test)]
mod tests;

pub use golive::WITNESS_UNREACHABLE;
pub use machine::{Coordinator, InvalidTransition, Settings};
pub use types::{Action, Event, EventKind, Found, PeerMsg, State, Step, Verdict};
