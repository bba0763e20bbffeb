//! Peer link tests, two kinds:
//! - the link's logic (timing, detection, host or ftd, reconnection) on the
//!   in-memory net ([`MemoryNet`]) with paused time, so times are exact;
//! - TLS, TCP and real sockets on 127.0.0.1 with ephemeral ports, in real time,
//!   over real mutual TLS with certificates from one test CA ([`pki`]). These
//!   assert what happens and in which order, not how fast (the machine may be
//!   loaded).
//!
//! Host "a" sorts first, so it dials; "b" listens. Helpers here; the tests by
//! theme:
//! - `wire`: frames, roles, configuration;
//! - `handshake`: names and versions;
//! - `in_memory`: the in-memory net itself: up, traffic, cut and heal;
//! - `traffic`: messages, requests, sending while down;
//! - `recovery`: kills, restarts, silent paths, stalls, garbage (with `proxy`);
//! - `daemon`: the peer's ftd lost while its host answers, and the host after;
//! - `colo_certs`: COLO's certificates (what QEMU holds) refused on the link;
//! - `tls`: peers without the right certificate, forged, replayed and malformed
//!   bytes (with `logs::Capture`, which checks what the log says; the daemon's
//!   tests use it too).

mod colo_certs;
mod daemon;
mod handshake;
mod in_memory;
pub(crate) mod logs;
mod proxy;
mod recovery;
mod tls;
mod traffic;
mod wire;

use super::frame::{self, Frame, Wire};
use super::tls::Tls;
use super::*;
use crate::certs::Ca;
use crate::coordinator::PeerMsg;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Generous bound for things that take milliseconds (loaded CI machines; in
/// virtual time on the in-memory net).
const SOON: Duration = Duration::from_secs(10);

fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "ftd::peer=debug".into()),
        )
        .with_test_writer()
        .try_init();
}

/// The test cluster's CA, and another cluster's.
struct Pki {
    ca: Ca,
    other: Ca,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| Pki {
        ca: Ca::new(1).unwrap(),
        other: Ca::new(1).unwrap(),
    })
}

/// `host`'s credentials from the test CA (checked, as ftd loads them).
fn creds(host: &str) -> Credentials {
    let ca = &pki().ca;
    let hc = ca.host(host, &[], 1).unwrap();
    let p = std::path::Path::new("test");
    let paths = crate::peer::tls::Paths {
        ca: p,
        cert: p,
        key: p,
    };
    Credentials::from_pem(
        host,
        paths,
        ca.cert_pem().as_bytes(),
        hc.cert_pem.as_bytes(),
        hc.key_pem.as_bytes(),
    )
    .unwrap()
}

/// A peer calling itself `host` that trusts the test CA but presents a certificate
/// from `issuer` naming `names`.
fn forged(host: &str, issuer: &Ca, names: &[&str]) -> Credentials {
    let hc = issuer.cert_for(host, names, 1).unwrap();
    Credentials::unchecked(host, pki().ca.cert_pem(), &hc.cert_pem, &hc.key_pem)
}

fn unused() -> SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// "b", the listener.
fn b_cfg(listen: SocketAddr) -> PeerConfig {
    let mut c = PeerConfig::new("b", "a", listen, unused(), creds("b"));
    c.boot = random_u64();
    c
}

/// "a", the dialer.
fn a_cfg(peer_addr: SocketAddr) -> PeerConfig {
    let mut c = PeerConfig::new("a", "b", unused(), peer_addr, creds("a"));
    c.boot = random_u64();
    c
}

struct Side {
    h: PeerHandle,
    ev: mpsc::Receiver<LinkEvent>,
    cancel: CancellationToken,
    boot: u64,
}

fn spawn(cfg: PeerConfig) -> Side {
    let boot = cfg.boot;
    let cancel = CancellationToken::new();
    let (h, ev) = PeerLink::spawn(cfg, cancel.clone()).expect("spawn");
    Side {
        h,
        ev,
        cancel,
        boot,
    }
}

impl Side {
    async fn next(&mut self) -> LinkEvent {
        match timeout(SOON, self.ev.recv()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => panic!("the link stopped"),
            Err(_) => panic!("no event within {SOON:?}"),
        }
    }

