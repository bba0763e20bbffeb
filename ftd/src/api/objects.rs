//! One D-Bus object per domain ftd tracks, `org.ftvirt.Ftd1.Domain` at
//! [`domain_path`], and the task that keeps them current ([`publish`]): it takes
//! the domain tasks' published changes ([`crate::observe`]), creates a domain's
//! object the first time it hears of it (the [`ObjectManager`] at
//! `/org/ftvirt/Ftd1` lists it and announces it with `InterfacesAdded`), updates
//! its properties and announces each change, and emits the manager's
//! `StateChanged` signal for every state transition. The object holds a snapshot;
//! it never asks a domain task anything, so reading properties cannot block on a
//! domain.
//!
//! Reads are checked ([`super::reads`]). Signals are broadcast: the bus hands them
//! to anyone who subscribes, and ftd cannot check who does. So they carry only
//! what is public: which domains ftd tracks and their state names
//! (`StateChanged(domain, from, to, reason)` with `reason` the event's name only,
//! `PropertiesChanged` with the values of `State` and `Role`, `InterfacesAdded`
//! with `Name`, `State` and `Role`). Every other property is announced by name
//! only (`EmitsChangedSignal` `invalidates`): a listener learns that `LastError`
//! changed, and must be allowed to monitor to read what it says.

use super::reads::{ReadGuard, Visibility::Checked, Visibility::Public};
use super::{state_name, Manager, ObjectManager};
use crate::coordinator::State;
use crate::observe::Change;
use crate::observe::Status;
use ftd_proxy::{domain_path, OBJECT_PATH};
use std::time::Instant;
use tokio::sync::mpsc;
use zbus::fdo;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::Connection;

/// A domain's object: the last published snapshot and when it was taken.
#[derive(Debug)]
pub struct DomainObject {
    status: Status,
    at: Instant,
    reads: ReadGuard,
}

impl DomainObject {
    fn age(&self) -> f64 {
        match self.status.last_checkpoint_age {
            Some(a) => a + self.at.elapsed().as_secs_f64(),
            None => -1.0,
        }
    }
}

#[zbus::interface(name = "org.ftvirt.Ftd1.Domain")]
impl DomainObject {
    /// The libvirt domain name.
    #[zbus(property(emits_changed_signal = "const"))]
    async fn name(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        self.reads.property(conn, hdr.as_ref(), Public).await?;
        Ok(self.status.domain.clone())
    }

    /// One of the state names (see `Manager.Status`).
    #[zbus(property)]
    async fn state(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        self.reads.property(conn, hdr.as_ref(), Public).await?;
        Ok(state_name(self.status.state).into())
    }

    /// `primary` (the copy clients see runs here), `secondary`, or `none`.
    #[zbus(property)]
    async fn role(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        self.reads.property(conn, hdr.as_ref(), Public).await?;
        Ok(self.status.state.role().into())
    }

