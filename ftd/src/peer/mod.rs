//! The peer link: one mutual-TLS connection between this host's ftd and its peer's,
//! which carries the coordinators' [`PeerMsg`](crate::coordinator::PeerMsg)s, request/response work
//! ([`Request`] -> [`Response`]) and the heartbeats that tell each side whether the
//! other is alive.
//!
//! - [`frame`]: what travels ([`Frame`]), JSON in length-delimited frames;
//! - [`tls`]: this host's [`Credentials`] and the mutual TLS under the codec;
//! - `handshake`: `Hello` both ways, version and host-name checks;
//! - `connect`: who dials whom, the TLS and `Hello` handshakes, reconnection with
//!   backoff (the acceptor and dialer tasks);
//! - `link`: the link task, the only owner of the connection: heartbeats, loss
//!   detection, routing frames to and from the owner;
//! - `probe`: knocking at the peer's host (does it live while its ftd is silent?);
//! - `spawn`: [`PeerLink::spawn`], starting the tasks over a transport;
//! - `handle`: [`PeerHandle`], [`LinkEvent`], [`PeerError`]: what the owner sees;
//! - [`memory`]: the in-memory transport of tests ([`MemoryNet`]), see below.
//!
//! ## Who dials
//!
//! Both hosts carry the same two addresses ([`PeerConfig::listen`] for this host,
//! [`PeerConfig::peer_addr`] for the peer); the host whose name sorts first
//! (byte-wise) dials, the other listens ([`PeerConfig::role`]). The listener keeps
//! accepting while a session runs: a new connection that completes the handshake
//! replaces the current one (the dialer restarted and the old connection is dead,
//! even if no FIN arrived). The dialer redials after every loss, with a backoff from
//! [`PeerConfig::backoff_min`] doubling to [`PeerConfig::backoff_max`] (50 ms -> 1 s),
//! and each attempt bounded by [`PeerConfig::connect_timeout`]. So after either host
//! restarts, the link is back within about a second of its ftd starting.
//!
//! ## The protocol
//!
//! ```text
//! dialer                                      listener
//!   == TLS 1.3 handshake, both certificates checked (see "Authentication") ==
//!   (a failed check: a log line with the address and why, close; no Up)
//!   -- Hello { version, host, boot } -->        checks version, host == expected
//!   <-- Hello { version, host, boot } --        (or Refused { reason }, close)
//!   checks version, host == expected
//!   (or Refused { reason }, close)
//! both: LinkEvent::Up { host, boot, restarted }
//!   <-> Heartbeat { seq } every interval, Msg, Request { id }, Response { id }
//! no frame at all for `detection`, EOF, a socket error, a malformed frame or a
//! TLS record that does not decrypt (corrupted, forged, replayed): close; the
//! dialer redials; and
//!   LinkEvent::DaemonLost { reason } if the peer's host still answers (its ftd
//!     is gone: see `link`, "Host or ftd?"), then, should the host stop
//!     answering for `detection`, LinkEvent::Lost { HostSilent }
//!   LinkEvent::Lost { reason } otherwise (the host is down or cut off)
//! ```
//!
//! Events alternate strictly `Up`, then `Lost` or `DaemonLost` (maybe followed by
//! `Lost`), then `Up`, ...: every session that came up is reported lost before the
//! next one comes up, and its messages arrive between the two. Before the first
//! `Up`, a `Lost` says the peer's host has not answered since the link started. A message or request given to [`PeerHandle`] goes out only on the session
//! that was up when it was given (never to a peer that restarted in between).
//!
//! ## Authentication: mutual TLS, required
//!
//! The link runs over TLS 1.3 (rustls, ring provider) with a certificate on both
//! sides, in `connect::secure`, which turns the accepted or dialed `TcpStream` into
//! the byte stream the codec runs over ([`frame::Io`]); nothing above it knows.
//! Both hosts' certificates come from one CA (the cluster's, `peer-link.tls.ca`);
//! each names its host (subjectAltName DNS name = the host name in ftd's
//! configuration) and allows TLS client and server authentication.
//! COLO's channels have a CA and certificates of their own (QEMU loads their
//! key as libvirt's user, which every guest's QEMU runs as); the link trusts
//! only its own CA, so it refuses them, and ftd does not start if it would not
//! ([`Credentials::check_apart`]).
//!
//! - The dialer verifies the listener's certificate against the CA with the server
//!   name = [`PeerConfig::peer_host`].
//! - The listener requires a client certificate, verifies it against the CA, and
//!   checks that it names [`PeerConfig::peer_host`].
//! - A peer that fails (no TLS, no certificate, another CA, another name, expired)
//!   is refused in the TLS handshake: the refusing side logs the address and the
//!   reason in plain words (`tls::explain`: "is not signed by this host's CA
//!   (unknown CA)", "names \"c\", expected \"a\""), the refused side logs the
//!   alert it got; the link task never sees the connection, so there is no
//!   [`LinkEvent::Up`] and no state changes.
//! - Once up, TLS authenticates every record and numbers it: bytes altered,
//!   injected or replayed on the path fail decryption and drop the connection
//!   ([`LostReason::Malformed`]) before the codec sees them; no frame from them is
//!   delivered. Malformed frames inside an authenticated session (garbage, a length
//!   over [`MAX_FRAME`], an unknown frame) drop it the same way.
//! - Session resumption is off: every connection verifies the certificate again.
//!
//! TLS is required, with no opt-out: the link carries requests such as
//! `CreateSecondary` (a domain XML the peer's libvirt defines and starts) and
//! takeover messages, so whoever can speak it can run VMs on, or split-brain, the
//! host. A switch to turn TLS off would end up on in labs and then in production;
//! making the certificates is one command (`ftd make-certs`, [`crate::certs`]), and
//! the configuration's defaults point at where it tells you to copy them
//! (`/etc/ftvirt/tls/{ca.crt,host.crt,host.key}`). [`Credentials::load`] checks
//! the files at ftd's start exactly as the peer will (parsed, key matches, signed by
//! the CA, names this host, not expired), so a mistake stops ftd with the file and
//! the fix rather than failing every connection later.
//!
//! ## In memory, for tests
//!
//! [`MemoryNet::spawn`] starts the same link (acceptor or dialer, `Hello`,
//! heartbeats, detection, knocking, reconnection, [`LinkEvent`]s) over
//! [`tokio::io::duplex`] pipes within one process, and the net answers its knocks.
//! The seam is small: where connections come from (`connect::Listener`,
//! `connect::Dialer`) and where knocks go (`probe::Knocker`), each a TCP or a
//! memory variant; everything above the byte stream is shared. Every timer of the
//! link is a tokio timer, so the tests of the link's logic, and of the daemon on
//! top of it, run with paused time (`#[tokio::test(start_paused = true)]`) and
//! assert exact times. The test plays the network and the machines:
//! [`MemoryNet::cut`] and [`MemoryNet::heal`] the path, [`MemoryNet::kill_daemon`],
//! [`MemoryNet::hang_daemon`] and [`MemoryNet::kill_host`] a host's ftd or the
//! host; [`memory::config`] makes a side's settings.
//!
//! What it does not cover: TLS (skipped: the pipes never leave the process, so
//! this is no way to run the link without TLS), TCP itself (connect, FIN and
//! RST, socket buffers, rebinding a restarted listener's address) and the TCP
//! knock. The tests in `tests` (`tls`, `handshake`, `recovery`, `daemon`) keep
//! those on real sockets.

