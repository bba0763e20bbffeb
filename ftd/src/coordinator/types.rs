//! The coordinator's vocabulary: states, events, steps and actions.

use serde::{Deserialize, Serialize};

/// Where a protected domain stands, as seen from one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum State {
    /// The domain runs here, alone, and protection is not requested.
    Unprotected,
    /// Primary: the peer is creating the secondary.
    Preparing,
    /// Primary: full disk copy to the secondary in progress; the guest runs.
    Syncing,
    /// Primary: wiring replication and the network proxy, migrating into COLO.
    Starting,
    /// Primary in COLO with a live secondary; checkpoints flow.
    Protected,
    /// The domain runs here alone although protection is requested (the secondary
    /// or the old primary was lost); re-protection happens when a peer is back.
    Degraded,
    /// Primary: planned hand-over to the secondary in progress.
    SwitchingOver,
    /// Primary: tearing protection down on request.
    Disabling,
    /// The last protection attempt failed; the domain runs here alone, unharmed.
    Failed,
    /// The domain is not running here; the peer runs it (or nobody does).
    Standby,
    /// Secondary: being created here, waiting for the primary's state.
    SecondaryPreparing,
    /// Secondary in COLO.
    Secondary,
    /// Secondary: the primary is gone or handed over; becoming the primary.
    TakingOver,
    /// The domain is shut off on this host (by its guest or by the user).
    Stopped,
}

impl State {
    pub const ALL: [State; 14] = [
        State::Unprotected,
        State::Preparing,
        State::Syncing,
        State::Starting,
        State::Protected,
        State::Degraded,
        State::SwitchingOver,
        State::Disabling,
        State::Failed,
        State::Standby,
        State::SecondaryPreparing,
        State::Secondary,
        State::TakingOver,
        State::Stopped,
    ];

    /// Is the guest running on this host as the primary (the copy clients see)?
    pub fn runs_primary_here(self) -> bool {
        matches!(
            self,
            State::Unprotected
                | State::Preparing
                | State::Syncing
                | State::Starting
                | State::Protected
                | State::Degraded
                | State::SwitchingOver
                | State::Disabling
                | State::Failed
        )
    }

    /// The state's name in the API and the journal (stable strings, listed in
    /// [`ftd_proxy::state`]).
    pub fn name(self) -> &'static str {
        use ftd_proxy::state;
        match self {
            State::Unprotected => state::UNPROTECTED,
            State::Preparing => state::PREPARING,
            State::Syncing => state::SYNCING,
            State::Starting => state::STARTING,
            State::Protected => state::PROTECTED,
            State::Degraded => state::DEGRADED,
            State::SwitchingOver => state::SWITCHING_OVER,
            State::Disabling => state::DISABLING,
            State::Failed => state::FAILED,
            State::Standby => state::STANDBY,
            State::SecondaryPreparing => state::SECONDARY_PREPARING,
            State::Secondary => state::SECONDARY,
            State::TakingOver => state::TAKING_OVER,
            State::Stopped => state::STOPPED,
        }
    }

    /// This host's part in the pair: `primary`, `secondary` or `none` (the API's
    /// and the journal's ROLE).
    pub fn role(self) -> &'static str {
        if self.runs_primary_here() {
            "primary"
        } else if self.holds_secondary() {
            "secondary"
        } else {
            "none"
        }
    }

    /// Does this host hold (or build) the secondary copy?
    pub fn holds_secondary(self) -> bool {
        matches!(
            self,
            State::SecondaryPreparing | State::Secondary | State::TakingOver
        )
    }
}

/// A unit of work the domain's task executes (a QMP plan and/or libvirt calls),
/// answered by [`Event::StepDone`] or [`Event::StepFailed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Step {
    /// Primary: copy the whole disk into the secondary's NBD export, until in sync.
    Sync,
    /// Primary: pause, switch the mirror for replication, add the network proxy,
    /// enable `x-colo` and migrate; done when both sides report COLO.
    StartColo,
    /// Primary: leave COLO and run alone (remove replication child and proxy,
    /// `x-colo-lost-heartbeat` when COLO still runs).
    LeaveColo,
    /// Primary: undo whatever a failed protection attempt added; resume the guest.
    Undo,
    /// Primary, planned switch-over: pause the guest so it emits nothing more.
    StopPrimary,
    /// Primary, planned switch-over: the secondary took over; destroy this copy.
    DestroyPrimary,
    /// Secondary: generate and start the secondary domain, export its disk.
    CreateSecondary,
    /// Secondary: destroy the secondary domain and remove its overlays.
    DestroySecondary,
    /// Secondary: fail over (`x-colo-lost-heartbeat`, remove proxy and NBD export).
    TakeOver,
}

