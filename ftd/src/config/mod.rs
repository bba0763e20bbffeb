//! ftd's configuration: one YAML file, [`DEFAULT_PATH`] unless the daemon is given
//! another, parsed into a typed [`Config`]. `examples/ftd.yaml` shows every key with
//! its default and meaning; a test loads it and checks that it shows every key and
//! only defaults.
//!
//! Only `host:` (name and replication address) is required. Every mistake is refused
//! with `file:line:column: what is wrong; what to do`, e.g.
//! `/etc/ftvirt/ftd.yaml:7:3: unknown key "checkpont-interval" in defaults; did you
//! mean "checkpoint-interval"?`. Nothing is guessed or silently ignored.
//!
//! ## How errors get their line and column
//!
//! serde_yaml 0.9 has no `Spanned<T>`, and a `serde_yaml::Value` keeps no positions.
//! The module uses serde_yaml's own positions in two ways:
//!
//! 1. Errors raised *while* deserializing carry the position of the offending node
//!    ([`serde_yaml::Error::location`]): unknown keys (`deny_unknown_fields`), wrong
//!    types, missing keys, and single values checked by the `de` helpers (IP
//!    addresses, ports, names, paths, the bus). `error.rs` rewrites serde's wording
//!    ("unknown field `x`, expected one of ...") into ours and suggests the nearest
//!    known key by edit distance.
//! 2. Checks *after* deserializing (ranges, detection time against heartbeat,
//!    duplicate peers and ports, a peer that is this host) name the offending key by
//!    path, e.g. `defaults.detection-time` or `peers[1].name`. `locate.rs` parses the
//!    same text once more with a probe (a `DeserializeSeed`) that walks that path and
//!    fails on purpose at the node it reaches; serde_yaml stamps the failure with the
//!    node's position, which is the position we report. So positions come from the
//!    real parser, whatever the style (block or flow, quoting, anchors), without a
//!    hand-written YAML scanner or a second YAML library.

mod arbiter;
mod colo;
mod credentials;
mod de;
mod error;
mod locate;
mod validate;
mod witness;

#[cfg(test)]
mod tests;

pub use arbiter::{ArbiterConfig, ArbiterKind};
pub use colo::{Colo, ColoPorts};
pub use de::is_host_name;
pub use error::{ConfigError, Position, UnknownPeer};
pub use witness::{Endpoint, WitnessConfig, WitnessTls};

use locate::{locate, Seg};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where ftd reads its configuration unless told otherwise.
pub const DEFAULT_PATH: &str = "/etc/ftvirt/ftd.yaml";
/// The peer link's port, on this host and on peers, unless configured.
pub const DEFAULT_PEER_PORT: u16 = 7777;
/// The well-known bus name ftd owns unless configured.
pub const DEFAULT_BUS_NAME: &str = "org.ftvirt.Ftd1";
/// When this socket exists, `log.output: auto` means journald.
pub const JOURNALD_SOCKET: &str = "/run/systemd/journal/socket";

/// ftd's whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping of ftd's settings (host:, peers:, defaults:, ...)"
)]
pub struct Config {
    /// This host.
    pub host: Host,
    /// The other hosts that can hold a secondary (or a primary) for this one.
    #[serde(default)]
    pub peers: Vec<Peer>,
    /// The peer link's security.
    #[serde(default)]
    pub peer_link: PeerLinkConfig,
    /// Settings of every protected domain.
    #[serde(default)]
    pub defaults: Timing,
    #[serde(default)]
    pub colo: Colo,
    #[serde(default)]
    pub bus: Bus,
    /// This host's libvirtd.
    #[serde(default = "default_libvirt_uri", deserialize_with = "de::libvirt_uri")]
    pub libvirt_uri: String,
    /// Persistent state: each domain's COLO port slot (`ports.json`).
    #[serde(default = "default_state_dir", deserialize_with = "de::abs_dir")]
    pub state_dir: PathBuf,
    /// Runtime files: `ftd.pid`, locked while ftd runs, so that a second ftd on
    /// the same host stops at once instead of fighting over the domains.
    #[serde(default = "default_run_dir", deserialize_with = "de::abs_dir")]
    pub run_dir: PathBuf,
    #[serde(default)]
    pub log: Log,
    /// Who may call the D-Bus API (see `crate::auth`).
    #[serde(default)]
    pub authorization: Authorization,
    /// Who decides which host keeps a domain when the pair is split.
    #[serde(default)]
    pub arbiter: ArbiterConfig,
    /// The file (or other origin) this was read from, for messages.
    #[serde(skip)]
    origin: String,
    /// Its text, to place errors found later (the TLS files) at their key.
    #[serde(skip)]
    text: Text,
}

