//! The `arbiter.witness:` section: where the witness (etcd, see `crate::witness`)
//! is and how to reach it, used with `arbiter.kind: etcd`; and
//! [`Config::witness_settings`], which reads its TLS files (by default the peer
//! link's) into the etcd client's settings, an error naming the key that points at
//! the file.

use super::de;
use super::locate::{locate, Seg};
use super::{Config, ConfigError, TlsFiles};
use crate::witness::etcd::{Pem, Settings, SetupError};
use crate::witness::{is_prefix, Keys, DEFAULT_PREFIX, DEFAULT_TIMEOUT};
use serde::de::{Deserializer, Error, Visitor};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The `arbiter.witness:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping with endpoints:, server-name:, tls:, prefix: and timeout:"
)]
pub struct WitnessConfig {
    /// The etcd members' client addresses (`IP:port`; names are not resolved).
    pub endpoints: Vec<Endpoint>,
    /// The name every member's certificate carries; `None`: the member's address.
    #[serde(deserialize_with = "server_name")]
    pub server_name: Option<String>,
    pub tls: WitnessTls,
    /// Records live under `<prefix>/domains/<domain>`.
    #[serde(deserialize_with = "prefix")]
    pub prefix: String,
    /// The deadline of each call to the witness.
    #[serde(deserialize_with = "de::millis")]
    pub timeout: Duration,
}

impl Default for WitnessConfig {
    fn default() -> Self {
        WitnessConfig {
            endpoints: Vec::new(),
            server_name: None,
            tls: WitnessTls::default(),
            prefix: DEFAULT_PREFIX.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// One etcd member's client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Endpoint(#[serde(deserialize_with = "endpoint")] pub SocketAddr);

/// The witness's TLS files; each one not given is the peer link's (`peer-link.tls`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with ca:, cert: and key:"
)]
pub struct WitnessTls {
    /// The CA that signed the witness members' certificates (PEM).
    #[serde(deserialize_with = "some_abs_file")]
    pub ca: Option<PathBuf>,
    /// This host's client certificate (PEM).
    #[serde(deserialize_with = "some_abs_file")]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(deserialize_with = "some_abs_file")]
    pub key: Option<PathBuf>,
}

fn some_abs_file<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    de::abs_file(d).map(Some)
}

fn endpoint<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    de::text(
        d,
        "an etcd member's IP address and port such as 10.200.0.20:2379 (names are not resolved)",
        |s| {
            s.parse::<SocketAddr>()
                .ok()
                .filter(|a| a.port() != 0 && !a.ip().is_unspecified() && !a.ip().is_multicast())
        },
    )
}

fn prefix<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    de::text(
        d,
        "a key prefix such as /ftvirt/v1 (starting with /, not ending with one, printable \
         ASCII without spaces)",
        |s| is_prefix(s).then(|| s.to_owned()),
    )
}

/// `null`, or a host name or IP address that the members' certificates carry.
fn server_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Name;
    const WHAT: &str = "null, or the name the witness's certificates carry, such as witness";

    impl<'de> Visitor<'de> for Name {
        type Value = Option<String>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(WHAT)
        }

        fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            de::text(d, WHAT, |s| {
                (de::is_host_name(s) || s.parse::<std::net::IpAddr>().is_ok()).then(|| s.to_owned())
            })
            .map(Some)
        }
    }

    d.deserialize_option(Name)
}

impl Config {
    /// The witness's TLS files: `arbiter.witness.tls`, each missing one taken from
    /// `peer-link.tls`.
    pub fn witness_tls(&self) -> TlsFiles {
        let (w, p) = (&self.arbiter.witness.tls, &self.peer_link.tls);
        TlsFiles {
            ca: w.ca.clone().unwrap_or_else(|| p.ca.clone()),
            cert: w.cert.clone().unwrap_or_else(|| p.cert.clone()),
            key: w.key.clone().unwrap_or_else(|| p.key.clone()),
        }
    }

    /// The etcd client's settings, with the TLS files read. An unreadable file is
    /// reported at the key that names it (`arbiter.witness.tls.<key>`, or
    /// `peer-link.tls.<key>` when the witness uses the peer link's).
    pub fn witness_settings(&self) -> Result<Settings, ConfigError> {
        let w = &self.arbiter.witness;
        let t = self.witness_tls();
        let tls = Pem::load(&t.ca, &t.cert, &t.key).map_err(|e| {
            let key = match &e {
                SetupError::Read { key, .. } | SetupError::NoPem { key, .. } => Some(*key),
                _ => None,
            };
            let own = |k: &str| match k {
                "ca" => w.tls.ca.is_some(),
                "cert" => w.tls.cert.is_some(),
                _ => w.tls.key.is_some(),
            };
            let (path, name) = match key {
                Some(k) if own(k) => (
                    vec![
                        Seg::Key("arbiter"),
                        Seg::Key("witness"),
                        Seg::Key("tls"),
                        Seg::Key(k),
                    ],
                    format!("arbiter.witness.tls.{k}"),
                ),
                Some(k) => (
                    vec![Seg::Key("peer-link"), Seg::Key("tls"), Seg::Key(k)],
                    format!("arbiter.witness.tls.{k} (the peer link's, peer-link.tls.{k})"),
                ),
                None => (vec![Seg::Key("arbiter")], "arbiter.witness".into()),
            };
            ConfigError::Invalid {
                origin: self.origin.clone(),
                at: locate(&self.text.0, &path)
                    .filter(|f| f.exact)
                    .map(|f| f.at),
                message: format!("{name}: {e}"),
            }
        })?;
        Ok(Settings {
            endpoints: w.endpoints.iter().map(|e| e.0).collect(),
            server_name: w.server_name.clone(),
            tls,
            keys: Keys::new(&w.prefix).expect("the prefix was checked when parsed"),
            timeout: w.timeout,
        })
    }
}
