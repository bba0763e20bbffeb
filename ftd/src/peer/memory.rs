//! The peer link over an in-memory net, for tests: [`MemoryNet::spawn`] starts the
//! real link (the same acceptor or dialer, `Hello` handshake, heartbeats, loss
//! detection, knocking and reconnection as over TCP), but its connections are
//! [`tokio::io::duplex`] pipes instead of TLS over TCP, and the net answers its
//! knocks. Nothing on this path touches a socket or the wall clock, so tests run
//! with paused tokio time (`#[tokio::test(start_paused = true)]`) and are exact.
//!
//! The test controls the net as a network and two machines:
//! - [`MemoryNet::cut`]: the path between the hosts is cut: nothing crosses it
//!   either way (frames already written wait, as in the network), connection
//!   attempts and knocks go unanswered. [`MemoryNet::heal`] reopens it, and what
//!   waited is delivered.
//! - [`MemoryNet::kill_daemon`]: that host's ftd dies (its link stops and its
//!   connections close, as the kernel does for a killed process); its host still
//!   answers knocks and refuses connections.
//! - [`MemoryNet::hang_daemon`]: that host's ftd hangs: its connections carry
//!   nothing either way, its host answers knocks. (Its own link keeps running and
//!   sees its peer go silent: only the other host's view is that of a hung ftd.)
//!   [`MemoryNet::heal`] resumes it.
//! - [`MemoryNet::kill_host`]: that host goes down: its link stops, nothing it
//!   sent or closed reaches the other host, which no longer gets answers.
//!   Spawning a link for the host brings it back (it booted).
//!
//! ```
//! use ftd::peer::{memory, LinkEvent, MemoryNet};
//! use tokio::time::Instant;
//! use tokio_util::sync::CancellationToken;
//!
//! #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let (net, cancel) = (MemoryNet::new(), CancellationToken::new());
//!     let (_b, mut b_ev) = net.spawn(memory::config("b", "a"), cancel.clone()).unwrap();
//!     let a_cfg = memory::config("a", "b");
//!     let detection = a_cfg.detection;
//!     let (a, mut a_ev) = net.spawn(a_cfg, cancel.clone()).unwrap();
//!     assert!(matches!(a_ev.recv().await, Some(LinkEvent::Up { .. })));
//!     assert!(matches!(b_ev.recv().await, Some(LinkEvent::Up { .. })));
//!     let t = Instant::now();
//!     net.cut(); // right after the first heartbeats
//!     assert!(matches!(a_ev.recv().await, Some(LinkEvent::Lost { .. })));
//!     assert_eq!(t.elapsed(), detection); // virtual time: exact
//!     assert!(a.host_lost());
//! }
//! ```
//!
//! Each connection runs through two pump tasks (one per direction) between the
//! two links' pipes; a pump forwards only while the path is open.
//!
//! Not covered here: TLS (the in-memory connections skip it: [`config`] fills
//! [`PeerConfig::tls`] only because the type requires it), TCP's own behaviour
//! (connect, RST, socket buffers, `SO_REUSEADDR`), and the TCP knock. Those have
//! their tests over real sockets in `peer::tests`.

use super::connect::{Dialer, Listener};
use super::handle::{LinkEvent, PeerHandle};
use super::probe::Knocker;
use super::spawn::{start, Connector};
use super::tls::{Credentials, Paths};
use super::{random_u64, PeerConfig, Role, SpawnError};
use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Bytes a connection buffers each way before a writer waits (a socket buffer).
const BUFFER: usize = 64 * 1024;

/// A network of hosts whose peer links connect in memory. Cheap to clone: clones
/// are the same net.
#[derive(Clone, Default)]
pub struct MemoryNet {
    net: Arc<watch::Sender<Net>>,
}

impl std::fmt::Debug for MemoryNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.net.borrow();
        f.debug_struct("MemoryNet")
            .field("cut", &n.cut)
            .field("down", &n.down)
            .field("hung", &n.hung)
            .field("daemons", &n.daemons.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Default)]
struct Net {
    /// The path between the hosts is cut.
    cut: bool,
    /// Hosts that are down.
    down: HashSet<String>,
    /// Hosts whose ftd hangs.
    hung: HashSet<String>,
    /// The running link of each host.
    daemons: HashMap<String, Daemon>,
}

struct Daemon {
    /// Stops the link (a child of the token the test gave).
    cancel: CancellationToken,
    /// Where connections to it go (listener side).
    incoming: Option<mpsc::Sender<(DuplexStream, String)>>,
}