/// The configuration's text (shown by length only in `Debug`).
#[derive(Clone, Default, PartialEq, Eq)]
struct Text(std::sync::Arc<str>);

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Text({} bytes)", self.0.len())
    }
}

/// This host: its name, as peers know it, and where its peer link listens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with name:, address: and optionally port:"
)]
pub struct Host {
    #[serde(deserialize_with = "de::host_name")]
    pub name: String,
    /// This host's IP on the replication network.
    #[serde(deserialize_with = "de::ip")]
    pub address: IpAddr,
    #[serde(default = "default_peer_port", deserialize_with = "de::port")]
    pub port: u16,
}

/// Another host: where to reach its peer link.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a peer: a mapping with name:, address: and optionally port:"
)]
pub struct Peer {
    #[serde(deserialize_with = "de::host_name")]
    pub name: String,
    /// The peer's IP on the replication network.
    #[serde(deserialize_with = "de::ip")]
    pub address: IpAddr,
    #[serde(default = "default_peer_port", deserialize_with = "de::port")]
    pub port: u16,
}

/// Settings of every protected domain (the `defaults:` section).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping of settings (checkpoint-interval:, heartbeat-interval:, ...)"
)]
pub struct Timing {
    /// Time between two checkpoints when the outputs agree (QEMU's
    /// `x-checkpoint-delay`).
    #[serde(deserialize_with = "de::millis")]
    pub checkpoint_interval: Duration,
    /// How often the peer link sends a heartbeat.
    #[serde(deserialize_with = "de::millis")]
    pub heartbeat_interval: Duration,
    /// No heartbeat for this long: the peer is lost and the survivor takes over.
    #[serde(deserialize_with = "de::millis")]
    pub detection_time: Duration,
    /// Protect again on its own once a lost peer is back.
    pub auto_reprotect: bool,
    /// colo-compare's `compare_timeout`: a primary packet with no secondary match
    /// is released (with a checkpoint) after this long.
    #[serde(deserialize_with = "de::millis")]
    pub compare_timeout: Duration,
    /// How long the first full disk copy may take before protection fails.
    #[serde(deserialize_with = "de::seconds")]
    pub sync_timeout: Duration,
}

/// The heartbeat's default with the etcd witness (detection: 4 of them). On the
/// lab (2 cores, TCG guests) 50/200 ms saw no false alarm in 3 minutes of both
/// hosts' cores kept busy, and the client's first reply after the primary's
/// host died came 448-475 ms after it (docs/witness.md, Timings).
pub const WITNESS_HEARTBEAT: Duration = Duration::from_millis(50);

impl Default for Timing {
    fn default() -> Self {
        Timing {
            checkpoint_interval: Duration::from_millis(2000),
            heartbeat_interval: Duration::from_millis(100),
            detection_time: Duration::from_millis(500),
            auto_reprotect: true,
            compare_timeout: Duration::from_millis(3000),
            sync_timeout: Duration::from_secs(600),
        }
    }
}

/// The D-Bus ftd serves its API on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with connect: and name:"
)]
pub struct Bus {
    #[serde(deserialize_with = "de::bus_kind")]
    pub connect: BusKind,
    /// The well-known name ftd owns.
    #[serde(deserialize_with = "de::bus_name")]
    pub name: String,
}

impl Default for Bus {
    fn default() -> Self {
        Bus {
            connect: BusKind::System,
            name: DEFAULT_BUS_NAME.into(),
        }
    }
}

/// The peer link's settings beyond its addresses (the `peer-link:` section).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a mapping with tls:")]
pub struct PeerLinkConfig {
    pub tls: TlsFiles,
}

/// The mutual TLS of the peer link: required, there is no plain-TCP mode (see
/// [`crate::peer`], "Authentication"). `ftd make-certs` makes the files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with ca:, cert: and key:"
)]
pub struct TlsFiles {
    /// The CA that signed both hosts' certificates (PEM).
    #[serde(deserialize_with = "de::abs_file")]
    pub ca: PathBuf,
    /// This host's certificate, naming host.name (PEM).
    #[serde(deserialize_with = "de::abs_file")]
    pub cert: PathBuf,
    /// Its private key (PEM, readable by ftd only).
    #[serde(deserialize_with = "de::abs_file")]
    pub key: PathBuf,
}

impl Default for TlsFiles {
    fn default() -> Self {
        TlsFiles {
            ca: PathBuf::from("/etc/ftvirt/tls/ca.crt"),
            cert: PathBuf::from("/etc/ftvirt/tls/host.crt"),
            key: PathBuf::from("/etc/ftvirt/tls/host.key"),
        }
    }
}

