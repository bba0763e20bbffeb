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

mod machine;
mod types;

#[cfg(test)]
mod tests;

pub use machine::{Coordinator, InvalidTransition, Settings};
pub use types::{Action, Event, EventKind, PeerMsg, State, Step};
