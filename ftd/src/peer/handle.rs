//! What the owner of the link sees: [`PeerHandle`] to send, [`LinkEvent`]s to
//! receive, [`PeerError`] when sending cannot work.
//!
//! The handle never waits for the connection: it encodes the frame in the caller's
//! task (so a too-big frame fails there) and queues it for the link task without
//! blocking; when the link is down it fails at once.

use super::frame::{self, Frame, FrameError, Request, Response};
use super::link::LostReason;
use crate::coordinator::PeerMsg;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// What the link reports to its owner.
#[derive(Debug)]
pub enum LinkEvent {
    /// The handshake completed: the peer `host` is reachable. `boot` is its ftd's
    /// boot id; `restarted` says it differs from the previous session's (the peer's
    /// ftd restarted and lost its in-memory state).
    Up {
        host: String,
        boot: u64,
        restarted: bool,
    },
    /// The session ended and the peer's host does not answer either (or, after
    /// `DaemonLost`, stopped answering): host-loss handling. The link reconnects
    /// by itself.
    Lost { reason: LostReason },
    /// The session ended, but the peer's host answers (its kernel accepts or
    /// refuses connections): its ftd is gone or hangs. The link keeps knocking;
    /// `Lost` follows if the host stops answering, `Up` when the ftd is back.
    DaemonLost { reason: LostReason },
    /// A message for this host's coordinator of `domain`.
    Msg { domain: String, msg: PeerMsg },
    /// The peer asks for work; answer through `reply` (dropping it answers with an
    /// error). An answer after the session ended is discarded.
    Request {
        body: Request,
        reply: oneshot::Sender<Result<Response, String>>,
    },
}

/// The peer of the current session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub host: String,
    pub boot: u64,
}

/// The current session as published by the link task (`None`: down).
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// Counts sessions of this link; commands carry it so that they go out only
    /// on the session they were made for.
    pub gen: u64,
    pub peer: PeerInfo,
}

/// What the handle asks of the link task.
#[derive(Debug)]
pub(crate) enum Command {
    Send {
        gen: u64,
        frame: Bytes,
    },
    Request {
        gen: u64,
        id: u64,
        what: String,
        frame: Bytes,
        reply: oneshot::Sender<Result<Response, PeerError>>,
    },
}

/// Why sending to the peer failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// No session: nothing was sent.
    #[error("the peer link to {peer} is down: nothing was sent (the link reconnects by itself; wait for LinkEvent::Up)")]
    Down { peer: String },
    /// The link task's queue is full: the connection cannot keep up.
    #[error("the peer link to {peer} has {capacity} frames queued already: nothing was sent (is the network to the peer saturated?)")]
    Backlog { peer: String, capacity: usize },
    /// The frame cannot be sent at all.
    #[error("cannot send to {peer}: {source}")]
    Frame {
        peer: String,
        #[source]
        source: FrameError,
    },
    /// No answer in time. The request may still run on the peer.
    #[error("{request} to {peer}: no answer within {after:?} (is the peer's ftd stuck? the request may still complete there)")]
    Timeout {
        request: String,
        peer: String,
        after: Duration,
    },
    /// The session ended before the answer came.
    #[error("{request} to {peer}: the link went down before the answer came ({reason}); retry once it is back up")]
    Lost {
        request: String,
        peer: String,
        reason: String,
    },
    /// The peer answered with an error.
    #[error("{peer} could not do {request}: {message}")]
    Remote {
        request: String,
        peer: String,
        message: String,
    },
    /// The link task is gone.
    #[error("the peer link to {peer} has stopped (ftd is shutting down)")]
    Stopped { peer: String },
}

/// Cheap-to-clone handle to a running link.
#[derive(Debug, Clone)]
pub struct PeerHandle {
    pub(crate) peer_host: Arc<str>,
    pub(crate) cmds: mpsc::Sender<Command>,
    pub(crate) state: watch::Receiver<Option<Session>>,
    pub(crate) next_id: Arc<AtomicU64>,
    pub(crate) local_addr: Option<SocketAddr>,
    pub(crate) host_lost: Arc<std::sync::atomic::AtomicBool>,
}

impl PeerHandle {
    /// Is a session up (handshake done, not lost yet)?
    pub fn is_up(&self) -> bool {
        self.state.borrow().is_some()
    }

    /// Wait until a session is up, at most `within`; whether one is.
    pub async fn wait_up(&self, within: Duration) -> bool {
        let mut st = self.state.clone();
        let up = tokio::time::timeout(within, st.wait_for(|s| s.is_some())).await;
        let up = matches!(up, Ok(Ok(_)));
        up
    }

    /// Was the peer's host reported lost ([`LinkEvent::Lost`]), with no session
    /// since? (For a task that starts after the event was sent.)
    pub fn host_lost(&self) -> bool {
        self.host_lost.load(Ordering::Relaxed) && !self.is_up()
    }

    /// The peer of the current session.
    pub fn peer(&self) -> Option<PeerInfo> {
        self.state.borrow().as_ref().map(|s| s.peer.clone())
    }

    /// The configured peer host name.
    pub fn peer_host(&self) -> &str {
        &self.peer_host
    }

    /// The address this host listens on, when it is the listener (the real port
    /// when the configuration said port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Queue a message for the peer's coordinator of `domain`. Never waits: fails
    /// at once when the link is down or its queue is full. `Ok` means queued on the
    /// current session, not delivered: if the session is lost first, the owner gets
    /// [`LinkEvent::Lost`].
    pub fn send(&self, domain: impl Into<String>, msg: PeerMsg) -> Result<(), PeerError> {
        let gen = self.current_gen()?;
        let frame = self.encode(&Frame::Msg {
            domain: domain.into(),
            msg,
        })?;
        self.submit(Command::Send { gen, frame })
    }

    /// Ask the peer for work and wait for the answer, at most `timeout`. Fails at
    /// once when the link is down.
    pub async fn request(&self, body: Request, timeout: Duration) -> Result<Response, PeerError> {
        let gen = self.current_gen()?;
        let what = body.describe();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = self.encode(&Frame::Request { id, body })?;
        let (tx, rx) = oneshot::channel();
        self.submit(Command::Request {
            gen,
            id,
            what: what.clone(),
            frame,
            reply: tx,
        })?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(PeerError::Stopped {
                peer: self.peer_host.to_string(),
            }),
            Err(_) => Err(PeerError::Timeout {
                request: what,
                peer: self.peer_host.to_string(),
                after: timeout,
            }),
        }
    }

    fn current_gen(&self) -> Result<u64, PeerError> {
        match self.state.borrow().as_ref() {
            Some(s) => Ok(s.gen),
            None => Err(PeerError::Down {
                peer: self.peer_host.to_string(),
            }),
        }
    }

    fn encode(&self, f: &Frame) -> Result<Bytes, PeerError> {
        frame::encode(f).map_err(|source| PeerError::Frame {
            peer: self.peer_host.to_string(),
            source,
        })
    }

    fn submit(&self, cmd: Command) -> Result<(), PeerError> {
        self.cmds.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PeerError::Backlog {
                peer: self.peer_host.to_string(),
                capacity: self.cmds.max_capacity(),
            },
            mpsc::error::TrySendError::Closed(_) => PeerError::Stopped {
                peer: self.peer_host.to_string(),
            },
        })
    }
}
