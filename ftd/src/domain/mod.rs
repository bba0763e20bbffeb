//! One task per protected domain: the only owner of its [`Coordinator`]. Commands
//! (user requests, peer messages, link changes) arrive over a channel; the
//! coordinator's actions are executed here: peer messages are sent at once, steps
//! run one at a time (their outcome comes back as an event), and a monitor polls
//! COLO and libvirt for checkpoints, COLO exits and lifecycle changes.

mod disk;
mod fence;
mod reattach;
mod steps;

pub(crate) use reattach::secondary_dir;

use crate::arbiter::{ArbiterHandle, Role};
use crate::colo::plan::Wiring;
use crate::colo::spec::SecondarySpec;
use crate::coordinator::{Action, Coordinator, Event, Settings, State, Step, Verdict};
use crate::libvirt::{DomState, Libvirt};
use crate::observe::{Observer, Publisher, Transition};
use crate::peer::PeerHandle;
use serde_json::json;
use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// What this host contributes to every protected domain.
#[derive(Debug, Clone)]
pub struct HostCtx {
    pub host: String,
    /// This host's address on the replication network.
    pub rep_addr: String,
    /// The peer's address on the replication network.
    pub peer_rep_addr: String,
    /// Where secondaries' images go.
    pub overlay_dir: PathBuf,
    pub checkpoint_ms: u64,
    pub compare_timeout_ms: u64,
    pub sync_timeout: Duration,
    pub auto_reprotect: bool,
    pub lv: Libvirt,
    pub peer: PeerHandle,
    /// Every peer name in the configuration (`peer` is the one linked to).
    pub peers: Vec<String>,
    /// Where status changes go (the D-Bus objects and signals).
    pub observer: Observer,
    /// Who decides which host keeps a domain when the peer is lost (`None`: the
    /// peer is taken for dead, unsafe against partitions).
    pub arbiter: Option<ArbiterHandle>,
}

/// A domain's own protection settings (from `Enable`'s options or its annotation;
/// the configuration's defaults otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainSettings {
    pub checkpoint_ms: u64,
    pub auto_reprotect: bool,
}

/// A snapshot of one domain's protection, for the API.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub domain: String,
    pub state: State,
    pub wanted: bool,
    pub peer: String,
    pub peer_up: bool,
    pub checkpoints: u64,
    /// Seconds since the last checkpoint, if any was seen.
    pub last_checkpoint_age: Option<f64>,
    pub last_error: Option<String>,
    pub last_failover: Option<String>,
}

impl Status {
    /// Equal in everything but the age of the last checkpoint (which grows by itself).
    pub fn same_but_age(a: &Status, b: &Status) -> bool {
        Status {
            last_checkpoint_age: None,
            ..a.clone()
        } == Status {
            last_checkpoint_age: None,
            ..b.clone()
        }
    }
}

type Reply<T> = oneshot::Sender<T>;

/// Requests to a domain task.
#[derive(Debug)]
pub enum DomainCmd {
    /// An event from outside (peer link, peer message).
    Event(Event),
    /// A user request (`Enable`, `Disable`, `SwitchOver`), answered with the state
    /// reached right after it, or why it was refused. With settings (`Enable`),
    /// they apply only if the request is accepted.
    User(Event, Option<DomainSettings>, Reply<Result<State, String>>),
    Status(Reply<Status>),
    /// The peer asks for what it needs to build the secondary.
    Spec(Reply<Result<SecondarySpec, String>>),
    /// A QEMU monitor event of this domain.
    Qmp(crate::qmp_events::QmpEvent),
}

/// Handle to a domain task.
#[derive(Debug, Clone)]
pub struct DomainHandle {
    pub name: String,
    tx: mpsc::Sender<DomainCmd>,
}

impl DomainHandle {
    pub async fn send(&self, cmd: DomainCmd) -> bool {
        self.tx.send(cmd).await.is_ok()
    }

    pub async fn user(&self, ev: Event) -> Result<State, String> {
        self.request(ev, None).await
    }

    /// `Enable` with the domain's settings (used only if it is accepted).
    pub async fn enable(&self, settings: DomainSettings) -> Result<State, String> {
        self.request(Event::Enable, Some(settings)).await
    }

    async fn request(&self, ev: Event, settings: Option<DomainSettings>) -> Result<State, String> {
        let (tx, rx) = oneshot::channel();
        if !self.send(DomainCmd::User(ev, settings, tx)).await {
            return Err(format!("domain {}: its task has stopped", self.name));
        }
        rx.await
            .unwrap_or_else(|_| Err(format!("domain {}: no answer", self.name)))
    }

    pub async fn status(&self) -> Option<Status> {
        let (tx, rx) = oneshot::channel();
        self.send(DomainCmd::Status(tx)).await.then_some(())?;
        rx.await.ok()
    }

