//! The daemon's core: one task that owns the map of domain tasks and routes to
//! them user commands (from the D-Bus API), peer-link events and the peer's
//! requests. No shared mutable state: everything else talks to it over channels.
//!
//! `Enable` chooses the domain's settings ([`crate::protect`]: options, then the
//! domain's annotation, then the configuration), and on success marks the domain
//! with the annotation through libvirt's metadata API; `Disable` removes it. At
//! start-up, running domains that carry the annotation (or whose secondary's
//! overlays this host keeps) are taken up in [`State::Reattaching`]: their task
//! reads QEMU and re-attaches to a running COLO pair, or protects a plain domain;
//! the libvirt hook's `started` notification protects a domain that starts later.
//!
//! The peer link's `Lost` (the peer's host is gone) and `DaemonLost` (only its ftd
//! is: its host answers) reach every domain as `PeerLost` and `PeerDaemonLost`.

use crate::coordinator::{Event, State};
use crate::domain::{self, DomainCmd, DomainHandle, HostCtx, Status};
use crate::libvirt::{DomState, LibvirtError};
use crate::peer::{LinkEvent, Request, Response};
use crate::qmp_events::QmpEvent;
use ftd_proxy::EnableOptions;
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

mod enable;

/// Why a command could not be carried out (mapped to D-Bus errors by the API).
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

/// The internal API: what the D-Bus adapter (and tests) ask of the daemon.
#[derive(Debug)]
pub enum DaemonCmd {
    /// Protect a domain with these options.
    Enable {
        domain: String,
        opts: EnableOptions,
        reply: oneshot::Sender<Result<State, CommandError>>,
    },
    /// The libvirt hook saw `operation` happen to a marked domain. Answered at
    /// once; what it leads to (protecting a started domain) runs afterwards.
    Notify {
        domain: String,
        operation: String,
        reply: oneshot::Sender<&'static str>,
    },
    /// `Disable` or `SwitchOver` for a domain.
    User {
        domain: String,
        ev: Event,
        reply: oneshot::Sender<Result<State, CommandError>>,
    },
    Status {
        domain: String,
        reply: oneshot::Sender<Result<Status, CommandError>>,
    },
    List {
        reply: oneshot::Sender<Vec<Status>>,
    },
    /// Start-up scan: take up a running domain that may be half of a COLO pair
    /// (its task reads QEMU's state and re-attaches, or protects it).
    Adopt {
        domain: String,
    },
}

/// Cheap handle to the daemon task.
#[derive(Debug, Clone)]
pub struct DaemonHandle {
    tx: mpsc::Sender<DaemonCmd>,
}

impl DaemonHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> DaemonCmd,
    ) -> Result<T, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| CommandError::Failed("ftd is shutting down".into()))?;
        rx.await
            .map_err(|_| CommandError::Failed("ftd is shutting down".into()))
    }

    pub async fn enable(&self, domain: &str, opts: EnableOptions) -> Result<State, CommandError> {
        self.ask(|reply| DaemonCmd::Enable {
            domain: domain.into(),
            opts,
            reply,
        })
        .await?
    }

    /// Returns "ok" when the operation leads to something, "ignored" otherwise.
    pub async fn notify(
        &self,
        domain: &str,
        operation: &str,
    ) -> Result<&'static str, CommandError> {
        self.ask(|reply| DaemonCmd::Notify {
            domain: domain.into(),
            operation: operation.into(),
            reply,
        })
        .await
    }

    pub async fn user(&self, domain: &str, ev: Event) -> Result<State, CommandError> {
        self.ask(|reply| DaemonCmd::User {
            domain: domain.into(),
            ev,
            reply,
        })
        .await?
    }

    pub async fn status(&self, domain: &str) -> Result<Status, CommandError> {
        self.ask(|reply| DaemonCmd::Status {
            domain: domain.into(),
            reply,
        })
        .await?
    }

    pub async fn list(&self) -> Result<Vec<Status>, CommandError> {
        self.ask(|reply| DaemonCmd::List { reply }).await
    }
}

/// Start the daemon task.
pub fn spawn(
    ctx: HostCtx,
    links: mpsc::Receiver<LinkEvent>,
    qmp: mpsc::UnboundedReceiver<QmpEvent>,
    cancel: CancellationToken,
) -> (DaemonHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(64);
    let d = Daemon {
        ctx,
        domains: HashMap::new(),
        cancel,
        me: DaemonHandle { tx: tx.clone() }.downgrade(),
    };
    let j = tokio::spawn(d.run(rx, links, qmp));
    (DaemonHandle { tx }, j)
}