pub mod frame;
pub mod inbound;
pub mod memory;
pub mod tls;

mod connect;
mod handle;
mod handshake;
mod link;
mod probe;
mod spawn;

#[cfg(test)]
pub(crate) mod tests;

pub use frame::{Frame, NbdExport, Request, Response, MAX_FRAME, PROTOCOL_VERSION};
pub use handle::{LinkEvent, PeerError, PeerHandle, PeerInfo};
pub use link::LostReason;
pub use memory::MemoryNet;
pub use spawn::PeerLink;
pub use tls::{Credentials, CredentialsError};

use std::net::SocketAddr;
use std::time::Duration;

/// Which side of the link this host is (see "Who dials" above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// This host's name sorts first: it connects to [`PeerConfig::peer_addr`].
    Dial,
    /// This host's name sorts last: it listens on [`PeerConfig::listen`].
    Listen,
}

/// The peer link's settings.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// This host's name, as announced in `Hello`.
    pub host: String,
    /// The peer's name: a `Hello` with another name is refused.
    pub peer_host: String,
    /// Where this host listens, if it is the listener (port 0: any free port, see
    /// [`PeerHandle::local_addr`]).
    pub listen: SocketAddr,
    /// Where the peer listens, if this host is the dialer.
    pub peer_addr: SocketAddr,
    /// This process's boot id (default: [`process_boot_id`]).
    pub boot: u64,
    /// Heartbeat period (default 100 ms).
    pub interval: Duration,
    /// The peer is lost when nothing arrived for this long (default 500 ms).
    pub detection: Duration,
    /// First redial delay after a loss or failed attempt (default 50 ms).
    pub backoff_min: Duration,
    /// Largest redial delay (default 1 s).
    pub backoff_max: Duration,
    /// Bound on one TCP connect (default 1 s).
    pub connect_timeout: Duration,
    /// Bound on the TLS handshake and the `Hello` exchange (default 1 s).
    pub handshake_timeout: Duration,
    /// This host's TLS credentials (for [`PeerConfig::host`]).
    pub tls: Credentials,
    /// Where to knock to tell whether the peer's host lives when its ftd does
    /// not talk (default: [`PeerConfig::peer_addr`]; any answer, accept or
    /// refuse, means it lives).
    pub probe_addr: SocketAddr,
}

