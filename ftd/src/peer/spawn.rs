//! Starting a link: [`PeerLink::spawn`] over TCP with mutual TLS, and `start`,
//! which both it and the in-memory net ([`super::memory::MemoryNet::spawn`]) call
//! with their transport: where the connections come from (the acceptor or dialer
//! task of `connect`) and where to knock at the peer's host (`probe`). The link
//! task is the same for both.

use super::connect::{self, Dialer, Listener};
use super::handle::{LinkEvent, PeerHandle};
use super::handshake::Identity;
use super::link::Link;
use super::probe::Knocker;
use super::tls::Tls;
use super::{PeerConfig, Role, SpawnError};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Commands queued in the handle before `send` reports a backlog.
const COMMAND_QUEUE: usize = 1024;
/// Events queued for the owner; the link waits when the owner does not keep up.
const EVENT_QUEUE: usize = 1024;

/// Starts peer links.
#[derive(Debug)]
pub struct PeerLink;

impl PeerLink {
    /// Start the link: bind (listener side) now, so a bad address fails here; then
    /// connect and reconnect in the background until `cancel` fires or the event
    /// receiver is dropped. The event channel closes once the link has stopped and
    /// released its listening address.
    ///
    /// The owner must drain the events promptly: when the channel is full the link
    /// waits, and meanwhile sends no heartbeats (the peer would declare it lost).
    ///
    /// Must be called within a tokio runtime.
    pub fn spawn(
        config: PeerConfig,
        cancel: CancellationToken,
    ) -> Result<(PeerHandle, mpsc::Receiver<LinkEvent>), SpawnError> {
        config.validate()?;
        let tls = Tls::new(&config.tls, &config.peer_host).map_err(SpawnError::Config)?;
        let tls = Arc::new(tls);
        let knocker = Knocker::Tcp(config.probe_addr);
        let (connector, local_addr) = match config.role() {
            Role::Listen => {
                let listener = bind(config.listen)?;
                let addr = listener.local_addr().map_err(|source| SpawnError::Bind {
                    addr: config.listen,
                    source,
                })?;
                info!(%addr, peer = %config.peer_host, "peer link: listening");
                (Connector::Accept(Listener::Tcp(listener, tls)), Some(addr))
            }
            Role::Dial => {
                info!(addr = %config.peer_addr, peer = %config.peer_host, "peer link: dialing");
                (Connector::Dial(Dialer::Tcp(tls)), None)
            }
        };
        Ok(start(
            config,
            connector,
            knocker,
            local_addr,
            cancel.child_token(),
        ))
    }
}

/// Where a link's connections come from: the listener side accepts, the dialer
/// side dials (see [`PeerConfig::role`]).
pub(crate) enum Connector {
    Accept(Listener),
    Dial(Dialer),
}

/// Spawn the link task and its acceptor or dialer on a validated `config`.
/// `inner` is the link's own token: cancelling it stops the link, and the link
/// cancels it when it stops by itself (so it says whether the link still runs).
pub(crate) fn start(
    config: PeerConfig,
    connector: Connector,
    knocker: Knocker,
    local_addr: Option<SocketAddr>,
    inner: CancellationToken,
) -> (PeerHandle, mpsc::Receiver<LinkEvent>) {
    let cfg = Arc::new(config);
    let me = Identity {
        host: cfg.host.clone(),
        peer_host: cfg.peer_host.clone(),
        boot: cfg.boot,
    };
    let (conn_tx, conn_rx) = mpsc::channel(4);
    let helper = match connector {
        Connector::Accept(l) => {
            let task = connect::accept_loop(l, cfg.clone(), me, conn_tx, inner.clone());
            tokio::spawn(task)
        }
        Connector::Dial(d) => {
            let task = connect::dial_loop(cfg.clone(), d, me, conn_tx, inner.clone());
            tokio::spawn(task)
        }
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    let (state_tx, state_rx) = watch::channel(None);
    let host_lost = Arc::new(AtomicBool::new(false));
    let handle = PeerHandle {
        peer_host: cfg.peer_host.as_str().into(),
        cmds: cmd_tx,
        state: state_rx,
        next_id: Arc::new(AtomicU64::new(1)),
        local_addr,
        host_lost: host_lost.clone(),
    };
    let link = Link {
        cfg,
        cancel: inner,
        helper: Some(helper),
        conns: conn_rx,
        cmds: cmd_rx,
        events: ev_tx,
        state: state_tx,
        knocker,
        gen: 0,
        last_boot: None,
        // Until a session comes up, the peer's host is watched as after
        // DaemonLost: a host that never answers is reported lost.
        heard: Some(Instant::now()),
        host_lost,
    };
    tokio::spawn(link.run());
    (handle, ev_rx)
}

fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, SpawnError> {
    let err = |source| SpawnError::Bind { addr, source };
    // std binds synchronously (with SO_REUSEADDR, so a restarted ftd rebinds at once).
    let l = std::net::TcpListener::bind(addr).map_err(err)?;
    l.set_nonblocking(true).map_err(err)?;
    tokio::net::TcpListener::from_std(l).map_err(err)
}