struct Daemon {
    ctx: HostCtx,
    domains: HashMap<String, DomainHandle>,
    cancel: CancellationToken,
    /// To send itself follow-up work (hook notifications, the start-up scan).
    me: WeakDaemonHandle,
}

/// A handle that does not keep the daemon's channel open.
#[derive(Debug, Clone)]
struct WeakDaemonHandle(mpsc::WeakSender<DaemonCmd>);

impl DaemonHandle {
    fn downgrade(&self) -> WeakDaemonHandle {
        WeakDaemonHandle(self.tx.downgrade())
    }
}

impl WeakDaemonHandle {
    fn upgrade(&self) -> Option<DaemonHandle> {
        self.0.upgrade().map(|tx| DaemonHandle { tx })
    }

    /// Take up `domain` (start-up scan).
    fn adopt(&self, domain: String) {
        let Some(d) = self.upgrade() else { return };
        tokio::spawn(async move {
            let _ = d.tx.send(DaemonCmd::Adopt { domain }).await;
        });
    }

    /// Protect `domain` with its annotation's settings, in the background; the
    /// outcome goes to the log (and to the domain's status).
    fn enable_later(&self, domain: String, why: &'static str) {
        let Some(d) = self.upgrade() else { return };
        tokio::spawn(async move {
            match d.enable(&domain, EnableOptions::default()).await {
                Ok(s) => {
                    tracing::info!(%domain, state = %crate::api::state_name(s), "{why}: protecting")
                }
                // Already being protected (the hook and the start-up scan can
                // both ask): nothing to worry about.
                Err(e @ CommandError::Refused(_)) => {
                    tracing::info!(%domain, reason = %e, "{why}: not started again")
                }
                Err(e) => tracing::warn!(%domain, error = %e, "{why}: not protected"),
            }
        });
    }
}

