//! The daemon's router: one task that owns the map of domain tasks and routes to
//! them the API's commands, peer-link events, the peer's messages and requests,
//! and QEMU events. It does no I/O and never waits: every hand-over is a send on an
//! unbounded channel, so one domain whose libvirt call hangs delays no other
//! domain's failover. What needs I/O runs elsewhere:
//! - a domain this host has no task for yet is looked up by a future of its own
//!   ([`crate::domain::resolve`]); what arrives for it meanwhile waits, in order,
//!   and goes to its task once it exists (or is answered `NoSuchDomain`);
//! - `Enable` (settings, checks, the mark) and `Disable` (the mark) run in the
//!   domain's own task;
//! - `Status` of a domain without a task asks libvirt from a future of its own;
//!   `Status` and `List` of the others read the tasks' published snapshots.
//!
//! At start-up, running domains that carry the annotation (or whose secondary's
//! overlays this host keeps) are taken up ([`scan`]); the libvirt hook's `started`
//! notification protects a domain that starts later.
//!
//! The peer link's events are routed by [`peer`], which also bounds what the
//! peer's messages can make this host keep (lookups, tasks for domains not
//! defined here). The peer link's `Lost` (the peer's host is gone) and
//! `DaemonLost` (only its ftd is: its host answers) reach every domain as
//! `PeerLost` and `PeerDaemonLost`.
//!
//! A task whose domain is gone from this host (not defined, nothing held for
//! it, idle for a while) is ended ([`retire`]), so tasks do not pile up.

use crate::coordinator::{Event, State};
use crate::domain::{self, DomainCmd, DomainHandle, HostCtx, Resolved};
use crate::libvirt::{DomState, LibvirtError};
use crate::observe::Status;
use crate::peer::LinkEvent;
use crate::qmp_events::QmpEvent;
use ftd_proxy::EnableOptions;
use std::collections::{HashMap, HashSet};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

mod peer;
mod retire;
mod scan;
mod start;

#[cfg(test)]
pub(crate) use peer::{PEER_DOMAINS_MAX, PEER_LOOKUPS_MAX};
#[cfg(test)]
pub(crate) use retire::{IDLE as RETIRE_IDLE, SWEEP as RETIRE_SWEEP};

pub use crate::domain::CommandError;
use crate::domain::UserReply;

