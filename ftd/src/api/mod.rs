//! The D-Bus API, versioned `org.ftvirt.Ftd1`:
//! - `org.ftvirt.Ftd1.Manager` at `/org/ftvirt/Ftd1` ([`Manager`]): each method
//!   only builds a command for the daemon, awaits its reply and maps the error;
//!   the `StateChanged` signal on every state change of any domain;
//! - `org.ftvirt.Ftd1.Domain`, one object per domain ftd tracks, at
//!   [`ftd_proxy::domain_path`] ([`objects`]), with properties and
//!   `PropertiesChanged`, kept up to date by [`publish`];
//! - `org.freedesktop.DBus.ObjectManager` at `/org/ftvirt/Ftd1`
//!   ([`ObjectManager`]), which lists the domain objects.
//!
//! Typed signatures; errors are `org.ftvirt.Ftd1.Error.*`. The committed
//! introspection XML, `dbus/org.ftvirt.Ftd1.xml`, is checked against the live
//! interface by a test.
//!
//! Each method first authorizes the caller (`crate::auth`): a refusal is
//! `AccessDenied` and nothing is done. Reading the domain objects (properties,
//! `GetManagedObjects`) is checked as `Status` is ([`reads`]); what the broadcast
//! signals carry, and why, is in [`objects`].

mod object_manager;
mod objects;
pub mod reads;

use crate::auth::{Action, Authorizer};
use crate::coordinator::State;
use crate::daemon::{CommandError, DaemonHandle};
use crate::observe::Status;
use ftd_proxy::EnableOptions;
/// The client side (names, [`DomainStatus`], [`FtdProxy`]) lives in `ftd-proxy`.
pub use ftd_proxy::{no_options, DomainStatus, FtdProxy, BUS_NAME, INTERFACE, OBJECT_PATH};
pub use object_manager::ObjectManager;
pub use objects::{event_name, publish, DomainObject};
use std::collections::HashMap;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::OwnedValue;
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
    /// An option or a setting is wrong (the message names it and the fix);
    /// nothing changed.
    InvalidArgument(String),
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
            CommandError::Invalid(m) => ApiError::InvalidArgument(m),
            CommandError::Failed(m) => ApiError::Failed(m),
        }
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        ApiError::AccessDenied(e.to_string())
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
    s.name()
}

/// ftd's objects on a connection being built: the [`Manager`] and the
/// [`ObjectManager`] at [`OBJECT_PATH`]. Returns the builder, and the read check
/// that [`publish`] gives each domain object.
pub fn serve<'a>(
    builder: zbus::connection::Builder<'a>,
    daemon: DaemonHandle,
    auth: Authorizer,
) -> zbus::Result<(zbus::connection::Builder<'a>, reads::ReadGuard)> {
    let reads = reads::ReadGuard::new(auth.clone());
    let builder = builder
        .serve_at(OBJECT_PATH, Manager { daemon, auth })?
        .serve_at(OBJECT_PATH, ObjectManager::new(reads.clone()))?;
    Ok((builder, reads))
}

/// The object served at [`OBJECT_PATH`].
#[derive(Debug)]
pub struct Manager {
    pub daemon: DaemonHandle,
    pub auth: Authorizer,
}

#[zbus::interface(name = "org.ftvirt.Ftd1.Manager")]
impl Manager {
    /// Protect a running domain; returns the state reached. `options` (all
    /// optional): `peer` (s), `checkpoint-interval` (u, ms), `auto-reprotect` (b);
    /// what is not given comes from the domain's annotation, then from ftd's
    /// configuration. On success the domain is marked with the annotation.
    async fn enable(
        &self,
        domain: String,
        options: HashMap<String, OwnedValue>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, ApiError> {
        self.auth.check(conn, &hdr, Action::Manage).await?;
        let opts = EnableOptions::from_dict(&options)
            .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        Ok(state_name(self.daemon.enable(&domain, opts).await?).into())
    }

    /// Stop protecting a domain; the primary keeps running.
    async fn disable(
        &self,
        domain: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, ApiError> {
        self.auth.check(conn, &hdr, Action::Manage).await?;
        Ok(state_name(self.daemon.disable(&domain).await?).into())
    }

    /// Planned failover: the secondary takes over, this host's copy is destroyed.
    async fn failover(
        &self,
        domain: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, ApiError> {
        self.auth.check(conn, &hdr, Action::Manage).await?;
        Ok(state_name(self.daemon.failover(&domain).await?).into())
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
    /// `prepare` asks whether this host may start its copy: "ok", or "refused: WHY"
    /// when the witness's record names another host whose copy runs (or the
    /// witness does not answer); the hook then fails the start with WHY.
    /// Replies at once, "ok" or "ignored": libvirtd waits for its hook, and ftd's
    /// libvirt calls about the domain would wait for libvirtd, so `started` starts
    /// protecting (as `Enable` with the annotation's settings) after the reply; the
    /// outcome is logged and shown by `Status`.
    async fn notify(
        &self,
        domain: String,
        operation: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, ApiError> {
        self.auth.check(conn, &hdr, Action::Manage).await?;
        if operation == "prepare" {
            return Ok(self.daemon.may_start(&domain).await?);
        }
        Ok(self.daemon.notify(&domain, &operation).await?.into())
    }

    /// A domain's protection state changed on this host: from `from` to `to`
    /// (state names), because of `reason` (the event's name; its details are in
    /// the domain's `LastError` or `LastFailover`, and in ftd's log). Broadcast:
    /// anyone on the bus may listen.
    #[zbus(signal)]
    pub async fn state_changed(
        emitter: &SignalEmitter<'_>,
        domain: &str,
        from: &str,
        to: &str,
        reason: &str,
    ) -> zbus::Result<()>;
}