impl Daemon {
    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<DaemonCmd>,
        mut links: mpsc::Receiver<LinkEvent>,
        mut qmp: mpsc::UnboundedReceiver<QmpEvent>,
    ) {
        self.scan();
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                c = cmds.recv() => match c {
                    Some(c) => self.command(c).await,
                    None => break,
                },
                e = links.recv() => match e {
                    Some(e) => self.link(e).await,
                    None => break,
                },
                Some(e) = qmp.recv() => {
                    if let Some(h) = self.domains.get(&e.domain) {
                        h.send(DomainCmd::Qmp(e)).await;
                    }
                }
            }
        }
    }

    /// The domain's task, started on first use from what libvirt says of it here.
    /// A running domain that is marked, or for which this host keeps a
    /// secondary's overlays, may be half of a running COLO pair (ftd restarted):
    /// its task starts by reading QEMU ([`State::Reattaching`]).
    async fn domain(&mut self, name: &str, must_exist: bool) -> Result<DomainHandle, CommandError> {
        if let Some(h) = self.domains.get(name) {
            return Ok(h.clone());
        }
        let mut marked = None;
        let initial = match self.ctx.lv.state(name).await {
            Ok(DomState::Running | DomState::Paused) => {
                let (candidate, settings) = self.reattach_candidate(name).await;
                marked = settings;
                if candidate {
                    State::Reattaching
                } else {
                    State::Unprotected
                }
            }
            Ok(_) => State::Stopped,
            Err(LibvirtError::NoDomain(_)) if must_exist => {
                return Err(CommandError::NoSuchDomain(name.into()))
            }
            Err(LibvirtError::NoDomain(_)) => State::Standby,
            Err(e) => return Err(CommandError::Failed(e.to_string())),
        };
        let slot = self.domains.len() as u16;
        let h = domain::spawn(
            name,
            initial,
            marked,
            slot,
            self.ctx.clone(),
            self.cancel.child_token(),
        );
        self.domains.insert(name.to_string(), h.clone());
        Ok(h)
    }

    async fn command(&mut self, c: DaemonCmd) {
        match c {
            DaemonCmd::Adopt { domain } => {
                if let Err(e) = self.domain(&domain, false).await {
                    tracing::warn!(%domain, error = %e, "start-up scan: domain not taken up");
                }
            }
            DaemonCmd::Enable {
                domain,
                opts,
                reply,
            } => {
                let r = self.enable(&domain, &opts).await;
                let _ = reply.send(r);
            }
            DaemonCmd::Notify {
                domain,
                operation,
                reply,
            } => {
                let r = match operation.as_str() {
                    "started" => {
                        self.me.enable_later(domain, "libvirt hook: started");
                        "ok"
                    }
                    // A stop needs nothing: the domain's task notices it itself.
                    "stopped" | "release" => "ok",
                    _ => "ignored",
                };
                let _ = reply.send(r);
            }
            DaemonCmd::User { domain, ev, reply } => {
                let r = match self.domain(&domain, true).await {
                    Ok(h) => h.user(ev.clone()).await.map_err(CommandError::Refused),
                    Err(e) => Err(e),
                };
                if r.is_ok() && ev == Event::Disable {
                    self.unmark(&domain).await;
                }
                let _ = reply.send(r);
            }
            DaemonCmd::Status { domain, reply } => {
                let r = match self.domains.get(&domain) {
                    Some(h) => h
                        .status()
                        .await
                        .ok_or_else(|| CommandError::Failed("domain task stopped".into())),
                    // A domain ftd has not touched: report what libvirt says of it.
                    None => match self.ctx.lv.state(&domain).await {
                        Err(LibvirtError::NoDomain(_)) => {
                            Err(CommandError::NoSuchDomain(domain.clone()))
                        }
                        Err(e) => Err(CommandError::Failed(e.to_string())),
                        Ok(st) => Ok(Status {
                            domain: domain.clone(),
                            state: if matches!(st, DomState::Running | DomState::Paused) {
                                State::Unprotected
                            } else {
                                State::Stopped
                            },
                            wanted: false,
                            peer: self.ctx.peer.peer_host().to_string(),
                            peer_up: self.ctx.peer.is_up(),
                            checkpoints: 0,
                            last_checkpoint_age: None,
                            last_error: None,
                            last_failover: None,
                        }),
                    },
                };
                let _ = reply.send(r);
            }
            DaemonCmd::List { reply } => {
                let mut v = Vec::new();
                for h in self.domains.values() {
                    if let Some(s) = h.status().await {
                        v.push(s);
                    }
                }
                v.sort_by(|a, b| a.domain.cmp(&b.domain));
                let _ = reply.send(v);
            }
        }
    }

    /// Right after ftd starts, the peer link takes a moment to come up: give it
    /// that moment (bounded) before an Enable would fail for "peer unreachable".
    async fn await_peer_link(&self) {
        let t0 = std::time::Instant::now();
        while !self.ctx.peer.is_up() && t0.elapsed() < std::time::Duration::from_secs(2) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    async fn link(&mut self, e: LinkEvent) {
        match e {
            LinkEvent::Up { .. } => {
                tracing::info!(peer = %self.ctx.peer.peer_host(), "peer up");
                for h in self.domains.values() {
                    h.send(DomainCmd::Event(Event::PeerUp)).await;
                }
            }
            LinkEvent::Lost { reason } => {
                tracing::warn!(peer = %self.ctx.peer.peer_host(), %reason, "peer lost");
                for h in self.domains.values() {
                    h.send(DomainCmd::Event(Event::PeerLost)).await;
                }
            }
            // Kept apart from `Lost` on purpose: the peer host lives, only its
            // ftd is gone; no host-loss handling (see the coordinator).
            LinkEvent::DaemonLost { reason } => {
                tracing::warn!(peer = %self.ctx.peer.peer_host(), %reason, "peer's ftd lost (its host answers)");
                for h in self.domains.values() {
                    h.send(DomainCmd::Event(Event::PeerDaemonLost)).await;
                }
            }
            LinkEvent::Msg { domain, msg } => match self.domain(&domain, false).await {
                Ok(h) => {
                    h.send(DomainCmd::Event(Event::Peer(msg))).await;
                }
                Err(e) => tracing::warn!(%domain, error = %e, "peer message dropped"),
            },
            LinkEvent::Request { body, reply } => match body {
                Request::Ping => {
                    let _ = reply.send(Ok(Response::Pong));
                }
                Request::SecondarySpec { domain } => match self.domains.get(&domain) {
                    Some(h) => {
                        let h = h.clone();
                        tokio::spawn(async move {
                            let r = h.spec().await.map(|s| Response::SecondarySpec(Box::new(s)));
                            let _ = reply.send(r);
                        });
                    }
                    None => {
                        let _ = reply.send(Err(format!(
                            "domain {domain:?} is not protected on this host"
                        )));
                    }
                },
                other => {
                    let _ = reply.send(Err(format!(
                        "{} is not handled by this ftd",
                        other.describe()
                    )));
                }
            },
        }
    }
}
