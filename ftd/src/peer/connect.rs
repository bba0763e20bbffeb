//! Getting a connection: the acceptor task (listener side) and the dialer task
//! (dialer side). Both hand the link task only connections whose handshakes
//! succeeded ([`Established`]); everything before that (connect, `secure`: the
//! mutual-TLS handshake, then `Hello`) happens here, bounded by timeouts, so the
//! link task never waits on a half-open socket, and a peer that fails TLS or `Hello`
//! never reaches it: it is logged (with its address and why) and closed.
//!
//! The dialer dials, waits until the session it produced ends, then redials after a
//! backoff (doubling from `backoff_min` to `backoff_max`; reset after a session that
//! lasted longer than `backoff_max`, so a peer that accepts and drops at once is not
//! hammered). The acceptor accepts forever and runs each handshake in its own task.
//!
//! Where connections come from is the transport: TCP with mutual TLS, or the
//! in-memory net of tests ([`super::memory`]), whose connections skip TLS
//! ([`Raw`], [`Listener`], [`Dialer`]); the rest (handshake, timeouts, backoff) is
//! the same code for both.

use super::frame::{self, FrameError, Io, Wire};
use super::handshake::{self, HandshakeError, Identity, PeerHello};
use super::memory;
use super::tls::Tls;
use super::{PeerConfig, Role};
use futures::FutureExt;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep, timeout, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Where a connection goes to or comes from (for logs and errors).
#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    Tcp(SocketAddr),
    /// A host on a [`memory::MemoryNet`].
    Memory(String),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(a) => a.fmt(f),
            Endpoint::Memory(host) => write!(f, "{host} (in memory)"),
        }
    }
}

/// A connection before its handshakes.
pub(crate) enum Raw {
    /// Secured with mutual TLS before `Hello`.
    Tcp(TcpStream, Arc<Tls>),
    /// In memory: `Hello` right away.
    Memory(DuplexStream),
}

/// Where the listener side's connections come from.
pub(crate) enum Listener {
    Tcp(TcpListener, Arc<Tls>),
    Memory(memory::Incoming),
}

impl Listener {
    async fn accept(&mut self) -> std::io::Result<(Raw, Endpoint)> {
        match self {
            Listener::Tcp(l, tls) => {
                let (s, addr) = l.accept().await?;
                Ok((Raw::Tcp(s, tls.clone()), Endpoint::Tcp(addr)))
            }
            Listener::Memory(incoming) => {
                let (s, host) = incoming.accept().await;
                Ok((Raw::Memory(s), Endpoint::Memory(host)))
            }
        }
    }
}

/// How the dialer side gets a connection.
pub(crate) enum Dialer {
    /// To [`PeerConfig::peer_addr`].
    Tcp(Arc<Tls>),
    /// To the peer's host on the net.
    Memory(memory::Port),
}

impl Dialer {
    /// One attempt, bounded by [`PeerConfig::connect_timeout`].
    async fn connect(&self, cfg: &PeerConfig) -> Result<(Raw, Endpoint), ConnectError> {
        let (addr, attempt) = match self {
            Dialer::Tcp(tls) => {
                let tls = tls.clone();
                let a = TcpStream::connect(cfg.peer_addr).map(|r| r.map(|s| Raw::Tcp(s, tls)));
                (Endpoint::Tcp(cfg.peer_addr), a.boxed())
            }
            Dialer::Memory(port) => {
                let a = port.dial().map(|r| r.map(Raw::Memory));
                (Endpoint::Memory(port.peer().to_string()), a.boxed())
            }
        };
        let raw = timeout(cfg.connect_timeout, attempt)
            .await
            .map_err(|_| ConnectError::ConnectTimeout {
                addr: addr.clone(),
                after: cfg.connect_timeout,
            })?
            .map_err(|source| ConnectError::Connect {
                addr: addr.clone(),
                source,
            })?;
        Ok((raw, addr))
    }
}

/// A connection whose handshake succeeded.
pub(crate) struct Established {
    pub wire: Wire,
    pub peer: PeerHello,
    pub addr: Endpoint,
    /// Dropped by the link task when this session ends (tells the dialer to redial).
    pub done: Option<oneshot::Sender<()>>,
}

/// Why one attempt to get a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "cannot connect to the peer at {addr}: {source} (is its ftd running and listening there?)"
    )]
    Connect {
        addr: Endpoint,
        #[source]
        source: std::io::Error,
    },
    #[error("connecting to the peer at {addr} did not complete within {after:?} (is the peer host up and reachable?)")]
    ConnectTimeout { addr: Endpoint, after: Duration },
    #[error("handshake with {addr} failed: {source}")]
    Handshake {
        addr: Endpoint,
        #[source]
        source: HandshakeError,
    },
    #[error("no Hello from {addr} within {after:?}; closed the connection")]
    HandshakeTimeout { addr: Endpoint, after: Duration },
    /// The TLS handshake failed, or the peer ended TLS during the `Hello` exchange
    /// (with TLS 1.3 that is how a listener refuses the dialer's certificate).
    #[error("TLS with {addr} failed: {reason}")]
    Tls { addr: Endpoint, reason: String },
}

