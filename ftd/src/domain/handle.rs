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
}

/// The last snapshot a task published; the age of the last checkpoint is worked
/// out when it is read.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub status: Status,
    pub last_checkpoint: Option<Instant>,
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