    /// Protection is requested (it may not be established yet).
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn wanted(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<bool> {
        self.reads.property(conn, hdr.as_ref(), Checked).await?;
        Ok(self.status.wanted)
    }

    /// The peer host that holds (or would hold) the other copy.
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn peer(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        self.reads.property(conn, hdr.as_ref(), Checked).await?;
        Ok(self.status.peer.clone())
    }

    /// The peer link is up (heartbeats arrive).
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn peer_up(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<bool> {
        self.reads.property(conn, hdr.as_ref(), Checked).await?;
        Ok(self.status.peer_up)
    }

    /// Checkpoints seen since protection was (re-)established.
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn checkpoints(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<u64> {
        self.reads.property(conn, hdr.as_ref(), Checked).await?;
        Ok(self.status.checkpoints)
    }

    /// Seconds since the last checkpoint; negative when none was seen. Grows by
    /// itself, so it is not announced (read it when needed).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn last_checkpoint_age(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<f64> {
        self.reads.property(conn, hdr.as_ref(), Checked).await?;
        Ok(self.age())
    }

    /// Seconds of guest run the secondary does not hold yet (since the last
    /// checkpoint) while protected; 0 otherwise. Not announced, like the age.
    #[zbus(property(emits_changed_signal = "false"))]
    async fn replication_lag(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<f64> {
        self.reads.property(conn, hdr.as_ref(), Checked).await?;
        Ok(
            if matches!(self.status.state, State::Protected | State::Secondary) {
                self.age().max(0.0)
            } else {
                0.0
            },
        )
    }

    /// Why the last failover happened; empty when none.
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn last_failover(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        self.reads.property(conn, hdr.as_ref(), Checked).await?;
        Ok(self.status.last_failover.clone().unwrap_or_default())
    }

    /// Why the last protection attempt failed; empty when none.
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn last_error(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        self.reads.property(conn, hdr.as_ref(), Checked).await?;
        Ok(self.status.last_error.clone().unwrap_or_default())
    }
}

/// Keep the domain objects and signals current until the stream ends; reads
/// of the objects are checked by `reads`.
pub async fn publish(
    conn: Connection,
    reads: ReadGuard,
    mut changes: mpsc::UnboundedReceiver<Change>,
) {
    while let Some(c) = changes.recv().await {
        if let Err(e) = apply(&conn, &reads, c).await {
            tracing::warn!(error = %e, "D-Bus: could not publish a domain change");
        }
    }
}

/// The name of the event in a transition's reason (`ProtectFailed("...")` ->
/// `ProtectFailed`): its words may name addresses and ports, and the signal goes
/// to anyone listening; they are in `LastError` and the log.
pub fn event_name(reason: &str) -> &str {
    let end = reason
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(reason.len());
    &reason[..end]
}

async fn apply(conn: &Connection, reads: &ReadGuard, c: Change) -> zbus::Result<()> {
    let path = domain_path(&c.status.domain);
    let server = conn.object_server();
    if let Some(t) = &c.transition {
        let emitter = SignalEmitter::new(conn, OBJECT_PATH)?;
        Manager::state_changed(
            &emitter,
            &c.status.domain,
            state_name(t.from),
            state_name(t.to),
            event_name(&t.reason),
        )
        .await?;
    }
    let iref = match server.interface::<_, DomainObject>(&path).await {
        Ok(r) => r,
        Err(_) => {
            // New: zbus announces it (InterfacesAdded, public properties only).
            let name = c.status.domain.clone();
            let object = DomainObject {
                status: c.status,
                at: c.at,
                reads: reads.clone(),
            };
            server.at(&path, object).await?;
            server
                .interface::<_, ObjectManager>(OBJECT_PATH)
                .await?
                .get_mut()
                .await
                .insert(name);
            return Ok(());
        }
    };
    let old = {
        let mut o = iref.get_mut().await;
        o.at = c.at;
        std::mem::replace(&mut o.status, c.status)
    };
    let o = iref.get().await;
    let em = iref.signal_emitter();
    let new = &o.status;
    if old.state != new.state {
        o.state_changed(em).await?;
        if old.state.role() != new.state.role() {
            o.role_changed(em).await?;
        }
    }
    if old.wanted != new.wanted {
        o.wanted_invalidate(em).await?;
    }
    if old.peer != new.peer {
        o.peer_invalidate(em).await?;
    }
    if old.peer_up != new.peer_up {
        o.peer_up_invalidate(em).await?;
    }
    if old.checkpoints != new.checkpoints {
        o.checkpoints_invalidate(em).await?;
    }
    if old.last_failover != new.last_failover {
        o.last_failover_invalidate(em).await?;
    }
    if old.last_error != new.last_error {
        o.last_error_invalidate(em).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::event_name;

    #[test]
    fn a_reason_goes_out_as_its_event_name_only() {
        assert_eq!(
            event_name("ProtectFailed(\"the secondary's NBD export at 10.0.0.2:9999 refused\")"),
            "ProtectFailed"
        );
        assert_eq!(event_name("StepDone { step: Sync }"), "StepDone");
        assert_eq!(event_name("PeerLost"), "PeerLost");
        assert_eq!(event_name(""), "");
    }
}