/// Turn a connection into the byte stream the codec runs over: over TCP, mutual
/// TLS, both sides' certificates checked against the CA and the expected host
/// name (see `tls`); in memory, the stream as it is. Errors are the reason in
/// plain words.
async fn secure(raw: Raw, role: Role) -> Result<Box<dyn Io>, String> {
    let (stream, tls) = match raw {
        Raw::Tcp(stream, tls) => (stream, tls),
        Raw::Memory(stream) => return Ok(Box::new(stream)),
    };
    // Heartbeats and messages are small and latency matters more than throughput.
    stream
        .set_nodelay(true)
        .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
    Ok(match role {
        Role::Listen => Box::new(tls.accept(stream).await?),
        Role::Dial => Box::new(tls.connect(stream).await?),
    })
}

/// Handshake within the configured bound.
async fn handshake(
    raw: Raw,
    addr: Endpoint,
    role: Role,
    cfg: &PeerConfig,
    me: &Identity,
) -> Result<Established, ConnectError> {
    let run = async {
        let io = secure(raw, role)
            .await
            .map_err(|reason| ConnectError::Tls {
                addr: addr.clone(),
                reason,
            })?;
        let mut wire = frame::wire(io);
        let peer = match role {
            Role::Dial => handshake::dial(&mut wire, me).await,
            Role::Listen => handshake::accept(&mut wire, me).await,
        }
        .map_err(|source| match source {
            HandshakeError::Frame(FrameError::Tls { reason, .. }) => ConnectError::Tls {
                addr: addr.clone(),
                reason,
            },
            source => ConnectError::Handshake {
                addr: addr.clone(),
                source,
            },
        })?;
        Ok(Established {
            wire,
            peer,
            addr: addr.clone(),
            done: None,
        })
    };
    timeout(cfg.handshake_timeout, run)
        .await
        .map_err(|_| ConnectError::HandshakeTimeout {
            addr,
            after: cfg.handshake_timeout,
        })?
}

/// Listener side: accept connections forever; hand over each that shakes hands.
pub(crate) async fn accept_loop(
    mut listener: Listener,
    cfg: Arc<PeerConfig>,
    me: Identity,
    conns: mpsc::Sender<Established>,
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => r,
        };
        let (raw, addr) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // E.g. out of file descriptors: wait a little rather than spin.
                warn!(error = %e, "peer link: accept failed; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = sleep(cfg.backoff_min) => continue,
                }
            }
        };
        debug!(%addr, "peer link: connection accepted");
        let (cfg, me) = (cfg.clone(), me.clone());
        let (conns, cancel) = (conns.clone(), cancel.clone());
        tokio::spawn(async move {
            let r = tokio::select! {
                _ = cancel.cancelled() => return,
                r = handshake(raw, addr.clone(), Role::Listen, &cfg, &me) => r,
            };
            match r {
                Ok(est) => {
                    let _ = conns.send(est).await;
                }
                Err(e) => warn!(%addr, "peer link: refused a connection: {e}"),
            }
        });
    }
}

/// Dialer side: dial, hand the session over, wait for it to end, redial.
pub(crate) async fn dial_loop(
    cfg: Arc<PeerConfig>,
    dialer: Dialer,
    me: Identity,
    conns: mpsc::Sender<Established>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
    let mut failures = Failures::default();
    loop {
        let attempt = tokio::select! {
            _ = cancel.cancelled() => return,
            r = dial_once(&cfg, &dialer, &me) => r,
        };
        match attempt {
            Ok(mut est) => {
                failures.recovered(&est.addr);
                let (done_tx, done_rx) = oneshot::channel();
                est.done = Some(done_tx);
                let since = Instant::now();
                if conns.send(est).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = done_rx => {}
                }
                if since.elapsed() > cfg.backoff_max {
                    backoff.reset();
                }
            }
            Err(e) => failures.failed(&e),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = sleep(backoff.next()) => {}
        }
    }
}

async fn dial_once(
    cfg: &PeerConfig,
    dialer: &Dialer,
    me: &Identity,
) -> Result<Established, ConnectError> {
    let (raw, addr) = dialer.connect(cfg).await?;
    handshake(raw, addr, Role::Dial, cfg, me).await
}

/// Redial delays: `min`, doubling up to `max`.
#[derive(Debug)]
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        d
    }

    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Logs a dial failure once at `warn` and its repetitions at `debug`, so a peer
/// that stays down does not flood the log.
#[derive(Debug, Default)]
struct Failures {
    count: u64,
    last: Option<String>,
}

impl Failures {
    fn failed(&mut self, e: &ConnectError) {
        self.count += 1;
        let msg = e.to_string();
        if self.last.as_deref() == Some(msg.as_str()) {
            debug!(attempts = self.count, "peer link: {msg}");
        } else {
            warn!(attempts = self.count, "peer link: {msg}; retrying");
            self.last = Some(msg);
        }
    }

    fn recovered(&mut self, addr: &Endpoint) {
        if self.count > 0 {
            info!(%addr, "peer link: connected after {} failed attempts", self.count);
        }
        *self = Failures::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_max_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(50), ms(1000));
        let got: Vec<_> = (0..7).map(|_| b.next().as_millis()).collect();
        assert_eq!(got, [50, 100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next(), ms(50));
    }
}
