//! The D-Bus API, `org.ftvirt.Ftd1.Manager` at `/org/ftvirt/Ftd1`: each method only
//! builds a command for the daemon, awaits its reply and maps the error. Typed
//! signatures; errors are `org.ftvirt.Ftd1.Error.*`.
//! Each method first authorizes the caller (`crate::auth`): a refusal is
//! `AccessDenied` and nothing is done.

use crate::auth::{Action, Authorizer};
use crate::coordinator::{Event, State};
use crate::daemon::{CommandError, DaemonHandle};
use crate::domain::Status;
use ftd_proxy::state;
/// The client side (names, [`DomainStatus`], [`FtdProxy`]) lives in `ftd-proxy`.
pub use ftd_proxy::{DomainStatus, FtdProxy, BUS_NAME, INTERFACE, OBJECT_PATH};
use zbus::message::Header;
use zbus::Connection;

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
    /// The caller may not do this (polkit said no, or could not be asked).
    AccessDenied(String),
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

/// The state names of the API (stable strings, listed in [`ftd_proxy::state`]).
pub fn state_name(s: State) -> &'static str {
    match s {
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

/// The object served at [`OBJECT_PATH`].
#[derive(Debug)]
pub struct Manager {
    pub daemon: DaemonHandle,
    pub auth: Authorizer,
}

#[zbus::interface(name = "org.ftvirt.Ftd1.Manager")]
impl Manager {
    /// Protect a running domain with the configured peer; returns the state reached.
    async fn enable(
        &self,
        domain: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, ApiError> {
        self.auth.check(conn, &hdr, Action::Manage).await?;
        Ok(state_name(self.daemon.user(&domain, Event::Enable).await?).into())
    }

    /// Stop protecting a domain; the primary keeps running.
    async fn disable(
        &self,
        domain: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, ApiError> {
        self.auth.check(conn, &hdr, Action::Manage).await?;
        Ok(state_name(self.daemon.user(&domain, Event::Disable).await?).into())
    }

    /// Planned failover: the secondary takes over, this host's copy is destroyed.
    async fn failover(
        &self,
        domain: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, ApiError> {
        self.auth.check(conn, &hdr, Action::Manage).await?;
        Ok(state_name(self.daemon.user(&domain, Event::SwitchOver).await?).into())
    }

    /// One domain's protection status.
    async fn status(
        &self,
        domain: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<DomainStatus, ApiError> {
        self.auth.check(conn, &hdr, Action::Monitor).await?;
        Ok(self.daemon.status(&domain).await?.into())
    }

    /// Every domain ftd knows on this host.
    async fn list(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<DomainStatus>, ApiError> {
        self.auth.check(conn, &hdr, Action::Monitor).await?;
        Ok(self
            .daemon
            .list()
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    // -- from the libvirt hook (ftvirt-hook) ----------------------------------------

    /// From the libvirt hook: libvirt's hook `operation` (`started`, `stopped`,
    /// `release`) happened to `domain`, which carries the protection annotation.
    /// Replies at once, "ok" or "ignored": libvirtd waits for its hook, and ftd's
    /// libvirt calls about the domain would wait for libvirtd, so `started` starts
    /// protecting (as `Enable`) after the reply; the outcome is logged and shown by
    /// `Status`. A stop needs nothing: the domain's task notices it by itself.
    async fn notify(
        &self,
        domain: String,
        operation: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, ApiError> {
        self.auth.check(conn, &hdr, Action::Manage).await?;
        match operation.as_str() {
            "started" => {
                let daemon = self.daemon.clone();
                tokio::spawn(async move {
                    match daemon.user(&domain, Event::Enable).await {
                        Ok(s) => {
                            tracing::info!(%domain, state = state_name(s), "libvirt hook: started, protecting")
                        }
                        Err(e) => {
                            tracing::warn!(%domain, error = %e, "libvirt hook: started, but protecting failed")
                        }
                    }
                });
                Ok("ok".into())
            }
            "stopped" | "release" => Ok("ok".into()),
            _ => Ok("ignored".into()),
        }
    }
}
