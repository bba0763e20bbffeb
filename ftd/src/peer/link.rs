//! The link task: the only owner of the connection. It takes handshaken
//! connections from the acceptor or dialer (`connect`), runs one session at a time
//! (heartbeats out, loss detection, frames to [`LinkEvent`]s, [`PeerHandle`]
//! commands to frames), and publishes whether a session is up.
//!
//! Loss detection: every frame received pushes the deadline to now + `detection`;
//! when it passes, the session is lost. Writes are bounded by `detection` too, so a
//! peer that stops reading (its socket buffer full) cannot stall this task.
//!
//! Host or ftd? When a session ends, the link tells the peer's host's death from
//! its ftd's by whether the host still answers ([`super::probe`]):
//! - the peer closed the connection (EOF) or connected again: its host spoke, so
//!   it lives;
//! - silence: while heartbeats are overdue (from half the detection time on) the
//!   link knocks every `interval`; an answer before the deadline means the host
//!   lives (its ftd hangs or died without a FIN), none means it is gone, decided
//!   at the same deadline as before;
//! - anything else (socket error, garbage, a stalled write): one knocking round,
//!   bounded by `detection`, decides.
//!
//! A host that lives gives [`LinkEvent::DaemonLost`], and the link then keeps
//! knocking every `interval`: when the host has not answered for `detection`,
//! [`LinkEvent::Lost`] follows ([`LostReason::HostSilent`]). A host that does not
//! answer gives `Lost` at once. From its start until the first session, the link
//! watches the peer's host the same way: `Lost` ([`LostReason::Unreached`]) if it
//! never answers (a restarted ftd must know, for a COLO pair it re-attaches to,
//! that the other half's host is gone).

