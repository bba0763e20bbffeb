//! The witness in etcd (v3 API, over the `etcd-client` crate): gRPC over mutual TLS
//! (rustls with ring, as the peer link), one or more endpoints (a three-member
//! cluster answers while two members do).
//!
//! - `read`: one linearizable get of the domain's key (an answer reflects every
//!   swap the cluster has acknowledged).
//! - `swap`: one transaction: if the key's `mod_revision` is the expected one (or,
//!   with no expected record, its `create_revision` is 0: the key does not exist),
//!   put the new record; else get the key. Won: the put's revision is the new
//!   version. Lost: the get says what is there.
//!
//! Every call has one deadline ([`Settings::timeout`]). Within it a transport
//! failure or an etcd member without a leader (requests carry etcd's "require
//! leader" flag, so such a member says so at once instead of waiting) is retried
//! after a short pause (5 ms, doubling up to 50 ms), possibly on another member:
//! safe for swaps too, since a retry that finds its own record reports `Won`
//! (`super::settle_lost`). At the deadline the call fails with
//! [`WitnessError::Unreachable`] and the last failure seen. A refusal (permission,
//! bad request) fails at once with [`WitnessError::Refused`].
//!
//! HTTP/2 keep-alives every second (also while idle) drop the connection to a
//! member whose host died, so the next call goes to a live one.

use super::{check_swap, settle_lost, Keys, Record, RecordError, Revision, Swap, Versioned};
use super::{Witness, WitnessError};
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, Identity, KvClient, TlsOptions, Txn,
    TxnOp, TxnOpResponse,
};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

/// How to reach the witness.
#[derive(Clone)]
pub struct Settings {
    /// The etcd members' client URLs' addresses (`https://<addr>`).
    pub endpoints: Vec<SocketAddr>,
    /// The name every member's certificate must carry; `None`: the member's address
    /// (an IP subjectAltName).
    pub server_name: Option<String>,
    pub tls: Pem,
    pub keys: Keys,
    /// The deadline of each call.
    pub timeout: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("endpoints", &self.endpoints)
            .field("server_name", &self.server_name)
            .field("keys", &self.keys)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The TLS identity towards the witness: the CA its members' certificates come from,
/// and this host's client certificate and key (PEM).
#[derive(Clone)]
pub struct Pem {
    pub ca: Vec<u8>,
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for Pem {
    // Never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pem").finish_non_exhaustive()
    }
}

/// Why the witness's client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot read the witness's {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        /// Which of `ca`, `cert`, `key`.
        key: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the witness's {what} {} holds no {pem}", path.display())]
    NoPem {
        what: &'static str,
        key: &'static str,
        path: PathBuf,
        pem: &'static str,
    },
    #[error("no witness endpoint: list etcd's members under arbiter.witness.endpoints")]
    NoEndpoint,
    #[error("cannot set up the witness's client: {0}")]
    Client(String),
}

impl Pem {
    /// Read the three PEM files, checking that each holds what it should.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Pem, SetupError> {
        let read = |(what, key), path: &Path, marker: &str, pem| {
            let text = std::fs::read(path).map_err(|source| SetupError::Read {
                what,
                key,
                path: path.to_owned(),
                source,
            })?;
            if !String::from_utf8_lossy(&text).contains(marker) {
                return Err(SetupError::NoPem {
                    what,
                    key,
                    path: path.to_owned(),
                    pem,
                });
            }
            Ok(text)
        };
        const CERT: &str = "-----BEGIN CERTIFICATE-----";
        Ok(Pem {
            ca: read(("CA", "ca"), ca, CERT, "certificate")?,
            cert: read(("certificate", "cert"), cert, CERT, "certificate")?,
            key: read(("key", "key"), key, "PRIVATE KEY-----", "private key")?,
        })
    }
}

/// The witness in etcd.
#[derive(Clone)]
pub struct EtcdWitness {
    client: Client,
    keys: Keys,
    timeout: Duration,
    endpoints: String,
}

impl std::fmt::Debug for EtcdWitness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdWitness")
            .field("endpoints", &self.endpoints)
            .field("keys", &self.keys)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What a failed attempt means.
enum Failure {
    /// Try again within the deadline.
    Transient(String),
    /// Waiting will not help.
    Refused(String),
}