impl Net {
    /// Do packets get from `a` to `b` (connection attempts, knocks)?
    fn open(&self, a: &str, b: &str) -> bool {
        !self.cut && !self.down.contains(a) && !self.down.contains(b)
    }

    /// Do the bytes of a connection get from `a`'s ftd to `b`'s?
    fn carries(&self, a: &str, b: &str) -> bool {
        self.open(a, b) && !self.hung.contains(a) && !self.hung.contains(b)
    }
}

impl MemoryNet {
    /// A net with no links, no cut and every host up.
    pub fn new() -> MemoryNet {
        MemoryNet::default()
    }

    /// Start the link of `config.host` on this net, as [`PeerLink::spawn`] does
    /// over TCP (`config.listen`, `peer_addr`, `probe_addr` and `tls` are not
    /// used; [`config`] makes a suitable one). Brings the host up if it was
    /// down. Fails when the configuration is invalid or the host's previous link
    /// has not been stopped (killed or cancelled).
    ///
    /// [`PeerLink::spawn`]: super::PeerLink::spawn
    pub fn spawn(
        &self,
        config: PeerConfig,
        cancel: CancellationToken,
    ) -> Result<(PeerHandle, mpsc::Receiver<LinkEvent>), SpawnError> {
        config.validate()?;
        let host = config.host.clone();
        let port = Port {
            net: self.clone(),
            host: host.clone(),
            peer: config.peer_host.clone(),
        };
        let own = cancel.child_token();
        let (connector, incoming) = match config.role() {
            Role::Listen => {
                let (tx, rx) = mpsc::channel(4);
                (
                    Connector::Accept(Listener::Memory(Incoming { rx })),
                    Some(tx),
                )
            }
            Role::Dial => (Connector::Dial(Dialer::Memory(port.clone())), None),
        };
        let daemon = Daemon {
            cancel: own.clone(),
            incoming,
        };
        let mut running = false;
        self.net.send_if_modified(|n| {
            running = n
                .daemons
                .get(&host)
                .is_some_and(|d| !d.cancel.is_cancelled());
            if running {
                return false;
            }
            n.down.remove(&host);
            n.hung.remove(&host);
            n.daemons.insert(host.clone(), daemon);
            true
        });
        if running {
            return Err(SpawnError::Config(format!(
                "{host:?} already runs a peer link on this MemoryNet: kill_daemon({host:?}) \
                 or cancel it first"
            )));
        }
        info!(%host, peer = %config.peer_host, role = ?config.role(), "peer link: in memory");
        Ok(start(config, connector, Knocker::Memory(port), None, own))
    }

    /// Cut the path between the hosts (see the module doc).
    pub fn cut(&self) {
        self.net.send_modify(|n| n.cut = true);
    }

    /// Reopen the path and resume hung daemons: what waited is delivered,
    /// connections and knocks get through again. (A host that was killed comes
    /// back with its next link.)
    pub fn heal(&self) {
        self.net.send_modify(|n| {
            n.cut = false;
            n.hung.clear();
        });
    }

    /// Hang `host`'s ftd (see the module doc) until [`MemoryNet::heal`].
    pub fn hang_daemon(&self, host: &str) {
        self.net.send_modify(|n| {
            n.hung.insert(host.to_string());
        });
    }

    /// Kill `host`'s ftd: its link stops and its connections close; its host
    /// still answers.
    pub fn kill_daemon(&self, host: &str) {
        self.kill(host, false);
    }

    /// Take `host` down: its link stops, and nothing from or to it gets through
    /// (not even the close of its connections) until a new link for it is spawned.
    pub fn kill_host(&self, host: &str) {
        self.kill(host, true);
    }

    fn kill(&self, host: &str, down: bool) {
        let mut gone = None;
        // Down first (in the same change), so the pumps never forward the close.
        self.net.send_modify(|n| {
            if down {
                n.down.insert(host.to_string());
            }
            gone = n.daemons.remove(host);
        });
        if let Some(d) = gone {
            d.cancel.cancel();
        }
    }

    /// A connection from `from` to `to`: `from`'s end and `to`'s end.
    fn connect(&self, from: &str, to: &str) -> (DuplexStream, DuplexStream) {
        let (from_end, from_side) = duplex(BUFFER);
        let (to_end, to_side) = duplex(BUFFER);
        let (from_r, from_w) = tokio::io::split(from_side);
        let (to_r, to_w) = tokio::io::split(to_side);
        let (a, b) = (from.to_string(), to.to_string());
        tokio::spawn(pump(
            from_r,
            to_w,
            self.net.subscribe(),
            a.clone(),
            b.clone(),
        ));
        tokio::spawn(pump(to_r, from_w, self.net.subscribe(), b, a));
        (from_end, to_end)
    }
}