    pub async fn spec(&self) -> Result<SecondarySpec, String> {
        let (tx, rx) = oneshot::channel();
        if !self.send(DomainCmd::Spec(tx)).await {
            return Err(format!("domain {}: its task has stopped", self.name));
        }
        rx.await.unwrap_or_else(|_| Err("no answer".into()))
    }
}

/// What a running step yields: the event to feed back, and side results.
pub(crate) struct StepOut {
    event: Event,
    wiring: Option<Wiring>,
    spec: Option<SecondarySpec>,
    /// Re-attach: the newest quorum generation the plans left in QEMU (the next
    /// protection attempt must use a new one).
    gen: Option<u32>,
}

type StepFuture = Pin<Box<dyn Future<Output = StepOut> + Send>>;

/// The task's own state (one owner: the task).
struct Task {
    name: String,
    ctx: HostCtx,
    slot: u16,
    coord: Coordinator,
    queue: VecDeque<Step>,
    /// The step running now, and its future.
    running: Option<(Step, StepFuture)>,
    /// Cancelled when the running step's attempt is given up.
    stop: CancellationToken,
    wiring: Option<Wiring>,
    spec: Option<SecondarySpec>,
    gen: u32,
    last_checkpoint: Option<Instant>,
    publisher: Publisher,
    /// A STOP was seen in COLO: the next RESUME completes a checkpoint.
    in_checkpoint: bool,
    /// `query-colo-status` showed this side in COLO since the state last changed
    /// (before that, mode `none` only means COLO has not started yet).
    colo_seen: bool,
    /// The configured checkpoint interval is set in QEMU (COLO starts with a
    /// short one, see [`crate::colo::plan::FIRST_CHECKPOINT_MS`]).
    interval_set: bool,
    /// The last state transition, not yet published.
    transition: Option<Transition>,
    /// The arbiter's verdicts on the lost peer, while the coordinator waits for them.
    arbitration: Option<mpsc::Receiver<Verdict>>,
    /// The coordinator's retry timer for a failed protection attempt
    /// ([`Action::RetryIn`]): the attempt's number and when it fires.
    retry: Option<(u32, Pin<Box<tokio::time::Sleep>>)>,
}

/// Start the task for `name`, found in `initial` state on this host. `marked`:
/// the domain carries the protection annotation, with these settings (protection
/// is wanted).
pub fn spawn(
    name: &str,
    initial: State,
    marked: Option<DomainSettings>,
    slot: u16,
    ctx: HostCtx,
    cancel: CancellationToken,
) -> DomainHandle {
    let (tx, rx) = mpsc::channel(64);
    let mut coord = Coordinator::new(
        initial,
        Settings {
            auto_reprotect: ctx.auto_reprotect,
            arbiter: ctx.arbiter.is_some(),
        },
    );
    coord.set_wanted(marked.is_some());
    if ctx.peer.is_up() {
        let _ = coord.on(Event::PeerUp);
    }
    let start = coord.start();
    let mut task = Task {
        name: name.to_string(),
        ctx,
        slot,
        coord,
        queue: VecDeque::new(),
        running: None,
        stop: CancellationToken::new(),
        wiring: None,
        spec: None,
        gen: 0,
        last_checkpoint: None,
        publisher: Publisher::default(),
        in_checkpoint: false,
        colo_seen: false,
        interval_set: false,
        transition: None,
        arbitration: None,
        retry: None,
    };
    if let Some(s) = marked {
        task.configure(s);
    }
    task.execute(start);
    tokio::spawn(task.run(rx, cancel));
    DomainHandle {
        name: name.to_string(),
        tx,
    }
}

