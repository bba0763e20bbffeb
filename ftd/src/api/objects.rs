//! One D-Bus object per domain ftd tracks, `org.ftvirt.Ftd1.Domain` at
//! [`domain_path`], and the task that keeps them current ([`publish`]): it takes
//! the domain tasks' published changes ([`crate::observe`]), creates a domain's
//! object the first time it hears of it, updates its properties (each changed
//! property is announced with `PropertiesChanged`) and emits the manager's
//! `StateChanged` signal for every state transition. An `ObjectManager` at
//! `/org/ftvirt/Ftd1` lists the objects (`GetManagedObjects`) and announces new
//! ones (`InterfacesAdded`). The object holds a snapshot;
//! it never asks a domain task anything, so reading properties cannot block.

use super::{state_name, Manager};
use crate::coordinator::State;
use crate::observe::Change;
use crate::observe::Status;
use ftd_proxy::{domain_path, OBJECT_PATH};
use std::time::Instant;
use tokio::sync::mpsc;
use zbus::object_server::SignalEmitter;
use zbus::Connection;

/// A domain's object: the last published snapshot and when it was taken.
#[derive(Debug)]
pub struct DomainObject {
    status: Status,
    at: Instant,
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
    fn name(&self) -> String {
        self.status.domain.clone()
    }

    /// One of the state names (see `Manager.Status`).
    #[zbus(property)]
    fn state(&self) -> String {
        state_name(self.status.state).into()
    }

    /// `primary` (the copy clients see runs here), `secondary`, or `none`.
    #[zbus(property)]
    fn role(&self) -> String {
        self.status.state.role().into()
    }

    /// Protection is requested (it may not be established yet).
    #[zbus(property)]
    fn wanted(&self) -> bool {
        self.status.wanted
    }

    /// The peer host that holds (or would hold) the other copy.
    #[zbus(property)]
    fn peer(&self) -> String {
        self.status.peer.clone()
    }

    /// The peer link is up (heartbeats arrive).
    #[zbus(property)]
    fn peer_up(&self) -> bool {
        self.status.peer_up
    }

    /// Checkpoints seen since protection was (re-)established.
    #[zbus(property)]
    fn checkpoints(&self) -> u64 {
        self.status.checkpoints
    }

    /// Seconds since the last checkpoint; negative when none was seen. Grows by
    /// itself, so it is not announced (read it when needed).
    #[zbus(property(emits_changed_signal = "false"))]
    fn last_checkpoint_age(&self) -> f64 {
        self.age()
    }

    /// Seconds of guest run the secondary does not hold yet (since the last
    /// checkpoint) while protected; 0 otherwise. Not announced, like the age.
    #[zbus(property(emits_changed_signal = "false"))]
    fn replication_lag(&self) -> f64 {
        if matches!(self.status.state, State::Protected | State::Secondary) {
            self.age().max(0.0)
        } else {
            0.0
        }
    }

    /// Why the last failover happened; empty when none.
    #[zbus(property)]
    fn last_failover(&self) -> String {
        self.status.last_failover.clone().unwrap_or_default()
    }

    /// Why the last protection attempt failed; empty when none.
    #[zbus(property)]
    fn last_error(&self) -> String {
        self.status.last_error.clone().unwrap_or_default()
    }
}

/// Keep the domain objects and signals current until the stream ends.
pub async fn publish(conn: Connection, mut changes: mpsc::UnboundedReceiver<Change>) {
    while let Some(c) = changes.recv().await {
        if let Err(e) = apply(&conn, c).await {
            tracing::warn!(error = %e, "D-Bus: could not publish a domain change");
        }
    }
}

async fn apply(conn: &Connection, c: Change) -> zbus::Result<()> {
    let path = domain_path(&c.status.domain);
    let server = conn.object_server();
    if let Some(t) = &c.transition {
        let emitter = SignalEmitter::new(conn, OBJECT_PATH)?;
        Manager::state_changed(
            &emitter,
            &c.status.domain,
            state_name(t.from),
            state_name(t.to),
            &t.reason,
        )
        .await?;
    }
    let iref = match server.interface::<_, DomainObject>(&path).await {
        Ok(r) => r,
        Err(_) => {
            // New: the ObjectManager at OBJECT_PATH announces it (InterfacesAdded).
            server
                .at(
                    &path,
                    DomainObject {
                        status: c.status,
                        at: c.at,
                    },
                )
                .await?;
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
        o.wanted_changed(em).await?;
    }
    if old.peer != new.peer {
        o.peer_changed(em).await?;
    }
    if old.peer_up != new.peer_up {
        o.peer_up_changed(em).await?;
    }
    if old.checkpoints != new.checkpoints {
        o.checkpoints_changed(em).await?;
    }
    if old.last_failover != new.last_failover {
        o.last_failover_changed(em).await?;
    }
    if old.last_error != new.last_error {
        o.last_error_changed(em).await?;
    }
    Ok(())
}