impl EtcdWitness {
    /// A client of the witness. Connections are made when calls need them, so this
    /// succeeds while the witness is down.
    pub async fn connect(s: Settings) -> Result<EtcdWitness, SetupError> {
        if s.endpoints.is_empty() {
            return Err(SetupError::NoEndpoint);
        }
        let mut tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(&s.tls.ca))
            .identity(Identity::from_pem(&s.tls.cert, &s.tls.key));
        if let Some(name) = &s.server_name {
            tls = tls.domain_name(name.clone());
        }
        let options = ConnectOptions::new()
            .with_tls(tls)
            .with_timeout(s.timeout)
            .with_connect_timeout(s.timeout)
            .with_keep_alive(
                Duration::from_secs(1),
                s.timeout.max(Duration::from_millis(500)),
            )
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        let urls: Vec<String> = s.endpoints.iter().map(|a| format!("https://{a}")).collect();
        let client = Client::connect(&urls, Some(options))
            .await
            .map_err(|e| SetupError::Client(chain(&e)))?;
        Ok(EtcdWitness {
            client,
            keys: s.keys,
            timeout: s.timeout,
            endpoints: s
                .endpoints
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    fn key(&self, domain: &str) -> Result<String, WitnessError> {
        self.keys
            .domain(domain)
            .map_err(|source| WitnessError::Invalid {
                domain: domain.into(),
                source,
            })
    }

    /// Run `op` until it answers, is refused, or the deadline passes.
    async fn call<T, F, Fut>(&self, mut op: F) -> Result<T, WitnessError>
    where
        F: FnMut(KvClient) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut last = String::from("no answer");
        let attempts = async {
            let mut pause = Duration::from_millis(5);
            loop {
                match op(self.client.kv_client()).await {
                    Ok(v) => return Ok(v),
                    Err(e) => match classify(&e) {
                        Failure::Refused(detail) => {
                            return Err(WitnessError::Refused { detail });
                        }
                        Failure::Transient(detail) => last = detail,
                    },
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
        };
        let outcome = tokio::time::timeout_at(deadline, attempts).await;
        outcome.unwrap_or_else(|_| {
            Err(WitnessError::Unreachable {
                endpoints: self.endpoints.clone(),
                deadline: self.timeout,
                detail: last,
            })
        })
    }

    fn parse(
        &self,
        domain: &str,
        key: &str,
        kv: &etcd_client::KeyValue,
    ) -> Result<Versioned<Record>, WitnessError> {
        let value = Record::parse(domain, kv.value()).map_err(|source| bad(domain, key, source))?;
        Ok(Versioned {
            value,
            revision: Revision(kv.mod_revision()),
        })
    }
}

fn bad(domain: &str, key: &str, source: RecordError) -> WitnessError {
    WitnessError::BadRecord {
        domain: domain.into(),
        key: key.into(),
        source,
    }
}

#[async_trait::async_trait]
impl Witness for EtcdWitness {
    async fn read(&self, domain: &str) -> Result<Option<Versioned<Record>>, WitnessError> {
        let key = self.key(domain)?;
        let resp = self
            .call(|mut kv| {
                let key = key.clone();
                async move { kv.get(key, None).await }
            })
            .await?;
        resp.kvs()
            .first()
            .map(|kv| self.parse(domain, &key, kv))
            .transpose()
    }

    async fn swap(
        &self,
        domain: &str,
        expected: Option<&Versioned<Record>>,
        new: &Record,
    ) -> Result<Swap, WitnessError> {
        check_swap(domain, expected, new)?;
        let key = self.key(domain)?;
        let compare = match expected {
            Some(e) => Compare::mod_revision(key.clone(), CompareOp::Equal, e.revision.0),
            None => Compare::create_revision(key.clone(), CompareOp::Equal, 0),
        };
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::put(key.clone(), new.to_json(), None)])
            .or_else([TxnOp::get(key.clone(), None)]);
        let resp = self
            .call(|mut kv| {
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await?;
        if resp.succeeded() {
            let revision =
                resp.header()
                    .map(|h| h.revision())
                    .ok_or_else(|| WitnessError::Refused {
                        detail: "etcd's answer to the swap has no header (no revision)".into(),
                    })?;
            return Ok(Swap::Won(Versioned {
                value: new.clone(),
                revision: Revision(revision),
            }));
        }
        let now = match resp.op_responses().into_iter().next() {
            Some(TxnOpResponse::Get(get)) => get
                .kvs()
                .first()
                .map(|kv| self.parse(domain, &key, kv))
                .transpose()?,
            other => {
                return Err(WitnessError::Refused {
                    detail: format!("etcd answered a lost swap without the record: {other:?}"),
                })
            }
        };
        Ok(settle_lost(new, now))
    }
}

/// Transport trouble and a member without a leader are worth another try; anything
/// else etcd says is final.
fn classify(e: &etcd_client::Error) -> Failure {
    use etcd_client::Error as E;
    use tonic::Code;
    match e {
        E::TransportError(_) | E::IoError(_) => Failure::Transient(chain(e)),
        E::GRpcStatus(s) => match s.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::Internal
            | Code::Aborted
            | Code::Cancelled
            | Code::ResourceExhausted => Failure::Transient(chain(e)),
            _ => Failure::Refused(chain(e)),
        },
        _ => Failure::Refused(chain(e)),
    }
}

/// An error in plain words: gRPC's message and the causes under it, each said once
/// (not tonic's `Debug` of the whole chain).
fn chain(e: &etcd_client::Error) -> String {
    use std::error::Error as _;
    let (mut parts, mut cur) = match e {
        etcd_client::Error::GRpcStatus(s) => (vec![s.message().to_string()], s.source()),
        e => (vec![e.to_string()], e.source()),
    };
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.retain(|p| !p.is_empty());
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::{Code, Status};

    fn status(code: Code, msg: &str) -> etcd_client::Error {
        etcd_client::Error::GRpcStatus(Status::new(code, msg))
    }

    #[test]
    fn only_transport_trouble_and_no_leader_are_retried() {
        let transient = |e: &etcd_client::Error| matches!(classify(e), Failure::Transient(_));
        assert!(transient(&status(
            Code::Unavailable,
            "etcdserver: no leader"
        )));
        assert!(transient(&status(
            Code::DeadlineExceeded,
            "etcdserver: request timed out"
        )));
        assert!(transient(&status(Code::Unknown, "transport error")));
        for code in [
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::InvalidArgument,
        ] {
            match classify(&status(code, "etcdserver: permission denied")) {
                Failure::Refused(d) => assert_eq!(d, "etcdserver: permission denied"),
                Failure::Transient(d) => panic!("{code:?} retried: {d}"),
            }
        }
        assert!(!transient(&etcd_client::Error::InvalidArgs("x".into())));
    }
}
