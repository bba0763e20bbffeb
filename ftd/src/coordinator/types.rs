//! The coordinator's vocabulary: states, events, steps and actions.
//!
//! The lists of variants (`State::ALL`, `Verdict::ALL`, `Step::VARIANTS`) and
//! [`EventKind`] are derived (`strum`), so a new variant is in them at once.

use serde::{Deserialize, Serialize};
use strum::{EnumCount, VariantArray};

/// `N` variants as an array, in declaration order (`VariantArray::VARIANTS` is
/// a slice; the tables iterate arrays by value).
const fn all<T: Copy, const N: usize>(variants: &[T]) -> [T; N] {
    assert!(variants.len() == N);
    let mut out = [variants[0]; N];
    let mut i = 0;
    while i < N {
        out[i] = variants[i];
        i += 1;
    }
    out
}

/// Where a protected domain stands, as seen from one host.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, EnumCount, VariantArray,
)]
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
    /// Primary: the peer is unreachable; the arbiter decides which host keeps the
    /// domain. COLO stays in place (it holds the guest's output) and the guest is
    /// paused as soon as the arbiter says this host lost quorum.
    Arbitrating,
    /// Secondary: the primary is unreachable; the arbiter decides whether this host
    /// takes over. It never does without the arbiter's word.
    SecondaryArbitrating,
    /// This host lost a partition: its copy was stopped (fenced) because the peer
    /// keeps the domain; the peer makes it its secondary again when the link is back.
    Fenced,
    /// ftd (re)started and found the domain running here and marked (or holding
    /// a secondary copy): it reads QEMU's state before deciding anything, and
    /// neither pauses nor changes the guest meanwhile ([`Found`] says what it saw).
    Reattaching,
}

impl State {
    /// Every state, in declaration order.
    pub const ALL: [State; State::COUNT] = all(State::VARIANTS);

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
                | State::Arbitrating
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
            State::Arbitrating => state::ARBITRATING,
            State::SecondaryArbitrating => state::SECONDARY_ARBITRATING,
            State::Fenced => state::FENCED,
            State::Reattaching => state::REATTACHING,
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

    /// The COLO mode (QAPI `COLOMode`) this host's QEMU has in this state, as
    /// `COLO_EXIT` reports it: an exit in the other mode is a previous copy's.
    pub fn colo_mode_here(self) -> &'static str {
        if self.holds_secondary() {
            "secondary"
        } else {
            "primary"
        }
    }

    /// Does this host hold (or build) the secondary copy?
    pub fn holds_secondary(self) -> bool {
        matches!(
            self,
            State::SecondaryPreparing
                | State::Secondary
                | State::TakingOver
                | State::SecondaryArbitrating
        )
    }
}

/// A unit of work the domain's task executes (a QMP plan and/or libvirt calls),
/// answered by [`Event::StepDone`] or [`Event::StepFailed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, VariantArray)]
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
    /// Primary, the arbiter said this host lost quorum: cut the guest off the
    /// network at the host (its NICs' host devices down), so that nothing it emits
    /// reaches anyone; reversible, unlike the fence that may follow.
    Freeze,
    /// Primary: reconnect a guest cut off by [`Step::Freeze`].
    Thaw,
    /// Re-attach: read QEMU's state of a domain found running at start-up
    /// (COLO mode, the objects the plans add). Answered by [`Event::Found`], not
    /// by `StepDone`; changes nothing in QEMU.
    Inspect,
}