    async fn up(&mut self) -> (String, u64, bool) {
        match self.next().await {
            LinkEvent::Up {
                host,
                boot,
                restarted,
            } => (host, boot, restarted),
            other => panic!("expected Up, got {other:?}"),
        }
    }

    /// The session ended (host lost, or only its ftd: both end it).
    async fn lost(&mut self) -> LostReason {
        match self.next().await {
            LinkEvent::Lost { reason } | LinkEvent::DaemonLost { reason } => reason,
            other => panic!("expected Lost or DaemonLost, got {other:?}"),
        }
    }

    /// The peer's ftd is gone, its host answers.
    async fn daemon_lost(&mut self) -> LostReason {
        match self.next().await {
            LinkEvent::DaemonLost { reason } => reason,
            other => panic!("expected DaemonLost, got {other:?}"),
        }
    }

    /// The peer's host is gone (or cut off).
    async fn lost_host(&mut self) -> LostReason {
        match self.next().await {
            LinkEvent::Lost { reason } => reason,
            other => panic!("expected Lost, got {other:?}"),
        }
    }

    async fn msg(&mut self) -> (String, PeerMsg) {
        match self.next().await {
            LinkEvent::Msg { domain, msg } => (domain, msg),
            other => panic!("expected Msg, got {other:?}"),
        }
    }

    /// No event at all for `d`.
    async fn quiet(&mut self, d: Duration) {
        if let Ok(ev) = timeout(d, self.ev.recv()).await {
            panic!("expected no event, got {ev:?}");
        }
    }

    /// Cancel the link and wait until it has stopped (its port is free again).
    async fn kill(mut self) {
        self.cancel.cancel();
        timeout(SOON, async { while self.ev.recv().await.is_some() {} })
            .await
            .expect("the link did not stop");
    }
}

/// Both sides up.
async fn pair() -> (Side, Side) {
    let mut b = spawn(b_cfg(any_port()));
    let mut a = spawn(a_cfg(b.h.local_addr().unwrap()));
    assert_eq!(a.up().await.0, "b");
    assert_eq!(b.up().await.0, "a");
    (a, b)
}

/// `cfg`'s link on `net`.
fn mem_spawn(net: &MemoryNet, cfg: PeerConfig) -> Side {
    let boot = cfg.boot;
    let cancel = CancellationToken::new();
    let (h, ev) = net.spawn(cfg, cancel.clone()).expect("spawn in memory");
    Side {
        h,
        ev,
        cancel,
        boot,
    }
}

/// Both sides up on a new in-memory net ("b" first, so "a"'s first dial finds
/// it: both come up at once).
async fn mem_pair() -> (MemoryNet, Side, Side) {
    let net = MemoryNet::new();
    let mut b = mem_spawn(&net, memory::config("b", "a"));
    let mut a = mem_spawn(&net, memory::config("a", "b"));
    assert_eq!(a.up().await.0, "b");
    assert_eq!(b.up().await.0, "a");
    (net, a, b)
}

/// The defaults' (interval, detection).
fn timing() -> (Duration, Duration) {
    let c = memory::config("a", "b");
    (c.interval, c.detection)
}

/// A raw connection that speaks frames, for fake peers: TLS with a's credentials
/// (so it gets past TLS to the `Hello` checks and the session).
async fn raw(addr: SocketAddr) -> Wire {
    raw_as(addr, &creds("a")).await
}

/// A raw TLS connection to listener "b" with `creds`.
async fn raw_as(addr: SocketAddr, creds: &Credentials) -> Wire {
    let tls = Tls::new(creds, "b").unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    frame::wire(Box::new(tls.connect(tcp).await.unwrap()))
}

/// The server side of a fake listener "b" (with `creds`) for dialer "a".
async fn fake_accept(listener: &tokio::net::TcpListener, creds: &Credentials) -> Wire {
    let (s, _) = listener.accept().await.unwrap();
    let tls = Tls::new(creds, "a").unwrap();
    frame::wire(Box::new(tls.accept(s).await.unwrap()))
}

fn hello(version: u32, host: &str) -> Frame {
    Frame::Hello {
        version,
        host: host.into(),
        boot: 1,
    }
}

/// The next frame, or the error (the connection closed).
async fn read(w: &mut Wire) -> Result<Frame, frame::FrameError> {
    timeout(SOON, frame::read(w))
        .await
        .expect("no frame in time")
}