impl PeerConfig {
    /// Settings with the defaults above.
    pub fn new(
        host: impl Into<String>,
        peer_host: impl Into<String>,
        listen: SocketAddr,
        peer_addr: SocketAddr,
        tls: Credentials,
    ) -> PeerConfig {
        PeerConfig {
            host: host.into(),
            peer_host: peer_host.into(),
            listen,
            peer_addr,
            boot: process_boot_id(),
            interval: Duration::from_millis(100),
            detection: Duration::from_millis(500),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(1),
            tls,
            probe_addr: peer_addr,
        }
    }

    /// The host whose name sorts first dials.
    pub fn role(&self) -> Role {
        if self.host < self.peer_host {
            Role::Dial
        } else {
            Role::Listen
        }
    }

    fn validate(&self) -> Result<(), SpawnError> {
        let bad = |m: String| Err(SpawnError::Config(m));
        if self.host.is_empty() || self.peer_host.is_empty() {
            return bad("host and peer_host must be set".into());
        }
        if self.host == self.peer_host {
            return bad(format!(
                "host and peer_host are both {:?}: give each host its own name",
                self.host
            ));
        }
        if self.tls.host() != self.host {
            return bad(format!(
                "the TLS credentials are {:?}'s, not this host's ({:?}): give this host's \
                 certificate",
                self.tls.host(),
                self.host
            ));
        }
        if self.interval.is_zero() || self.detection <= self.interval {
            return bad(format!(
                "detection ({:?}) must be longer than the heartbeat interval ({:?}), \
                 e.g. 5 intervals",
                self.detection, self.interval
            ));
        }
        if self.backoff_min.is_zero() || self.backoff_max < self.backoff_min {
            return bad(format!(
                "backoff must satisfy 0 < backoff_min ({:?}) <= backoff_max ({:?})",
                self.backoff_min, self.backoff_max
            ));
        }
        if self.connect_timeout.is_zero() || self.handshake_timeout.is_zero() {
            return bad("connect_timeout and handshake_timeout must be non-zero".into());
        }
        Ok(())
    }
}

/// Errors starting the link.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The settings cannot work.
    #[error("invalid peer link configuration: {0}")]
    Config(String),
    /// The listening address cannot be bound.
    #[error("cannot listen for the peer on {addr}: {source} (is another ftd running, or is {addr} not an address of this host?)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A random id drawn once per process: a peer that sees another value after a
/// reconnection knows this ftd restarted (and lost its in-memory state).
pub fn process_boot_id() -> u64 {
    static BOOT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BOOT.get_or_init(random_u64)
}

/// 64 random bits without a `rand` dependency: std's `RandomState` is seeded from
/// the OS's random source; the clock and pid make two draws differ anyway.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    h.write_u128(now.as_nanos());
    h.write_u32(std::process::id());
    h.finish()
}
