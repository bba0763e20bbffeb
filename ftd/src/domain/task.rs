//! The domain task's loop: the only owner of the domain's [`Coordinator`]. It takes
//! commands ([`DomainCmd`]) and QEMU events, runs the coordinator's actions (peer
//! messages sent at once, steps one at a time with their outcome fed back as an
//! event, retry timers, arbitration), publishes a snapshot after every turn, and
//! ticks a monitor ([`super::monitor`]) for what no event reports.

use super::events::{self, QmpMeaning, Seen};
use super::handle::{CommandError, DomainCmd, Snapshot, UserReply};
use super::{disk, steps, HostCtx, StepOut};
use crate::arbiter::Role;
use crate::colo::plan::{Ports, Wiring};
use crate::colo::spec::SecondarySpec;
use crate::coordinator::{Action, Coordinator, Event, State, Step, Verdict};
use crate::observe::{Publisher, Status, Transition};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(super) type StepFuture = Pin<Box<dyn Future<Output = StepOut> + Send>>;

/// The task's own state (one owner: the task).
pub(super) struct Task {
    pub name: String,
    pub ctx: HostCtx,
    pub coord: Coordinator,
    pub queue: VecDeque<Step>,
    /// The step running now, and its future.
    pub running: Option<(Step, StepFuture)>,
    /// Cancelled when the running step's attempt is given up.
    pub stop: CancellationToken,
    pub wiring: Option<Wiring>,
    pub spec: Option<SecondarySpec>,
    /// libvirt's last word: the domain is defined here (transient copies
    /// included).
    pub defined: bool,
    /// Since when [`Task::retirable`] has held.
    pub retirable_since: Option<Instant>,
    pub gen: u32,
    pub last_checkpoint: Option<Instant>,
    pub publisher: Publisher,
    pub snapshot: watch::Sender<Snapshot>,
    /// What the event rules remember ([`events::Seen`]); reset on a state change.
    pub seen: Seen,
    /// The configured checkpoint interval is set in QEMU (COLO starts with a
    /// short one, see [`crate::colo::plan::FIRST_CHECKPOINT_MS`]).
    pub interval_set: bool,
    /// Monitor ticks so far (libvirt's state is polled every few).
    pub ticks: u64,
    /// The last state transition, not yet published.
    pub transition: Option<Transition>,
    /// The arbiter's verdicts on the lost peer, while the coordinator waits for them.
    pub arbitration: Option<mpsc::Receiver<Verdict>>,
    /// The coordinator's retry timer for a failed protection attempt
    /// ([`Action::RetryIn`]): the attempt's number and when it fires.
    pub retry: Option<(u32, Pin<Box<tokio::time::Sleep>>)>,
}

/// How often the monitor looks at COLO and libvirt.
const TICK: Duration = Duration::from_millis(500);