use super::connect::Established;
use super::frame::{self, Frame, FrameError, Response, Wire};
use super::handle::{Command, LinkEvent, PeerError, PeerInfo, Session};
use super::inbound::{self, Inbound};
use super::probe::{self, Knocker};
use super::PeerConfig;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{interval, sleep_until, timeout, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, trace, warn};

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LostReason {
    /// No frame arrived for the detection time.
    #[error("nothing heard from the peer for {0:?} (its host is down, its ftd is stuck, or the network is cut)")]
    Silent(Duration),
    /// EOF from the peer.
    #[error("the peer closed the connection (its ftd stopped or restarted)")]
    Closed,
    /// The peer sent bytes that are not a frame.
    #[error("{0}; dropped the connection")]
    Malformed(String),
    /// The socket failed.
    #[error("peer link socket error: {0}")]
    Io(String),
    /// A write did not complete for the detection time.
    #[error("could not write to the peer for {0:?} (it is not reading)")]
    Stalled(Duration),
    /// A handshake frame after the handshake.
    #[error("the peer sent a {0} frame in the middle of a session (protocol bug); dropped the connection")]
    Unexpected(&'static str),
    /// The peer connected again (listener side).
    #[error("the peer connected again; the new connection replaces this one")]
    Replaced,
    /// After its ftd was lost, the peer's host stopped answering too.
    #[error("the peer's ftd was gone, and now its host has not answered for {0:?} either (it is down or cut off)")]
    HostSilent(Duration),
    /// No session came up since this ftd started, and the peer's host has not
    /// answered for this long.
    #[error("no session with the peer since this ftd started, and its host has not answered for {0:?} (it is down or cut off)")]
    Unreached(Duration),
}

impl From<FrameError> for LostReason {
    fn from(e: FrameError) -> LostReason {
        match e {
            FrameError::Closed => LostReason::Closed,
            e if e.is_malformed() => LostReason::Malformed(e.to_string()),
            e => LostReason::Io(e.to_string()),
        }
    }
}

/// The link task's state (made by `spawn`).
pub(super) struct Link {
    pub cfg: Arc<PeerConfig>,
    /// Cancelled by the owner, or by this task when it ends (stops the helper).
    pub cancel: CancellationToken,
    /// The acceptor or dialer task.
    pub helper: Option<JoinHandle<()>>,
    pub conns: mpsc::Receiver<Established>,
    pub cmds: mpsc::Receiver<Command>,
    pub events: mpsc::Sender<LinkEvent>,
    pub state: watch::Sender<Option<Session>>,
    /// Where to knock at the peer's host.
    pub knocker: Knocker,
    pub gen: u64,
    pub last_boot: Option<u64>,
    /// When the peer's host last answered a knock (or closed the connection).
    pub heard: Option<Instant>,
    /// Shared with the handles: `Lost` was reported and no session came up since.
    pub host_lost: Arc<AtomicBool>,
}

/// How a session ended.
enum End {
    Lost(LostReason),
    /// A newer connection arrived (listener side): run it next.
    Replaced(Box<Established>),
    /// Cancelled, or the owner dropped the event receiver.
    Shutdown,
}

/// Requests this side sent, by id: what (for errors) and whom to answer.
type Pending = HashMap<u64, (String, oneshot::Sender<Result<Response, PeerError>>)>;

impl Link {
    pub async fn run(mut self) {
        // Knocking at the host of a peer whose ftd is gone (after DaemonLost, and
        // from the start until the first session).
        let mut watch: Option<BoxFuture<'static, bool>> = Some(self.knock_later());
        'outer: loop {
            let first = tokio::select! {
                _ = self.cancel.cancelled() => break,
                _ = self.events.closed() => break,
                Some(est) = self.conns.recv() => est,
                Some(cmd) = self.cmds.recv() => {
                    self.refuse(cmd, "the link is down");
                    continue;
                }
                alive = async { watch.as_mut().expect("guarded").await }, if watch.is_some() => {
                    if alive {
                        self.heard = Some(Instant::now());
                        watch = Some(self.knock_later());
                    } else {
                        watch = None;
                        self.heard = None;
                        let reason = if self.gen == 0 {
                            LostReason::Unreached(self.cfg.detection)
                        } else {
                            LostReason::HostSilent(self.cfg.detection)
                        };
                        warn!(peer = %self.cfg.peer_host, "peer link: {reason}");
                        self.host_lost.store(true, Ordering::Relaxed);
                        if !self.emit(LinkEvent::Lost { reason }).await {
                            break;
                        }
                    }
                    continue;
                }
            };
            watch = None;
            let mut next = Some(first);
            while let Some(est) = next.take() {
                match self.session(est).await {
                    End::Lost(_) => {}
                    End::Replaced(est) => next = Some(*est),
                    End::Shutdown => break 'outer,
                }
            }
            if self.heard.is_some() {
                watch = Some(self.knock_later());
            }
        }
        // Stop the acceptor or dialer and wait for it, so the listening address is
        // free once the event channel closes.
        self.cancel.cancel();
        if let Some(h) = self.helper.take() {
            let _ = h.await;
        }
        debug!(peer = %self.cfg.peer_host, "peer link: stopped");
    }

    /// A command that cannot go out: a message is dropped (the owner has seen, or
    /// will see, `Lost`), a request is answered with an error.
    fn refuse(&self, cmd: Command, why: &str) {
        match cmd {
            Command::Send { .. } => debug!("peer link: dropped a message: {why}"),
            Command::Request { what, reply, .. } => {
                let _ = reply.send(Err(PeerError::Lost {
                    request: what,
                    peer: self.cfg.peer_host.clone(),
                    reason: why.to_string(),
                }));
            }
        }
    }

    /// Give the owner an event; false when the link must stop.
    async fn emit(&self, ev: LinkEvent) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            r = self.events.send(ev) => r.is_ok(),
        }
    }

    async fn session(&mut self, est: Established) -> End {
        let Established {
            mut wire,
            peer,
            addr,
            done: _done,
        } = est;
        self.gen += 1;
        let gen = self.gen;
        let restarted = self.last_boot.is_some_and(|b| b != peer.boot);
        self.last_boot = Some(peer.boot);
        info!(peer = %peer.host, %addr, boot = peer.boot, restarted, "peer link: up");
        self.host_lost.store(false, Ordering::Relaxed);
        self.state.send_replace(Some(Session {
            gen,
            peer: PeerInfo {
                host: peer.host.clone(),
                boot: peer.boot,
            },
        }));
        let up = LinkEvent::Up {
            host: peer.host,
            boot: peer.boot,
            restarted,
        };
        let mut pending = Pending::new();
        let end = if self.emit(up).await {
            self.drive(&mut wire, gen, &mut pending).await
        } else {
            End::Shutdown
        };
        self.state.send_replace(None);
        // Close now, so the peer sees EOF without waiting for the owner.
        drop(wire);
        let reason = match &end {
            End::Lost(r) => r.to_string(),
            End::Replaced(_) => LostReason::Replaced.to_string(),
            End::Shutdown => "this ftd is shutting down".to_string(),
        };
        for (_, (what, reply)) in pending.drain() {
            let _ = reply.send(Err(PeerError::Lost {
                request: what,
                peer: self.cfg.peer_host.clone(),
                reason: reason.clone(),
            }));
        }
        match end {
            End::Shutdown => End::Shutdown,
            end => {
                let lost = match &end {
                    End::Lost(r) => r.clone(),
                    _ => LostReason::Replaced,
                };
                let ev = if self.host_lives(&lost).await {
                    warn!(peer = %self.cfg.peer_host, "peer link: lost: {reason}; the peer's host answers: its ftd is gone");
                    LinkEvent::DaemonLost { reason: lost }
                } else {
                    warn!(peer = %self.cfg.peer_host, "peer link: lost: {reason}; the peer's host does not answer");
                    self.heard = None;
                    self.host_lost.store(true, Ordering::Relaxed);
                    LinkEvent::Lost { reason: lost }
                };
                if self.emit(ev).await {
                    end
                } else {
                    End::Shutdown
                }
            }
        }
    }

    /// Does the peer's host live, now that the session ended for `why`? (See
    /// the module's "Host or ftd?".)
    async fn host_lives(&mut self, why: &LostReason) -> bool {
        let now = Instant::now();
        let lives = match why {
            LostReason::Closed | LostReason::Replaced => true,
            LostReason::Silent(_) => self
                .heard
                .is_some_and(|h| now.duration_since(h) < self.cfg.detection),
            _ => {
                let deadline = now + self.cfg.detection;
                tokio::select! {
                    _ = self.cancel.cancelled() => false,
                    a = probe::answers_before(self.knocker.clone(), self.cfg.interval, deadline) => a,
                }
            }
        };
        if lives && !matches!(why, LostReason::Silent(_)) {
            self.heard = Some(Instant::now());
        }
        lives
    }

    /// The next knock of the watch: after `interval`, knocking until the host
    /// answers or has been silent for `detection` since it last did.
    fn knock_later(&self) -> BoxFuture<'static, bool> {
        let at = self.knocker.clone();
        let every = self.cfg.interval;
        let deadline = self.heard.unwrap_or_else(Instant::now) + self.cfg.detection;
        Box::pin(async move {
            tokio::time::sleep(every).await;
            probe::answers_before(at, every, deadline).await
        })
    }

    /// The session loop.
    async fn drive(&mut self, wire: &mut Wire, gen: u64, pending: &mut Pending) -> End {
        let detection = self.cfg.detection;
        let mut heartbeat = interval(self.cfg.interval);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut seq = 0u64;
        self.heard = None;
        let silent = sleep_until(Instant::now() + detection);
        tokio::pin!(silent);
        // From half the detection time without a frame on, knock at the peer's
        // host (once it answered, until the next frame, no more).
        let knock_from = detection / 2;
        let knock_at = sleep_until(Instant::now() + knock_from);
        tokio::pin!(knock_at);
        let mut knocking: Option<BoxFuture<'static, bool>> = None;
        let mut knocked = false;
        let mut answers = FuturesUnordered::new();
        // Stalls forgiven since the last frame (bounded: an overloaded host must
        // still detect a dead peer).
        let mut graces = 0u32;
        loop {
            // Biased: a frame already in the socket counts before the silence
            // timer, which may have expired only because this process did not run.
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return End::Shutdown,
                _ = self.events.closed() => return End::Shutdown,
                r = frame::read(wire) => {
                    let f = match r {
                        Ok(f) => f,
                        Err(e) => return End::Lost(e.into()),
                    };
                    let now = Instant::now();
                    silent.as_mut().reset(now + detection);
                    knock_at.as_mut().reset(now + knock_from);
                    (knocking, knocked) = (None, false);
                    graces = 0;
                    // The boundary: bad names go no further, free text is
                    // made safe (`inbound`).
                    let f = match inbound::inbound(f) {
                        Inbound::Deliver(f) => f,
                        Inbound::Drop(why) => {
                            warn!(peer = %self.cfg.peer_host, "peer link: {why}; no state changed");
                            continue;
                        }
                        Inbound::Answer { id, error } => {
                            warn!(peer = %self.cfg.peer_host, "peer link: request {id} refused: {error}");
                            let resp = frame::encode(&Frame::Response { id, result: Err(error) });
                            if let Some(end) = self.write(wire, resp).await {
                                return end;
                            }
                            continue;
                        }
                    };
                    match f {
                        Frame::Heartbeat { seq } => trace!(seq, "peer link: heartbeat"),
                        Frame::Msg { domain, msg } => {
                            if !self.emit(LinkEvent::Msg { domain, msg }).await {
                                return End::Shutdown;
                            }
                        }
                        Frame::Request { id, body } => {
                            let (reply, rx) = oneshot::channel();
                            answers.push(rx.map(move |r| (id, r)));
                            if !self.emit(LinkEvent::Request { body, reply }).await {
                                return End::Shutdown;
                            }
                        }
                        Frame::Response { id, result } => self.answered(pending, id, result),
                        f @ (Frame::Hello { .. } | Frame::Refused { .. }) => {
                            return End::Lost(LostReason::Unexpected(frame::kind(&f)));
                        }
                    }
                }
                _ = &mut silent => {
                    let late = silent.deadline().elapsed();
                    if late > self.cfg.interval && graces < MAX_GRACES {
                        graces += 1;
                        // The timer fired this late: ftd itself (or the whole
                        // machine) was not running, so the silence says nothing
                        // about the peer yet. Give its heartbeats a moment.
                        warn!(late_ms = late.as_millis() as u64, "peer link: ftd was stalled; not counting that time against the peer");
                        silent.as_mut().reset(Instant::now() + stall_grace(self.cfg.interval));
                        continue;
                    }
                    return End::Lost(LostReason::Silent(detection));
                }
                _ = &mut knock_at, if !knocked => {
                    knocked = true;
                    let deadline = silent.deadline();
                    knocking = Some(Box::pin(probe::answers_before(self.knocker.clone(), self.cfg.interval, deadline)));
                }
                alive = async { knocking.as_mut().expect("guarded").await }, if knocking.is_some() => {
                    knocking = None;
                    if alive {
                        debug!(peer = %self.cfg.peer_host, "peer link: no frame for a while, but the peer's host answers");
                        self.heard = Some(Instant::now());
                    }
                }
                _ = heartbeat.tick() => {
                    seq += 1;
                    // The caller gave up on these (timeout): forget them.
                    pending.retain(|_, (_, reply)| !reply.is_closed());
                    let hb = frame::encode(&Frame::Heartbeat { seq });
                    if let Some(end) = self.write(wire, hb).await {
                        return end;
                    }
                }
                Some(cmd) = self.cmds.recv() => {
                    let bytes = match cmd {
                        Command::Send { gen: g, frame } if g == gen => frame,
                        Command::Request { gen: g, id, what, frame, reply } if g == gen => {
                            pending.insert(id, (what, reply));
                            frame
                        }
                        cmd => {
                            self.refuse(cmd, "it was made for an earlier connection");
                            continue;
                        }
                    };
                    if let Some(end) = self.write(wire, Ok(bytes)).await {
                        return end;
                    }
                }
                Some((id, answer)) = answers.next(), if !answers.is_empty() => {
                    let result = answer.unwrap_or_else(|_| {
                        Err("the peer's ftd dropped the request without answering".to_string())
                    });
                    let mut resp = frame::encode(&Frame::Response { id, result });
                    if let Err(e) = &resp {
                        warn!("peer link: cannot send the answer to request {id}: {e}");
                        let result = Err(format!("the answer could not be sent: {e}"));
                        resp = frame::encode(&Frame::Response { id, result });
                    }
                    if let Some(end) = self.write(wire, resp).await {
                        return end;
                    }
                }
                Some(est) = self.conns.recv() => return End::Replaced(Box::new(est)),
            }
        }
    }

    /// A response from the peer: hand it to the waiting caller.
    fn answered(&self, pending: &mut Pending, id: u64, result: Result<Response, String>) {
        let Some((what, reply)) = pending.remove(&id) else {
            warn!(
                id,
                "peer link: dropped a response to an unknown request id \
                 (it timed out already, or was sent on an earlier connection)"
            );
            return;
        };
        let result = result.map_err(|message| PeerError::Remote {
            request: what.clone(),
            peer: self.cfg.peer_host.clone(),
            message,
        });
        if reply.send(result).is_err() {
            debug!(
                id,
                "peer link: the caller of {what} stopped waiting for its answer"
            );
        }
    }

    /// Write one frame, within the detection time; `Some` ends the session.
    async fn write(&self, wire: &mut Wire, bytes: Result<Bytes, FrameError>) -> Option<End> {
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) => return Some(End::Lost(LostReason::Io(e.to_string()))),
        };
        let bound = self.cfg.detection;
        match timeout(bound, frame::write_bytes(wire, bytes)).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(End::Lost(e.into())),
            Err(_) => Some(End::Lost(LostReason::Stalled(bound))),
        }
    }
}

/// How many stalls of ftd itself are forgiven in a row before silence counts.
const MAX_GRACES: u32 = 3;

/// After a stall of ftd itself: how long the peer gets to be heard from again
/// (two heartbeat periods).
fn stall_grace(interval: Duration) -> Duration {
    interval * 2
}
