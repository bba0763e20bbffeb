//! The D-Bus API, `org.ftvirt.Ftd1.Manager` at `/org/ftvirt/Ftd1`: each method only
//! builds a command for the daemon, awaits its reply and maps the error. Typed
//! signatures; errors are `org.ftvirt.Ftd1.Error.*`.
//! (polkit authorization of the caller comes with the management-surface work.)

use crate::coordinator::{Event, State};
use crate::daemon::{CommandError, DaemonHandle};
use crate::domain::Status;
use serde::{Deserialize, Serialize};
use zbus::zvariant::Type;

pub const OBJECT_PATH: &str = "/org/ftvirt/Ftd1";
pub const INTERFACE: &str = "org.ftvirt.Ftd1.Manager";

/// Errors as D-Bus callers see them.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.ftvirt.Ftd1.Error")]
pub enum ApiError {
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The domain is not defined on this host.
    NoSuchDomain(String),
    /// The request does not fit the domain's state.
    Refused(String),
    /// The request failed.
    Failed(String),
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::NoSuchDomain(_) => ApiError::NoSuchDomain(e.to_string()),
            CommandError::Refused(m) => ApiError::Refused(m),
            CommandError::Failed(m) => ApiError::Failed(m),
        }
    }
}

/// One domain's protection, as `Status` and `List` return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct DomainStatus {
    pub domain: String,
    pub state: String,
    /// Protection requested (it may not be established yet).
    pub wanted: bool,
    pub peer: String,
    pub peer_up: bool,
    pub checkpoints: u64,
    /// Seconds since the last checkpoint; negative when none was seen.
    pub last_checkpoint_age: f64,
    pub last_error: String,
    pub last_failover: String,
}

impl From<Status> for DomainStatus {
    fn from(s: Status) -> Self {
        DomainStatus {
            domain: s.domain,
            state: state_name(s.state).into(),
            wanted: s.wanted,
            peer: s.peer,
            peer_up: s.peer_up,
            checkpoints: s.checkpoints,
            last_checkpoint_age: s.last_checkpoint_age.unwrap_or(-1.0),
            last_error: s.last_error.unwrap_or_default(),
            last_failover: s.last_failover.unwrap_or_default(),
        }
    }
}

/// The state names of the API (stable strings).
pub fn state_name(s: State) -> &'static str {
    match s {
        State::Unprotected => "unprotected",
        State::Preparing => "preparing",
        State::Syncing => "syncing",
        State::Starting => "starting",
        State::Protected => "protected",
        State::Degraded => "degraded",
        State::SwitchingOver => "switching-over",
        State::Disabling => "disabling",
        State::Failed => "failed",
        State::Standby => "standby",
        State::SecondaryPreparing => "secondary-preparing",
        State::Secondary => "secondary",
        State::TakingOver => "taking-over",
        State::Stopped => "stopped",
    }
}

/// The object served at [`OBJECT_PATH`].
#[derive(Debug)]
pub struct Manager {
    pub daemon: DaemonHandle,
}

#[zbus::interface(name = "org.ftvirt.Ftd1.Manager")]
impl Manager {
    /// Protect a running domain with the configured peer; returns the state reached.
    async fn enable(&self, domain: String) -> Result<String, ApiError> {
        Ok(state_name(self.daemon.user(&domain, Event::Enable).await?).into())
    }

    /// Stop protecting a domain; the primary keeps running.
    async fn disable(&self, domain: String) -> Result<String, ApiError> {
        Ok(state_name(self.daemon.user(&domain, Event::Disable).await?).into())
    }

    /// Planned failover: the secondary takes over, this host's copy is destroyed.
    async fn failover(&self, domain: String) -> Result<String, ApiError> {
        Ok(state_name(self.daemon.user(&domain, Event::SwitchOver).await?).into())
    }

    /// One domain's protection status.
    async fn status(&self, domain: String) -> Result<DomainStatus, ApiError> {
        Ok(self.daemon.status(&domain).await?.into())
    }

    /// Every domain ftd knows on this host.
    async fn list(&self) -> Result<Vec<DomainStatus>, ApiError> {
        Ok(self
            .daemon
            .list()
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

/// Client side of [`Manager`], for virsh-ft and tests.
#[zbus::proxy(
    interface = "org.ftvirt.Ftd1.Manager",
    default_service = "org.ftvirt.Ftd1",
    default_path = "/org/ftvirt/Ftd1"
)]
pub trait Ftd {
    fn enable(&self, domain: &str) -> zbus::Result<String>;
    fn disable(&self, domain: &str) -> zbus::Result<String>;
    fn failover(&self, domain: &str) -> zbus::Result<String>;
    fn status(&self, domain: &str) -> zbus::Result<DomainStatus>;
    fn list(&self) -> zbus::Result<Vec<DomainStatus>>;
}