impl Task {
    pub(super) async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<DomainCmd>,
        cancel: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tracing::info!(domain = %self.name, role = %self.coord.state().role(), state = %self.coord.state().name(), "domain task started");
        loop {
            self.cut_abandoned_step().await;
            self.start_next_step();
            self.publish();
            // Commands and events first: a slow monitor tick (QMP waiting on a
            // stuck QEMU) must not hold back the event that resolves it.
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                cmd = rx.recv() => match cmd {
                    None => break,
                    Some(DomainCmd::Retire(reply)) => {
                        if self.retire(reply) {
                            return;
                        }
                    }
                    Some(cmd) => self.command(cmd).await,
                },
                out = async { self.running.as_mut().expect("guarded").1.as_mut().await }, if self.running.is_some() => {
                    self.running = None;
                    if let Some(w) = out.wiring { self.wiring = Some(w); }
                    if let Some(g) = out.gen { self.gen = self.gen.max(g); }
                    if let Some(s) = out.spec { self.adopt_settings(&s); self.spec = Some(s); }
                    self.apply(out.event);
                }
                v = async { self.arbitration.as_mut().expect("guarded").recv().await }, if self.arbitration.is_some() => match v {
                    Some(v) => self.apply(Event::Verdict(v)),
                    None => self.arbitration = None,
                },
                n = async { let (n, t) = self.retry.as_mut().expect("guarded"); t.as_mut().await; *n }, if self.retry.is_some() => {
                    self.retry = None;
                    tracing::info!(domain = %self.name, attempt = n, "trying protection again");
                    self.apply(Event::Retry(n));
                }
                _ = tick.tick() => self.monitor().await,
            }
            // A verdict only matters while the coordinator waits for one.
            if !matches!(
                self.coord.state(),
                State::Arbitrating | State::SecondaryArbitrating
            ) {
                self.arbitration = None;
            }
        }
        tracing::info!(domain = %self.name, "domain task stopped");
    }

    async fn command(&mut self, cmd: DomainCmd) {
        match cmd {
            DomainCmd::Event(ev) => {
                // The secondary's COLO ended: is this copy still alive? Look now
                // rather than at the next tick (its death hands the domain over).
                let look = matches!(ev, Event::Peer(crate::coordinator::PeerMsg::ColoEnded));
                self.apply(ev);
                if look {
                    self.look_at_copy().await;
                    self.monitor().await;
                }
            }
            DomainCmd::Enable(opts, reply) => {
                let r = self.enable(&opts).await;
                let _ = reply.send(r);
            }
            DomainCmd::Disable(reply) => {
                // Answered once the mark is gone too: a caller told
                // "unprotected" finds the domain unmarked (a restart of ftd
                // right after it does not protect it again).
                let (tx, rx) = tokio::sync::oneshot::channel();
                if self.user(Event::Disable, None, tx) {
                    super::enable::unmark(&self.ctx, &self.name).await;
                }
                if let Ok(r) = rx.await {
                    let _ = reply.send(r);
                }
            }
            DomainCmd::Failover(reply) => {
                self.user(Event::SwitchOver, None, reply);
            }
            DomainCmd::Spec(reply) => {
                let r = steps::secondary_spec(&self.name, &self.ctx, self.spec_ports()).await;
                let _ = reply.send(r);
            }
            DomainCmd::Qmp(ev) => self.qmp_event(ev).await,
            // Taken in `run`.
            DomainCmd::Retire(reply) => {
                let _ = reply.send(false);
            }
        }
    }

    /// The ports a spec for the peer names: a domain this host prepares to
    /// protect takes its slot now (the sync that follows uses it); any other
    /// has its slot already, or is not protected from here. So a peer asking
    /// for specs takes no slot of a domain this host does not protect.
    fn spec_ports(&self) -> Result<Ports, String> {
        let st = self.coord.state();
        if st == State::Preparing {
            return self.ctx.ports.ports(&self.name);
        }
        self.ctx.ports.existing(&self.name).unwrap_or_else(|| {
            Err(format!(
                "this host has no COLO ports for it: it is not protected from here (it is {})",
                st.name()
            ))
        })
    }

    /// A user request (`Enable` with its chosen settings, `Disable`,
    /// `SwitchOver`): answered with the state reached right after it, or why it
    /// was refused. Returns whether it was accepted.
    pub(super) fn user(
        &mut self,
        ev: Event,
        settings: Option<super::DomainSettings>,
        reply: UserReply,
    ) -> bool {
        // The link may be up before its Up event reached this task.
        if self.ctx.peer.is_up() && !self.coord.peer_up() {
            self.apply(Event::PeerUp);
        }
        let before = self.coord.reported_state();
        let label = format!("{ev:?} requested");
        let r = match self.coord.on(ev) {
            Ok(acts) => {
                if let Some(s) = settings {
                    self.configure(s);
                }
                self.execute(acts);
                let to = self.coord.reported_state();
                tracing::info!(domain = %self.name, role = %to.role(), state = %to.name(), "user request accepted");
                self.transitioned(before, label);
                Ok(to)
            }
            Err(e) => Err(CommandError::Refused(e.to_string())),
        };
        let ok = r.is_ok();
        // Published before the reply, so that a Status right after it reads
        // what the request did.
        self.publish();
        let _ = reply.send(r);
        ok
    }

    /// The secondary takes the domain's own settings from the primary's mark, so
    /// that after a takeover it protects with them (not with this host's defaults).
    fn adopt_settings(&mut self, spec: &SecondarySpec) {
        if let Ok(Some(p)) = crate::annotation::from_domain_xml(&spec.primary_live_xml) {
            let s = super::DomainSettings {
                checkpoint_ms: p.checkpoint_interval_ms.unwrap_or(self.ctx.checkpoint_ms),
                auto_reprotect: p.auto_reprotect.unwrap_or(self.ctx.auto_reprotect),
            };
            self.configure(s);
        }
    }

    pub(super) fn configure(&mut self, s: super::DomainSettings) {
        self.ctx.checkpoint_ms = s.checkpoint_ms;
        self.ctx.auto_reprotect = s.auto_reprotect;
        self.coord.set_settings(self.ctx.settings(s.auto_reprotect));
        tracing::info!(domain = %self.name, checkpoint_ms = s.checkpoint_ms, auto_reprotect = s.auto_reprotect, "settings");
    }

    /// Tell the observers what changed since the last time, if anything did.
    pub(super) fn publish(&mut self) {
        let now = self.status();
        let last_checkpoint = self.last_checkpoint;
        self.retirable_since = match (self.retirable(), self.retirable_since) {
            (true, Some(t)) => Some(t),
            (true, None) => Some(Instant::now()),
            (false, _) => None,
        };
        let retirable_since = self.retirable_since;
        let held = super::retire::held_for_peer(self.defined, self.coord.state());
        self.snapshot.send_if_modified(|s| {
            let changed = s.status != now
                || s.last_checkpoint != last_checkpoint
                || s.retirable_since != retirable_since
                || s.held_for_peer != held;
            if changed {
                s.status = now.clone();
                s.last_checkpoint = last_checkpoint;
                s.retirable_since = retirable_since;
                s.held_for_peer = held;
            }
            changed
        });
        let full = Status {
            last_checkpoint_age: last_checkpoint.map(|t| t.elapsed().as_secs_f64()),
            ..now
        };
        if let Some(c) = self.publisher.diff(full, self.transition.take()) {
            self.ctx.observer.publish(c);
        }
    }

    /// The status without the checkpoint's age (worked out when read).
    pub(super) fn status(&self) -> Status {
        Status {
            domain: self.name.clone(),
            state: self.coord.reported_state(),
            wanted: self.coord.wanted(),
            peer: self.ctx.peer.peer_host().to_string(),
            peer_up: self.coord.peer_up(),
            checkpoints: self.coord.checkpoints(),
            last_checkpoint_age: None,
            last_error: self.coord.last_error().map(String::from),
            last_failover: self.coord.last_failover().map(String::from),
        }
    }

    /// Bookkeeping after the coordinator accepted something: a state change is
    /// logged, remembered for the observers and resets what the event rules saw.
    fn transitioned(&mut self, before: State, reason: String) {
        let after = self.coord.reported_state();
        if after == before {
            return;
        }
        tracing::info!(domain = %self.name, role = %after.role(), from = %before.name(), state = %after.name(), event = %reason, "state changed");
        self.transition = Some(Transition {
            from: before,
            to: after,
            reason,
        });
        self.seen = Seen::default();
        self.interval_set = false;
    }

    pub(super) fn apply(&mut self, ev: Event) {
        let before = self.coord.reported_state();
        let label = format!("{ev:?}");
        let daemon_lost = ev == Event::PeerDaemonLost;
        let found = matches!(ev, Event::Found(_));
        // A found state is checked with the peer, which must be known up first.
        if found && self.ctx.peer.is_up() && !self.coord.peer_up() {
            self.apply(Event::PeerUp);
        }
        match self.coord.on(ev) {
            Ok(acts) => {
                if daemon_lost && matches!(self.coord.state(), State::Protected | State::Secondary)
                {
                    tracing::warn!(domain = %self.name, role = %self.coord.state().role(), state = %self.coord.reported_state().name(),
                        "the peer's ftd is gone but its host answers: COLO keeps running; its restart re-attaches");
                }
                if found {
                    let to = self.coord.reported_state();
                    match self.coord.last_error().or(self.coord.last_failover()) {
                        Some(why) => {
                            tracing::warn!(domain = %self.name, role = %to.role(), state = %to.name(), found = %label, %why, "re-attach: not re-attached as it ran")
                        }
                        None => {
                            tracing::info!(domain = %self.name, role = %to.role(), state = %to.name(), found = %label, "re-attach: decided")
                        }
                    }
                }
                self.transitioned(before, label);
                self.execute(acts);
            }
            Err(e) => {
                tracing::warn!(domain = %self.name, event = %label, error = %e, "event ignored")
            }
        }
        // The other half's host was found gone before this task knew what it
        // holds (ftd started after it died): handle that loss now.
        if found && self.ctx.peer.host_lost() {
            self.apply(Event::PeerLost);
        }
    }

    pub(super) fn execute(&mut self, acts: Vec<Action>) {
        for a in acts {
            match a {
                Action::Send(msg) => {
                    if let Err(e) = self.ctx.peer.send(self.name.clone(), msg.clone()) {
                        tracing::warn!(domain = %self.name, ?msg, error = %e, "peer message not sent");
                    }
                }
                Action::Run(step) => self.queue.push_back(step),
                Action::RetryIn { after, attempt } => {
                    tracing::warn!(domain = %self.name, attempt, after_s = after.as_secs(), "protection failed; trying again later");
                    self.retry = Some((attempt, Box::pin(tokio::time::sleep(after))));
                }
                Action::Arbitrate => {
                    let role = if self.coord.state().holds_secondary() {
                        Role::Secondary
                    } else {
                        Role::Primary
                    };
                    let peer_up = self.coord.peer_up();
                    self.arbitration = match (&self.ctx.arbiter, &self.ctx.witness) {
                        (_, Some(_)) => super::claim::go_live(&self.ctx, &self.name, role, peer_up),
                        (Some(a), None) => Some(a.arbitrate(&self.name, role)),
                        (None, None) => {
                            tracing::error!(domain = %self.name, "the coordinator asked for an arbiter, but none is configured");
                            None
                        }
                    };
                }
            }
        }
    }

    /// A protection attempt given up while its step runs (the peer was lost
    /// while the disk synced, say): the step sends no further command (opening
    /// the NBD connection to a dead peer would block QEMU, guest included, until
    /// TCP gives up: 40 s seen in the fault matrix), and every connection to the
    /// peer is cut at once ([`crate::colo::plan::cut_peer`]), so that the step
    /// ends now and the clean-up queued behind it runs.
    async fn cut_abandoned_step(&mut self) {
        let Some((st, _)) = &self.running else { return };
        let st = *st;
        if self.stop.is_cancelled() || !matches!(st, Step::Sync | Step::StartColo) {
            return;
        }
        if self.coord.waits_for(st) {
            return;
        }
        self.stop.cancel();
        tracing::warn!(domain = %self.name, step = ?st, "attempt abandoned: cutting the connections to the peer");
        let cut = crate::colo::plan::cut_peer();
        if let Err(e) = crate::runner::run(&*self.ctx.lv, &self.name, &cut).await {
            tracing::warn!(domain = %self.name, error = %e, "cutting the connections to the peer");
        }
    }

    fn start_next_step(&mut self) {
        if self.running.is_some() {
            return;
        }
        let Some(step) = self.queue.pop_front() else {
            return;
        };
        if step == Step::Sync {
            self.gen += 1;
        }
        tracing::info!(domain = %self.name, ?step, "step started");
        self.stop = CancellationToken::new();
        let fut = steps::run(
            step,
            steps::StepCtx {
                name: self.name.clone(),
                ctx: self.ctx.clone(),
                gen: self.gen,
                wiring: self.wiring.clone(),
                spec: self.spec.clone(),
                stop: self.stop.clone(),
            },
        );
        self.running = Some((step, Box::pin(fut)));
    }

    /// QEMU monitor events, read by [`events::qmp_event`].
    async fn qmp_event(&mut self, ev: crate::qmp_events::QmpEvent) {
        let st = self.coord.state();
        match events::qmp_event(st, &mut self.seen, &ev.event, &ev.details) {
            QmpMeaning::Nothing => {
                tracing::debug!(domain = %self.name, event = %ev.event, "QMP event")
            }
            QmpMeaning::Feed(e) => {
                if e == Event::Checkpoint {
                    self.last_checkpoint = Some(Instant::now());
                }
                if let Event::ColoExited(reason) = &e {
                    tracing::info!(domain = %self.name, %reason, "COLO exited");
                }
                self.apply(e);
            }
            QmpMeaning::StaleColoExit { mode, expected } => {
                tracing::info!(domain = %self.name, mode, expected, "COLO_EXIT of a copy in another role ignored (a previous QEMU)");
            }
            QmpMeaning::Libvirt(seen) => {
                tracing::info!(domain = %self.name, event = %ev.details["event"], "libvirt lifecycle event");
                self.libvirt_says(Some(seen)).await;
            }
            QmpMeaning::Disk => {
                tracing::warn!(domain = %self.name, event = %ev.event, details = %ev.details, "disk replication reports a problem");
                let here = disk::Here {
                    host: &self.ctx.host,
                    peer: self.ctx.peer.peer_host(),
                    overlay_dir: &self.ctx.overlay_dir,
                };
                if let Some(why) = disk::failure(st, &ev.event, &ev.details, here) {
                    tracing::error!(domain = %self.name, reason = %why, "the replicated disk failed");
                    self.apply(Event::DiskFailed(why));
                }
            }
        }
    }
}
