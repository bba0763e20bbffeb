//! Peer link tests on 127.0.0.1 with ephemeral ports, in real time. Host "a" sorts
//! first, so it dials; "b" listens. Helpers here; the tests by theme:
//! - `wire`: frames, roles, configuration;
//! - `handshake`: names and versions;
//! - `traffic`: messages, requests, sending while down;
//! - `recovery`: kills, restarts, silent paths, garbage (with `proxy`).

mod handshake;
mod proxy;
mod recovery;
mod traffic;
mod wire;

use super::frame::{self, Frame, Wire};
use super::*;
use crate::coordinator::PeerMsg;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Generous bound for things that take milliseconds (loaded CI machines).
const SOON: Duration = Duration::from_secs(3);

fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "ftd::peer=debug".into()),
        )
        .with_test_writer()
        .try_init();
}

fn unused() -> SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// "b", the listener.
fn b_cfg(listen: SocketAddr) -> PeerConfig {
    let mut c = PeerConfig::new("b", "a", listen, unused());
    c.boot = random_u64();
    c
}

/// "a", the dialer.
fn a_cfg(peer_addr: SocketAddr) -> PeerConfig {
    let mut c = PeerConfig::new("a", "b", unused(), peer_addr);
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

    async fn lost(&mut self) -> LostReason {
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

/// A raw connection that speaks frames, for fake peers.
async fn raw(addr: SocketAddr) -> Wire {
    frame::wire(Box::new(TcpStream::connect(addr).await.unwrap()))
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