/// The monitor tick's QMP probe: short, a stuck QEMU must not hold up the task.
const MONITOR_QMP_DEADLINE: Duration = Duration::from_secs(1);

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<DomainCmd>, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
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
            DomainCmd::User(ev, settings, reply) => {
                // The link may be up before its Up event reached this task.
                if self.ctx.peer.is_up() && !self.coord.peer_up() {
                    self.apply(Event::PeerUp);
                }
                let before = self.coord.reported_state();
                let ev_label = format!("{ev:?}");
                let r = self.coord.on(ev).map_err(|e| e.to_string());
                let r = r.map(|acts| {
                    if let Some(s) = settings {
                        self.configure(s);
                    }
                    self.execute(acts);
                    self.coord.reported_state()
                });
                if r.is_ok() {
                    let to = self.coord.reported_state();
                    tracing::info!(domain = %self.name, role = %to.role(), state = %to.name(), "user request accepted");
                    if to != before {
                        self.transition = Some(Transition {
                            from: before,
                            to,
                            reason: format!("{ev_label} requested"),
                        });
                        self.colo_seen = false;
                        self.in_checkpoint = false;
                        self.interval_set = false;
                    }
                }
                let _ = reply.send(r);
            }
            DomainCmd::Status(reply) => {
                let _ = reply.send(self.status());
            }
            DomainCmd::Spec(reply) => {
                let r = steps::secondary_spec(&self.name, &self.ctx, self.slot).await;
                let _ = reply.send(r);
            }
            DomainCmd::Qmp(ev) => self.qmp_event(ev),
        }
    }

    /// The secondary takes the domain's own settings from the primary's mark, so
    /// that after a takeover it protects with them (not with this host's defaults).
    fn adopt_settings(&mut self, spec: &SecondarySpec) {
        if let Ok(Some(p)) = crate::annotation::from_domain_xml(&spec.primary_live_xml) {
            let s = DomainSettings {
                checkpoint_ms: p.checkpoint_interval_ms.unwrap_or(self.ctx.checkpoint_ms),
                auto_reprotect: p.auto_reprotect.unwrap_or(self.ctx.auto_reprotect),
            };
            self.configure(s);
        }
    }

    fn configure(&mut self, s: DomainSettings) {
        self.ctx.checkpoint_ms = s.checkpoint_ms;
        self.ctx.auto_reprotect = s.auto_reprotect;
        self.coord.set_settings(Settings {
            auto_reprotect: s.auto_reprotect,
            arbiter: self.ctx.arbiter.is_some(),
        });
        tracing::info!(domain = %self.name, checkpoint_ms = s.checkpoint_ms, auto_reprotect = s.auto_reprotect, "settings");
    }

    /// Tell the observer what changed since the last time, if anything did.
    fn publish(&mut self) {
        let now = self.status();
        if let Some(c) = self.publisher.diff(now, self.transition.take()) {
            self.ctx.observer.publish(c);
        }
    }

    fn status(&self) -> Status {
        Status {
            domain: self.name.clone(),
            state: self.coord.reported_state(),
            wanted: self.coord.wanted(),
            peer: self.ctx.peer.peer_host().to_string(),
            peer_up: self.coord.peer_up(),
            checkpoints: self.coord.checkpoints(),
            last_checkpoint_age: self.last_checkpoint.map(|t| t.elapsed().as_secs_f64()),
            last_error: self.coord.last_error().map(String::from),
            last_failover: self.coord.last_failover().map(String::from),
        }
    }

    fn apply(&mut self, ev: Event) {
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
                let after = self.coord.reported_state();
                if after != before {
                    tracing::info!(domain = %self.name, role = %after.role(), from = %before.name(), state = %after.name(), event = %label, "state changed");
                    self.transition = Some(Transition {
                        from: before,
                        to: after,
                        reason: label,
                    });
                    self.colo_seen = false;
                    self.in_checkpoint = false;
                    self.interval_set = false;
                }
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

    fn execute(&mut self, acts: Vec<Action>) {
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
                Action::Arbitrate => match &self.ctx.arbiter {
                    Some(a) => {
                        let role = if self.coord.state().holds_secondary() {
                            Role::Secondary
                        } else {
                            Role::Primary
                        };
                        self.arbitration = Some(a.arbitrate(&self.name, role));
                    }
                    None => {
                        tracing::error!(domain = %self.name, "the coordinator asked for an arbiter, but none is configured")
                    }
                },
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
        if let Err(e) = crate::runner::run(&self.ctx.lv, &self.name, &cut).await {
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
            self.name.clone(),
            self.ctx.clone(),
            self.slot,
            self.gen,
            self.wiring.clone(),
            self.spec.clone(),
            self.stop.clone(),
        );
        self.running = Some((step, Box::pin(fut)));
    }

    /// QEMU monitor events: in COLO every checkpoint pauses and resumes the guest
    /// (QEMU 7.2 has no checkpoint counter in QMP), and COLO_EXIT says COLO ended.
    fn qmp_event(&mut self, ev: crate::qmp_events::QmpEvent) {
        let st = self.coord.state();
        match ev.event.as_str() {
            // A checkpoint stops and resumes the guest; the first RESUME after
            // COLO starts ends the initial migration (its STOP came before) and
            // is not a checkpoint.
            "STOP" if matches!(st, State::Protected | State::Secondary) => {
                self.in_checkpoint = true;
            }
            "RESUME" if matches!(st, State::Protected | State::Secondary) && self.in_checkpoint => {
                self.in_checkpoint = false;
                self.last_checkpoint = Some(Instant::now());
                self.apply(Event::Checkpoint);
            }
            "COLO_EXIT" => {
                let reason = ev.details["reason"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_string();
                let mode = ev.details["mode"].as_str().unwrap_or("unknown");
                tracing::info!(domain = %self.name, %reason, mode, "COLO exited");
                // A copy this host no longer runs can still speak: a fenced
                // primary's QEMU, while libvirt destroys it, sees its COLO
                // connections reset once the network heals, and says so after
                // this host already took the secondary's part.
                let expected = st.colo_mode_here();
                if mode != expected {
                    tracing::info!(domain = %self.name, mode, expected, "COLO_EXIT of a copy in another role ignored (a previous QEMU)");
                    return;
                }
                if matches!(
                    st,
                    State::Protected
                        | State::Secondary
                        | State::Starting
                        | State::SecondaryPreparing
                ) {
                    self.apply(Event::ColoExited(reason));
                }
            }
            "QUORUM_REPORT_BAD" | "QUORUM_FAILURE" | "BLOCK_IO_ERROR" => {
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
            _ => tracing::debug!(domain = %self.name, event = %ev.event, "QMP event"),
        }
    }

    /// The secondary's COLO ended: is this host's copy dead? libvirt reports a
    /// killed QEMU as shut off only once it cleaned up (about 2 s after a
    /// SIGKILL), but a monitor command fails at once, saying the monitor closed.
    async fn look_at_copy(&mut self) {
        let st = self.coord.state();
        if !st.runs_primary_here()
            || st == State::SwitchingOver
            || self.running.is_some()
            || !self.queue.is_empty()
        {
            return;
        }
        if let Some(e) = self.monitor_gone().await {
            tracing::warn!(domain = %self.name, error = %e, "this host's copy is gone");
            self.apply(Event::DomainStopped);
        }
    }

    /// The domain's QEMU monitor is closed (its QEMU died), though libvirt may
    /// still call the domain running: the error that says so.
    async fn monitor_gone(&mut self) -> Option<crate::libvirt::LibvirtError> {
        let q = json!({"execute": "query-status"});
        match self
            .ctx
            .lv
            .qmp(&self.name, &q, Duration::from_secs(2))
            .await
        {
            Err(e @ crate::libvirt::LibvirtError::MonitorGone { .. }) => Some(e),
            _ => None,
        }
    }

    /// Poll COLO (a fallback for a missed COLO_EXIT) and libvirt (the domain
    /// started or stopped).
    async fn monitor(&mut self) {
        let st = self.coord.state();
        let lv = self.ctx.lv.clone();
        // The first checkpoint came (fast, on purpose): from now on, the domain's
        // interval. Retried on every tick until QEMU took it.
        if self.coord.reported_state() == State::Protected && !self.interval_set {
            let cmd = crate::colo::plan::checkpoint_delay(self.ctx.checkpoint_ms);
            match lv.qmp(&self.name, &cmd, Duration::from_secs(2)).await {
                Ok(_) => self.interval_set = true,
                Err(e) => {
                    tracing::warn!(domain = %self.name, error = %e, "checkpoint interval not set yet")
                }
            }
        }
        if matches!(st, State::Protected | State::Secondary) && self.running.is_none() {
            let q = lv
                .qmp(
                    &self.name,
                    &json!({"execute": "query-colo-status"}),
                    MONITOR_QMP_DEADLINE,
                )
                .await;
            if let Err(crate::libvirt::LibvirtError::Timeout { .. }) = &q {
                // QEMU is stuck (a checkpoint waiting on a lost peer, typically):
                // libvirt would keep this task waiting too, and the event that
                // unsticks QEMU is what this task must get to. Next tick.
                return;
            }
            if let Ok(v) = &q {
                if v["mode"] != "none" {
                    self.colo_seen = true;
                } else if self.colo_seen {
                    let reason = v["reason"].as_str().unwrap_or("unknown").to_string();
                    self.apply(Event::ColoExited(reason));
                    return;
                }
            }
        }
        if self.running.is_some() || !self.queue.is_empty() {
            return;
        }
        let runs_here = st.runs_primary_here() || st.holds_secondary();
        match lv.state(&self.name).await {
            Ok(DomState::Running | DomState::Paused) if !runs_here => {
                // A copy killed a moment ago is still "running" for libvirt
                // until it has cleaned up (about 2 s): its closed monitor says
                // it did not start again. (Taken for started, it had this host
                // protect it onto the peer that just took it over.)
                if let Some(e) = self.monitor_gone().await {
                    tracing::info!(domain = %self.name, error = %e, "libvirt still lists the dead copy as running: not a start");
                    return;
                }
                self.apply(Event::DomainStarted)
            }
            Ok(DomState::ShutOff) | Err(crate::libvirt::LibvirtError::NoDomain(_))
                if runs_here && st != State::SwitchingOver =>
            {
                self.apply(Event::DomainStopped)
            }
            _ => {}
        }
    }
}