/// Which bus: written `system`, `session`, or a D-Bus address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusKind {
    System,
    Session,
    /// A private bus, e.g. `unix:path=/run/ftvirt/test/bus`.
    Address(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with output: and level:"
)]
pub struct Log {
    pub output: LogOutput,
    pub level: LogLevel,
}

/// How ftd decides who may call its D-Bus API (the `authorization:` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Authorization {
    /// polkit decides for each caller; root is always allowed; nobody else is
    /// when polkit cannot be asked.
    #[default]
    Polkit,
    /// Every caller that can reach the bus may do everything: for development on
    /// a private bus only.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogOutput {
    /// journald when [`JOURNALD_SOCKET`] exists, stderr otherwise.
    #[default]
    Auto,
    Journald,
    Stderr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

// By hand rather than derived: serde_yaml words a derived enum's type errors as
// "expected a YAML tag starting with '!'".
impl<'de> Deserialize<'de> for LogOutput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const ALL: [LogOutput; 3] = [LogOutput::Auto, LogOutput::Journald, LogOutput::Stderr];
        de::choice(d, &["auto", "journald", "stderr"]).map(|i| ALL[i])
    }
}

impl<'de> Deserialize<'de> for Authorization {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const ALL: [Authorization; 2] = [Authorization::Polkit, Authorization::None];
        de::choice(d, &["polkit", "none"]).map(|i| ALL[i])
    }
}

const LEVELS: [LogLevel; 5] = [
    LogLevel::Error,
    LogLevel::Warn,
    LogLevel::Info,
    LogLevel::Debug,
    LogLevel::Trace,
];
const LEVEL_NAMES: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de::choice(d, &LEVEL_NAMES).map(|i| LEVELS[i])
    }
}

impl LogLevel {
    /// The level as a tracing filter directive.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl LogOutput {
    /// `Auto` decided: journald if it is there.
    pub fn resolve(self, journald_present: bool) -> LogOutput {
        match self {
            LogOutput::Auto if journald_present => LogOutput::Journald,
            LogOutput::Auto => LogOutput::Stderr,
            other => other,
        }
    }
}

impl Log {
    /// Where logs go on this machine (never `Auto`).
    pub fn effective_output(&self) -> LogOutput {
        self.output.resolve(Path::new(JOURNALD_SOCKET).exists())
    }
}

impl Host {
    /// Where the peer link listens.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}

impl Peer {
    /// Where the peer's peer link listens.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}

impl Config {
    /// Read and check the configuration file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_str(&text, &path.display().to_string())
    }

    /// Parse and check `text`; `origin` names it in messages (usually its path).
    pub fn from_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            return Err(ConfigError::Invalid {
                origin: origin.into(),
                at: None,
                message: "the file is empty: it needs at least host: with this host's \
                          name: and address:"
                    .into(),
            });
        }
        let mut config: Config =
            serde_yaml::from_str(text).map_err(|e| error::from_yaml(origin, text, &e))?;
        config.origin = origin.into();
        config.text = Text(text.into());
        config.witness_timing(text);
        validate::check(&config).map_err(|p| p.into_error(text, origin))?;
        Ok(config)
    }

    /// With the etcd witness a false alarm costs at most a needless switch-over,
    /// never two serving copies (docs/witness.md), so the peer counts as lost
    /// sooner: heartbeat [`WITNESS_HEARTBEAT`], detection 4 heartbeats, for each
    /// of the two the file leaves unset.
    fn witness_timing(&mut self, text: &str) {
        if self.arbiter.kind != ArbiterKind::Etcd {
            return;
        }
        let written = |k: &'static str| {
            locate(text, &[Seg::Key("defaults"), Seg::Key(k)]).is_some_and(|f| f.exact)
        };
        if !written("heartbeat-interval") {
            self.defaults.heartbeat_interval = WITNESS_HEARTBEAT;
        }
        if !written("detection-time") {
            self.defaults.detection_time = 4 * self.defaults.heartbeat_interval;
        }
    }

    /// The file this configuration came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The peer called `name`.
    pub fn peer(&self, name: &str) -> Result<&Peer, UnknownPeer> {
        self.peers
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| UnknownPeer {
                name: name.into(),
                known: self.peers.iter().map(|p| p.name.clone()).collect(),
                origin: self.origin.clone(),
            })
    }
}

fn default_peer_port() -> u16 {
    DEFAULT_PEER_PORT
}

fn default_libvirt_uri() -> String {
    "qemu:///system".into()
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/ftvirt")
}

fn default_run_dir() -> PathBuf {
    PathBuf::from("/run/ftvirt")
}
