//! What the outside sees of a domain task: the commands it takes ([`DomainCmd`]),
//! the cheap handle that sends them ([`DomainHandle`]) and the errors a request can
//! end with ([`CommandError`]).
//!
//! Sending never waits: the channel is unbounded, so the daemon's router hands a
//! peer-link loss or a QEMU event to every domain at once whatever any one task is
//! busy with. Status is read from the last snapshot the task published (a `watch`),
//! so `Status` and `List` never wait on a task either.

use crate::colo::spec::SecondarySpec;
use crate::coordinator::{Event, State};
use crate::observe::Status;
use crate::qmp_events::QmpEvent;
use ftd_proxy::EnableOptions;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// Why a request could not be carried out (mapped to D-Bus errors by the API).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No such domain on this host.
    #[error("domain {0:?} is not defined on this host (see `virsh list --all`)")]
    NoSuchDomain(String),
    /// The request does not fit the domain's state.
    #[error("{0}")]
    Refused(String),
    /// A setting (option or annotation) is wrong; nothing changed.
    #[error("{0}")]
    Invalid(String),
    /// Something failed on the way.
    #[error("{0}")]
    Failed(String),
}

pub(crate) type Reply<T> = oneshot::Sender<T>;

/// What a user request returns: the state reached right after it was accepted.
pub type UserReply = Reply<Result<State, CommandError>>;

/// Requests to a domain task.
#[derive(Debug)]
pub enum DomainCmd {
    /// Something happened outside (the peer link changed, a peer message came).
    Event(Event),
    /// Protect the domain with these options (then its annotation, then the
    /// configuration); on success the domain is marked.
    Enable(EnableOptions, UserReply),
    /// Stop protecting; the primary keeps running; the mark is removed.
    Disable(UserReply),
    /// Planned hand-over to the secondary.
    Failover(UserReply),
    /// The peer asks for what it needs to build the secondary.
    Spec(Reply<Result<SecondarySpec, String>>),
    /// A QEMU monitor event of this domain.
    Qmp(QmpEvent),
    /// The router asks the task to end, its domain being gone from this host
    /// ([`DomainHandle::retirable_for`]). Answered `true` when it ended (its
    /// port slot given back), `false` when something it took meanwhile keeps
    /// it (it carries on). The router sends the task nothing after this until
    /// the answer came.
    Retire(Reply<bool>),
}

/// The last snapshot a task published; the age of the last checkpoint is worked
/// out when it is read.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub status: Status,
    pub last_checkpoint: Option<Instant>,
    /// Since when the task has had nothing to keep it: the domain is not
    /// defined here, no copy of it runs or is held here, protection is not
    /// wanted and nothing is in progress (`Task::retirable`).
    pub retirable_since: Option<Instant>,
    /// The domain is not defined here (libvirt's last word) and stands by, or
    /// this host holds its secondary: a task the peer's messages made or keep.
    pub held_for_peer: bool,
}

impl Snapshot {
    fn read(&self) -> Status {
        Status {
            last_checkpoint_age: self.last_checkpoint.map(|t| t.elapsed().as_secs_f64()),
            ..self.status.clone()
        }
    }
}

/// Handle to a domain task.
#[derive(Debug, Clone)]
pub struct DomainHandle {
    pub name: String,
    pub(crate) tx: mpsc::UnboundedSender<DomainCmd>,
    pub(crate) snapshot: watch::Receiver<Snapshot>,
}

impl DomainHandle {
    /// Hand `cmd` to the task; false if it has stopped.
    pub fn send(&self, cmd: DomainCmd) -> bool {
        self.tx.send(cmd).is_ok()
    }

    /// Has the task stopped (ftd shutting down)?
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// The domain's status as its task last published it.
    pub fn status(&self) -> Status {
        self.snapshot.borrow().read()
    }

    /// How long the task has had nothing to keep it (see [`DomainCmd::Retire`]).
    pub fn retirable_for(&self) -> Option<std::time::Duration> {
        self.snapshot.borrow().retirable_since.map(|t| t.elapsed())
    }

    /// Does the task stand by for a domain not defined here, or hold its
    /// secondary (see `daemon::peer`'s bound)?
    pub fn held_for_peer(&self) -> bool {
        self.snapshot.borrow().held_for_peer
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> DomainCmd,
        gone: impl FnOnce() -> T,
    ) -> T {
        let (tx, rx) = oneshot::channel();
        if !self.send(make(tx)) {
            return gone();
        }
        rx.await.unwrap_or_else(|_| gone())
    }

    fn stopped(&self) -> CommandError {
        CommandError::Failed(format!(
            "domain {}: its task has stopped (ftd is shutting down)",
            self.name
        ))
    }

    pub async fn enable(&self, opts: EnableOptions) -> Result<State, CommandError> {
        self.ask(|r| DomainCmd::Enable(opts, r), || Err(self.stopped()))
            .await
    }

    pub async fn disable(&self) -> Result<State, CommandError> {
        self.ask(DomainCmd::Disable, || Err(self.stopped())).await
    }

    pub async fn failover(&self) -> Result<State, CommandError> {
        self.ask(DomainCmd::Failover, || Err(self.stopped())).await
    }

    pub async fn spec(&self) -> Result<SecondarySpec, String> {
        self.ask(DomainCmd::Spec, || Err(self.stopped().to_string()))
            .await
    }
}