impl Step {
    /// A clean-up step may finish in any state and is never abandoned; a
    /// progress step serves one attempt, and is abandoned with it.
    pub fn is_cleanup(self) -> bool {
        matches!(
            self,
            Step::LeaveColo
                | Step::Undo
                | Step::DestroySecondary
                | Step::DestroyPrimary
                | Step::Freeze
                | Step::Thaw
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
    /// A host whose ftd restarted and re-attached to a running COLO copy of the
    /// domain: "I hold the primary (`primary`) or the secondary; confirm that you
    /// hold the other half". Answered by `PairConfirmed` or `PairDenied`.
    CheckPair { primary: bool },
    /// Answer to `CheckPair`: this host holds the other half; COLO goes on.
    PairConfirmed,
    /// Answer to `CheckPair`: this host does not hold the other half. `runs` says
    /// whether it runs the domain as the primary (then the asker's copy must go),
    /// `why` what it holds instead.
    PairDenied { runs: bool, why: String },
    /// Secondary -> primary: COLO ended here while the primary's ftd answers;
    /// check your copy now (its QEMU may have died). Changes no state: the
    /// primary's domain task looks at its domain at once.
    ColoEnded,
}

/// The arbiter's answer about a lost peer (`crate::arbiter` decides it from the
/// cluster engine's membership and quorum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumCount, VariantArray)]
pub enum Verdict {
    /// This host is without quorum and the peer is not in its membership (or the
    /// cluster engine cannot be reached): stop serving now. Not final: the vote may
    /// still come to this side.
    Stop,
    /// This host has quorum and the peer left the membership (a secondary gets this
    /// only once the peer has certainly stopped): carry on alone.
    Proceed,
    /// Still without quorum after the decision time: the peer's side keeps the
    /// domain; fence this copy.
    Lost,
    /// The peer host stayed in this host's membership all along: only its ftd is
    /// unreachable; not a host loss, no failover.
    PeerAlive,
}

impl Verdict {
    /// Every verdict, in declaration order.
    pub const ALL: [Verdict; Verdict::COUNT] = all(Verdict::VARIANTS);
}

/// What happens to a protected domain. [`EventKind`] is the same without the
/// data (for tables and messages), derived with it.
#[derive(Debug, Clone, PartialEq, Eq, strum::EnumDiscriminants)]
#[strum_discriminants(
    name(EventKind),
    derive(Hash, VariantArray),
    doc = "[`Event`] without its data, for tables and messages (derived from it)."
)]
pub enum Event {
    /// User: protect this domain.
    Enable,
    /// User: stop protecting it (the primary keeps running).
    Disable,
    /// User: planned failover to the secondary.
    SwitchOver,
    /// Peer link: heartbeats from the peer resumed.
    PeerUp,
    /// Peer link: the peer's host is gone: no heartbeat within the detection
    /// time and its host does not answer either (host-loss handling).
    PeerLost,
    /// Peer link: the session with the peer's ftd ended, but the peer's host
    /// answers (its kernel refuses or accepts connections): its ftd died or hangs,
    /// while its QEMU may well run on. COLO goes on; a later `PeerLost` says the
    /// host stopped answering too.
    PeerDaemonLost,
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
    /// The arbiter's answer to [`Action::Arbitrate`].
    Verdict(Verdict),
    /// Re-attach: what [`Step::Inspect`] found in QEMU.
    Found(Found),
    /// QMP: a write of the replicated disk failed on this side (on the primary:
    /// into the secondary's copy over NBD; on the secondary: into its own images,
    /// e.g. a full overlay file system). The message says what and what to do.
    DiskFailed(String),
    /// The timer asked for by [`Action::RetryIn`] for failed attempt `n` fired.
    Retry(u32),
}

/// What ftd found in QEMU for a domain running here when it (re)started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// This host's copy is the COLO primary (`query-colo-status`: primary).
    ColoPrimary,
    /// This host's copy is the COLO secondary.
    ColoSecondary,
    /// The domain runs here with no trace of COLO: nothing to re-attach to.
    Plain,
    /// The domain runs here out of COLO, with some of the primary's COLO
    /// objects left (the reason names them): they must be removed.
    Leftovers(String),
    /// A secondary copy that is not in COLO (it still waits for the primary's
    /// state, or COLO ended): it can never become a usable copy.
    StaleSecondary(String),
    /// QEMU could not be asked (the reason says why).
    Unreadable(String),
}

impl Event {
    pub fn kind(&self) -> EventKind {
        EventKind::from(self)
    }
}

/// What the domain's task must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Execute a step and report its outcome as an event.
    Run(Step),
    /// Send a message to the peer's coordinator.
    Send(PeerMsg),
    /// Feed [`Event::Retry`]`(attempt)` back after `after` (a failed protection
    /// attempt is tried again; see `retry.rs`). A later request replaces it.
    RetryIn {
        after: std::time::Duration,
        attempt: u32,
    },
    /// The peer is lost: ask the arbiter which side keeps the domain; its answers
    /// come back as [`Event::Verdict`] while the state waits for them.
    Arbitrate,
}