/// The internal API: what the D-Bus adapter (and tests) ask of the daemon.
#[derive(Debug)]
pub enum DaemonCmd {
    /// Protect a domain with these options.
    Enable {
        domain: String,
        opts: EnableOptions,
        reply: UserReply,
    },
    /// Stop protecting a domain; its primary keeps running.
    Disable {
        domain: String,
        reply: UserReply,
    },
    /// Planned hand-over of a protected domain to its secondary.
    Failover {
        domain: String,
        reply: UserReply,
    },
    /// The libvirt hook saw `operation` happen to a marked domain. Answered at
    /// once; what it leads to (protecting a started domain) runs afterwards.
    Notify {
        domain: String,
        operation: String,
        reply: oneshot::Sender<&'static str>,
    },
    /// The libvirt hook's `prepare`: may this host start its copy of a marked
    /// domain? "ok", or "refused: WHY". Answered from the witness's record on a
    /// task of its own (the router does not wait for the witness).
    MayStart {
        domain: String,
        reply: oneshot::Sender<String>,
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

fn shutting_down() -> CommandError {
    CommandError::Failed("ftd is shutting down".into())
}

impl DaemonHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> DaemonCmd,
    ) -> Result<T, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| shutting_down())?;
        rx.await.map_err(|_| shutting_down())
    }

    pub async fn enable(&self, domain: &str, opts: EnableOptions) -> Result<State, CommandError> {
        self.ask(|reply| DaemonCmd::Enable {
            domain: domain.into(),
            opts,
            reply,
        })
        .await?
    }

    pub async fn disable(&self, domain: &str) -> Result<State, CommandError> {
        self.ask(|reply| DaemonCmd::Disable {
            domain: domain.into(),
            reply,
        })
        .await?
    }

    pub async fn failover(&self, domain: &str) -> Result<State, CommandError> {
        self.ask(|reply| DaemonCmd::Failover {
            domain: domain.into(),
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

    /// "ok" when this host may start its copy of `domain`, else "refused: WHY".
    pub async fn may_start(&self, domain: &str) -> Result<String, CommandError> {
        self.ask(|reply| DaemonCmd::MayStart {
            domain: domain.into(),
            reply,
        })
        .await
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
    let (resolved_tx, resolved_rx) = mpsc::unbounded_channel();
    let (retired_tx, retired_rx) = mpsc::unbounded_channel();
    let d = Daemon {
        ctx,
        domains: HashMap::new(),
        resolving: HashMap::new(),
        peer_lookups: HashSet::new(),
        retiring: HashMap::new(),
        resolved: resolved_tx,
        retired: retired_tx,
        cancel,
        me: DaemonHandle { tx: tx.clone() }.downgrade(),
    };
    let j = tokio::spawn(d.run(rx, links, qmp, resolved_rx, retired_rx));
    (DaemonHandle { tx }, j)
}

/// A domain looked up by its own future: what libvirt said.
type Lookup = (String, Result<Option<Resolved>, LibvirtError>);

struct Daemon {
    ctx: HostCtx,
    domains: HashMap<String, DomainHandle>,
    /// Domains being looked up, with what arrived for them meanwhile (in order).
    resolving: HashMap<String, Vec<DomainCmd>>,
    /// Those of them whose lookup a peer message started (bounded: [`peer`]).
    peer_lookups: HashSet<String>,
    /// Tasks asked to end ([`retire`]), with what arrived meanwhile.
    retiring: HashMap<String, retire::Retiring>,
    resolved: mpsc::UnboundedSender<Lookup>,
    retired: mpsc::UnboundedSender<retire::Retired>,
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
                    tracing::info!(%domain, state = %s.name(), "{why}: protecting")
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
        mut resolved: mpsc::UnboundedReceiver<Lookup>,
        mut retired: mpsc::UnboundedReceiver<retire::Retired>,
    ) {
        scan::scan(self.ctx.clone(), self.me.clone());
        let mut sweep = tokio::time::interval(retire::SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                c = cmds.recv() => match c {
                    Some(c) => self.command(c),
                    None => break,
                },
                e = links.recv() => match e {
                    Some(e) => self.link(e),
                    None => break,
                },
                Some(e) = qmp.recv() => {
                    if self.domains.contains_key(&e.domain) || self.retiring.contains_key(&e.domain) {
                        let name = e.domain.clone();
                        let _ = self.pass(&name, Some(DomainCmd::Qmp(e)));
                    }
                }
                Some((name, r)) = resolved.recv() => self.resolved(name, r),
                Some((name, gone)) = retired.recv() => self.retired(name, gone),
                _ = sweep.tick() => self.sweep(),
            }
        }
    }

    /// Hand `cmd` to the domain's task, or hold it until the task exists.
    fn route(&mut self, name: &str, cmd: Option<DomainCmd>) {
        if let Err(cmd) = self.pass(name, cmd) {
            self.look_up(name, cmd.into_iter().collect());
        }
    }

    /// Hand `cmd` to `name`'s task, or queue it where it waits for one (a
    /// lookup, a task ending); give it back when there is neither.
    fn pass(&mut self, name: &str, cmd: Option<DomainCmd>) -> Result<(), Option<DomainCmd>> {
        if let Some(h) = self.domains.get(name) {
            if let Some(cmd) = cmd {
                h.send(cmd);
            }
            return Ok(());
        }
        if let Some(q) = self.resolving.get_mut(name) {
            q.extend(cmd);
            return Ok(());
        }
        if let Some(r) = self.retiring.get_mut(name) {
            r.hold(cmd);
            return Ok(());
        }
        Err(cmd)
    }

    /// Look `name` up in libvirt (a future of its own); `waiting` waits for it.
    fn look_up(&mut self, name: &str, waiting: Vec<DomainCmd>) {
        self.resolving.insert(name.to_string(), waiting);
        let (ctx, tx, name) = (self.ctx.clone(), self.resolved.clone(), name.to_string());
        tokio::spawn(async move {
            let r = domain::resolve(&ctx, &name).await;
            let _ = tx.send((name, r));
        });
    }

    /// A domain was looked up: start its task and hand it what waited, or
    /// answer what waited.
    fn resolved(&mut self, name: String, r: Result<Option<Resolved>, LibvirtError>) {
        let waiting = self.resolving.remove(&name).unwrap_or_default();
        self.peer_lookups.remove(&name);
        let found = match r {
            Ok(Some(f)) => f,
            // The peer's messages may still need a task there ([`peer`]).
            Ok(None) => return self.unknown(name, waiting),
            Err(e) => {
                tracing::warn!(domain = %name, error = %e, "cannot look the domain up in libvirt: what came for it is dropped");
                answer_all(waiting, || CommandError::Failed(e.to_string()));
                return;
            }
        };
        let h = domain::spawn(&name, found, self.ctx.clone(), self.cancel.child_token());
        for c in waiting {
            h.send(c);
        }
        self.domains.insert(name, h);
    }

    fn command(&mut self, c: DaemonCmd) {
        match c {
            DaemonCmd::Adopt { domain } => self.route(&domain, None),
            DaemonCmd::Enable {
                domain,
                opts,
                reply,
            } => self.route(&domain, Some(DomainCmd::Enable(opts, reply))),
            DaemonCmd::Disable { domain, reply } => {
                self.route(&domain, Some(DomainCmd::Disable(reply)))
            }
            DaemonCmd::Failover { domain, reply } => {
                self.route(&domain, Some(DomainCmd::Failover(reply)))
            }
            DaemonCmd::MayStart { domain, reply } => start::may_start(&self.ctx, domain, reply),
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
            DaemonCmd::Status { domain, reply } => match self.task(&domain) {
                Some(h) => {
                    let _ = reply.send(Ok(h.status()));
                }
                None => self.status_untracked(domain, reply),
            },
            DaemonCmd::List { reply } => {
                let mut v: Vec<Status> = self.tasks().map(|h| h.status()).collect();
                v.sort_by(|a, b| a.domain.cmp(&b.domain));
                let _ = reply.send(v);
            }
        }
    }

    /// A domain ftd has not touched: report what libvirt says of it (from a
    /// future of its own).
    fn status_untracked(
        &self,
        domain: String,
        reply: oneshot::Sender<Result<Status, CommandError>>,
    ) {
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let r = match ctx.lv.state(&domain).await {
                Err(LibvirtError::NoDomain(_)) => Err(CommandError::NoSuchDomain(domain.clone())),
                Err(e) => Err(CommandError::Failed(e.to_string())),
                Ok(st) => Ok(Status {
                    domain: domain.clone(),
                    state: if matches!(st, DomState::Running | DomState::Paused) {
                        State::Unprotected
                    } else {
                        State::Stopped
                    },
                    wanted: false,
                    peer: ctx.peer.peer_host().to_string(),
                    peer_up: ctx.peer.is_up(),
                    checkpoints: 0,
                    last_checkpoint_age: None,
                    last_error: None,
                    last_failover: None,
                }),
            };
            let _ = reply.send(r);
        });
    }

    /// Every task (ending ones included).
    fn tasks(&self) -> impl Iterator<Item = &DomainHandle> {
        self.domains
            .values()
            .chain(self.retiring.values().map(|r| &r.handle))
    }

    fn task(&self, name: &str) -> Option<&DomainHandle> {
        self.domains
            .get(name)
            .or(self.retiring.get(name).map(|r| &r.handle))
    }

    fn broadcast(&mut self, ev: Event) {
        for h in self.domains.values() {
            h.send(DomainCmd::Event(ev.clone()));
        }
        for r in self.retiring.values_mut() {
            r.hold(Some(DomainCmd::Event(ev.clone())));
        }
        // A domain still being looked up needs no event: its task starts
        // from the link's state at that moment (`PeerHandle::is_up`, `host_lost`).
    }
}

/// Answer every request that waited for a domain that cannot have a task.
fn answer_all(waiting: Vec<DomainCmd>, err: impl Fn() -> CommandError) {
    for c in waiting {
        match c {
            DomainCmd::Enable(_, r) | DomainCmd::Disable(r) | DomainCmd::Failover(r) => {
                let _ = r.send(Err(err()));
            }
            DomainCmd::Spec(r) => {
                let _ = r.send(Err(err().to_string()));
            }
            DomainCmd::Retire(r) => {
                let _ = r.send(false);
            }
            DomainCmd::Event(_) | DomainCmd::Qmp(_) => {}
        }
    }
}