/// Forward `a`'s bytes, then its close, to `b`, each only once the connection
/// carries (no cut, neither host down nor its ftd hung): until then they wait,
/// as in the network. A write that fails (`b`'s end is gone) ends it: `a` then
/// sees its connection closed (as after a RST).
async fn pump(
    mut r: ReadHalf<DuplexStream>,
    mut w: WriteHalf<DuplexStream>,
    mut net: watch::Receiver<Net>,
    a: String,
    b: String,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // A pipe in memory does not fail: an error is an end like EOF.
        let n = r.read(&mut buf).await.unwrap_or(0);
        if net.wait_for(|n| n.carries(&a, &b)).await.is_err() {
            return;
        }
        if n == 0 {
            let _ = w.shutdown().await;
            return;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// One link's place on the net: its host and its peer's (for dialing and
/// knocking).
#[derive(Debug, Clone)]
pub(crate) struct Port {
    net: MemoryNet,
    host: String,
    peer: String,
}

impl Port {
    pub(crate) fn peer(&self) -> &str {
        &self.peer
    }

    /// Connect to the peer's link. While the path is cut or either host is down
    /// the attempt waits (a dropped SYN: the caller's connect timeout ends it);
    /// a host without a listening link refuses.
    pub(crate) async fn dial(&self) -> io::Result<DuplexStream> {
        let mut net = self.net.net.subscribe();
        let refused = || {
            io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("no peer link of {:?} listens on this MemoryNet", self.peer),
            )
        };
        let to = {
            let n = net
                .wait_for(|n| n.open(&self.host, &self.peer))
                .await
                .map_err(|_| refused())?;
            let d = n
                .daemons
                .get(&self.peer)
                .filter(|d| !d.cancel.is_cancelled());
            d.and_then(|d| d.incoming.clone()).ok_or_else(refused)?
        };
        let (mine, theirs) = self.net.connect(&self.host, &self.peer);
        to.send((theirs, self.host.clone()))
            .await
            .map_err(|_| refused())?;
        Ok(mine)
    }

    /// Knock at the peer's host until `deadline`: answered unless the path is
    /// cut or a host is down.
    pub(crate) async fn knock(&self, deadline: Instant) -> bool {
        let mut net = self.net.net.subscribe();
        let answered = net.wait_for(|n| n.open(&self.host, &self.peer));
        let answered = matches!(timeout_at(deadline, answered).await, Ok(Ok(_)));
        answered
    }
}

/// The listener side's incoming connections.
pub(crate) struct Incoming {
    rx: mpsc::Receiver<(DuplexStream, String)>,
}

impl Incoming {
    /// The next connection and who dialed. After the link was killed none come.
    pub(crate) async fn accept(&mut self) -> (DuplexStream, String) {
        match self.rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }
}

/// Settings for `host`'s side of an in-memory link with `peer_host`:
/// [`PeerConfig::new`]'s defaults (interval 100 ms, detection 500 ms, ...), a
/// boot id of its own (a new one on every call: give a restarted ftd a new
/// config), placeholder addresses, and TLS credentials for `host` from a CA made
/// for this process (unused in memory).
///
/// # Panics
///
/// If the certificates cannot be made (rcgen failed: a bug, not a condition).
pub fn config(host: &str, peer_host: &str) -> PeerConfig {
    let unused = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
    let mut c = PeerConfig::new(host, peer_host, unused, unused, credentials(host));
    c.boot = random_u64();
    c
}

/// Real credentials for `host` (made once per host name and process).
fn credentials(host: &str) -> Credentials {
    type Made = (Option<crate::certs::Ca>, HashMap<String, Credentials>);
    static MADE: OnceLock<Mutex<Made>> = OnceLock::new();
    let mut made = MADE.get_or_init(Mutex::default).lock().unwrap();
    let (ca, creds) = &mut *made;
    if let Some(c) = creds.get(host) {
        return c.clone();
    }
    let ca = ca.get_or_insert_with(|| crate::certs::Ca::new(30).expect("a CA for tests"));
    let hc = ca.host(host, &[], 30).expect("a certificate for tests");
    let p = std::path::Path::new("(memory)");
    let paths = Paths {
        ca: p,
        cert: p,
        key: p,
    };
    let pem = (ca.cert_pem().as_bytes(), hc.cert_pem.as_bytes());
    let c = Credentials::from_pem(host, paths, pem.0, pem.1, hc.key_pem.as_bytes())
        .unwrap_or_else(|e| panic!("credentials for {host:?}: {e}"));
    creds.insert(host.to_string(), c.clone());
    c
}