impl Step {
    /// A clean-up step may finish in any state and is never abandoned; a
    /// progress step serves one attempt, and is abandoned with it.
    pub fn is_cleanup(self) -> bool {
        matches!(
            self,
            Step::LeaveColo | Step::Undo | Step::DestroySecondary | Step::DestroyPrimary
        )
    }
}

/// Messages between the two hosts' coordinators (carried by the peer link).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMsg {
    /// Primary -> peer: create the secondary for this domain.
    HostSecondary,
    /// Peer -> primary: the secondary is up and waiting for the primary's state.
    SecondaryReady,
    /// Peer -> primary: the secondary could not be created or died.
    SecondaryFailed(String),
    /// Primary -> secondary: COLO is running; you are the secondary now.
    PrimaryProtected,
    /// Primary -> secondary: drop the secondary (protection ends).
    ReleaseSecondary,
    /// Primary -> secondary: planned switch-over, take over now.
    TakeOver,
    /// Secondary -> old primary: takeover done, this host runs the domain now.
    TookOver,
    /// A host that just gave the domain up (planned switch-over) is ready to host
    /// the secondary.
    StandingBy,
    /// Secondary -> primary: COLO ended here while the primary's ftd answers;
    /// check your copy now (its QEMU may have died). Changes no state: the
    /// primary's domain task looks at its domain at once.
    ColoEnded,
}

/// What happens to a protected domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// User: protect this domain.
    Enable,
    /// User: stop protecting it (the primary keeps running).
    Disable,
    /// User: planned failover to the secondary.
    SwitchOver,
    /// Peer link: heartbeats from the peer resumed.
    PeerUp,
    /// Peer link: no heartbeat within the detection time.
    PeerLost,
    /// A message from the peer's coordinator.
    Peer(PeerMsg),
    /// A step finished.
    StepDone(Step),
    /// A step failed; the message names the command and the cause.
    StepFailed(Step, String),
    /// QMP: a checkpoint completed.
    Checkpoint,
    /// QMP: QEMU left COLO on its own (`COLO_EXIT`), with its reason.
    ColoExited(String),
    /// libvirt: the domain started on this host.
    DomainStarted,
    /// libvirt: the domain stopped on this host (shutdown, destroy, crash).
    DomainStopped,
    /// QMP: a write of the replicated disk failed on this side (on the primary:
    /// into the secondary's copy over NBD; on the secondary: into its own images,
    /// e.g. a full overlay file system). The message says what and what to do.
    DiskFailed(String),
}

/// [`Event`] without its data, for tables and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Enable,
    Disable,
    SwitchOver,
    PeerUp,
    PeerLost,
    Peer,
    StepDone,
    StepFailed,
    Checkpoint,
    ColoExited,
    DomainStarted,
    DomainStopped,
    DiskFailed,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Enable => EventKind::Enable,
            Event::Disable => EventKind::Disable,
            Event::SwitchOver => EventKind::SwitchOver,
            Event::PeerUp => EventKind::PeerUp,
            Event::PeerLost => EventKind::PeerLost,
            Event::Peer(_) => EventKind::Peer,
            Event::StepDone(_) => EventKind::StepDone,
            Event::StepFailed(..) => EventKind::StepFailed,
            Event::Checkpoint => EventKind::Checkpoint,
            Event::ColoExited(_) => EventKind::ColoExited,
            Event::DomainStarted => EventKind::DomainStarted,
            Event::DomainStopped => EventKind::DomainStopped,
            Event::DiskFailed(_) => EventKind::DiskFailed,
        }
    }
}

/// What the domain's task must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Execute a step and report its outcome as an event.
    Run(Step),
    /// Send a message to the peer's coordinator.
    Send(PeerMsg),
}
