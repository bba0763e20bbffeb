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

use super::frame::{self, FrameError, Io, Wire};
use super::handshake::{self, HandshakeError, Identity, PeerHello};
use super::tls::Tls;
use super::{PeerConfig, Role};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep, timeout, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// A connection whose handshake succeeded.
pub(crate) struct Established {
    pub wire: Wire,
    pub peer: PeerHello,
    pub addr: SocketAddr,
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
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("connecting to the peer at {addr} did not complete within {after:?} (is the peer host up and reachable?)")]
    ConnectTimeout { addr: SocketAddr, after: Duration },
    #[error("handshake with {addr} failed: {source}")]
    Handshake {
        addr: SocketAddr,
        #[source]
        source: HandshakeError,
    },
    #[error("no Hello from {addr} within {after:?}; closed the connection")]
    HandshakeTimeout { addr: SocketAddr, after: Duration },
    /// The TLS handshake failed, or the peer ended TLS during the `Hello` exchange
    /// (with TLS 1.3 that is how a listener refuses the dialer's certificate).
    #[error("TLS with {addr} failed: {reason}")]
    Tls { addr: SocketAddr, reason: String },
}

/// Turn a TCP connection into the byte stream the codec runs over: mutual TLS,
/// both sides' certificates checked against the CA and the expected host name
/// (see `tls`). Errors are the reason in plain words.
async fn secure(stream: TcpStream, role: Role, tls: &Tls) -> Result<Box<dyn Io>, String> {
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
    stream: TcpStream,
    addr: SocketAddr,
    role: Role,
    cfg: &PeerConfig,
    tls: &Tls,
    me: &Identity,
) -> Result<Established, ConnectError> {
    let run = async {
        let io = secure(stream, role, tls)
            .await
            .map_err(|reason| ConnectError::Tls { addr, reason })?;
        let mut wire = frame::wire(io);
        let peer = match role {
            Role::Dial => handshake::dial(&mut wire, me).await,
            Role::Listen => handshake::accept(&mut wire, me).await,
        }
        .map_err(|source| match source {
            HandshakeError::Frame(FrameError::Tls { reason, .. }) => {
                ConnectError::Tls { addr, reason }
            }
            source => ConnectError::Handshake { addr, source },
        })?;
        Ok(Established {
            wire,
            peer,
            addr,
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
    listener: TcpListener,
    cfg: Arc<PeerConfig>,
    tls: Arc<Tls>,
    me: Identity,
    conns: mpsc::Sender<Established>,
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => r,
        };
        let (stream, addr) = match accepted {
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
        let (cfg, tls, me) = (cfg.clone(), tls.clone(), me.clone());
        let (conns, cancel) = (conns.clone(), cancel.clone());
        tokio::spawn(async move {
            let r = tokio::select! {
                _ = cancel.cancelled() => return,
                r = handshake(stream, addr, Role::Listen, &cfg, &tls, &me) => r,
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
    tls: Arc<Tls>,
    me: Identity,
    conns: mpsc::Sender<Established>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
    let mut failures = Failures::default();
    loop {
        let attempt = tokio::select! {
            _ = cancel.cancelled() => return,
            r = dial_once(&cfg, &tls, &me) => r,
        };
        match attempt {
            Ok(mut est) => {
                failures.recovered(est.addr);
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
    tls: &Tls,
    me: &Identity,
) -> Result<Established, ConnectError> {
    let addr = cfg.peer_addr;
    let stream = timeout(cfg.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| ConnectError::ConnectTimeout {
            addr,
            after: cfg.connect_timeout,
        })?
        .map_err(|source| ConnectError::Connect { addr, source })?;
    handshake(stream, addr, Role::Dial, cfg, tls, me).await
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

    fn recovered(&mut self, addr: SocketAddr) {
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
