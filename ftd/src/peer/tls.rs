//! The peer link's mutual TLS: this host's [`Credentials`] (the cluster's CA, this
//! host's certificate and key, checked together when they are loaded), the rustls
//! configurations built from them for one peer (`Tls`); `explain` puts TLS
//! failures in plain words for the log.
//!
//! Both sides require TLS 1.3 and a certificate signed by the configured CA that
//! names the other side's host (a subjectAltName DNS name equal to the host name in
//! ftd's configuration): the dialer checks the listener's with the standard server
//! verification (server name = the peer's host name), the listener checks the
//! dialer's with the standard client verification plus the same name check
//! (`PeerCertVerifier`). Session resumption is off, so every connection verifies
//! the certificate again. Certificates must allow both TLS client and server
//! authentication, since either host may be the dialer (`ftd make-certs` makes
//! them so, see [`crate::certs`]).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerifier as _};
use rustls::client::{verify_server_name, Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, ParsedCertificate, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, Error as TlsError, RootCertStore,
    ServerConfig, SignatureScheme,
};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

mod explain;

pub(crate) use explain::fault;
use explain::{certificate_problem, io_reason, presented_names};
pub use explain::{explain, Fault};

/// ring, TLS 1.3 only.
fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// Which of the three files a problem is about (`peer-link.tls.<key>` in ftd's
/// configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Ca,
    Cert,
    Key,
}

impl Which {
    /// The configuration key under `peer-link.tls`.
    pub fn key(self) -> &'static str {
        match self {
            Which::Ca => "ca",
            Which::Cert => "cert",
            Which::Key => "key",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Which::Ca => "CA certificate",
            Which::Cert => "certificate",
            Which::Key => "private key",
        }
    }
}

/// How to get usable files, appended to every credentials error.
const MAKE: &str = "make the CA and the hosts' certificates with \
                    `ftd make-certs --dir DIR HOST=ADDR...` and copy DIR/HOST/* to HOST's \
                    /etc/ftvirt/tls/ (see README.md, \"Peer link and replication security\")";

/// Why this host's TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A file cannot be read.
    #[error("cannot read the {} {}: {source}; {MAKE}", which.what(), path.display())]
    Read {
        which: Which,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file holds no PEM item of the expected kind, or broken PEM.
    #[error("{} holds no usable PEM {} ({detail}); {MAKE}", path.display(), which.what())]
    Pem {
        which: Which,
        path: PathBuf,
        detail: String,
    },
    /// The CA file holds something that is not a CA certificate.
    #[error("{} is not a usable CA certificate ({detail}); {MAKE}", path.display())]
    BadCa { path: PathBuf, detail: String },
    /// The key is not the certificate's.
    #[error("the private key {} does not belong to the certificate {} ({detail}): \
             give the key that was made with that certificate (host.key next to host.crt)",
            key.display(), cert.display())]
    KeyMismatch {
        key: PathBuf,
        cert: PathBuf,
        detail: String,
    },
    /// The certificate does not verify against the CA (other CA, expired, ...).
    #[error("the certificate {} is not valid with the CA {}: {reason}; {MAKE}",
            cert.display(), ca.display())]
    Untrusted {
        cert: PathBuf,
        ca: PathBuf,
        reason: String,
    },
    /// The certificate names another host.
    #[error("the certificate {} names {names}, not this host ({host:?}, host.name): \
             give this host's own certificate, or make one for {host:?}; {MAKE}",
            cert.display())]
    WrongHost {
        cert: PathBuf,
        host: String,
        names: String,
    },
    /// This host's name cannot be a certificate name.
    #[error(
        "host name {host:?} cannot be checked against a certificate ({detail}): \
             use a DNS-style host name"
    )]
    BadName { host: String, detail: String },
    /// The certificate does not name this host's replication address, which
    /// COLO's TLS needs ([`Credentials::check_address`]).
    #[error("the certificate {} names {names} but not this host's replication address \
             {addr} (host.address), which COLO's TLS needs: QEMU on the secondary checks \
             it when its proxy sockets connect to this host; make a new certificate with \
             `ftd make-certs --force --dir DIR {host}={addr}` (the same DIR as the CA), \
             or set colo.tls: false where the replication network is protected another \
             way (an authenticated tunnel)", cert.display())]
    NoAddress {
        cert: PathBuf,
        host: String,
        addr: std::net::IpAddr,
        names: String,
    },
}

impl CredentialsError {
    /// The file the problem is about.
    pub fn which(&self) -> Which {
        match self {
            CredentialsError::Read { which, .. } | CredentialsError::Pem { which, .. } => *which,
            CredentialsError::BadCa { .. } => Which::Ca,
            CredentialsError::KeyMismatch { .. } => Which::Key,
            CredentialsError::Untrusted { .. }
            | CredentialsError::WrongHost { .. }
            | CredentialsError::BadName { .. }
            | CredentialsError::NoAddress { .. } => Which::Cert,
        }
    }
}

/// The three files, by path (`peer-link.tls` in ftd's configuration).
#[derive(Debug, Clone, Copy)]
pub struct Paths<'a> {
    pub ca: &'a Path,
    pub cert: &'a Path,
    pub key: &'a Path,
}

/// This host's TLS identity: the CA that both hosts' certificates come from, and
/// this host's certificate (chain) and private key. Loading checks that they
/// belong together and name `host`, exactly as the peer will check them.
#[derive(Clone)]
pub struct Credentials {
    host: String,
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl fmt::Debug for Credentials {
    // Never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("host", &self.host)
            .field("cas", &self.roots.len())
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Read and check the three PEM files for host `host`.
    pub fn load(host: &str, paths: Paths<'_>) -> Result<Credentials, CredentialsError> {
        let read = |which, path: &Path| {
            std::fs::read(path).map_err(|source| CredentialsError::Read {
                which,
                path: path.to_owned(),
                source,
            })
        };
        let ca = read(Which::Ca, paths.ca)?;
        let cert = read(Which::Cert, paths.cert)?;
        let key = read(Which::Key, paths.key)?;
        Credentials::from_pem(host, paths, &ca, &cert, &key)
    }

    /// Check PEM texts for host `host`; `paths` only name them in errors.
    pub fn from_pem(
        host: &str,
        paths: Paths<'_>,
        ca: &[u8],
        cert: &[u8],
        key: &[u8],
    ) -> Result<Credentials, CredentialsError> {
        let pem = |which, path: &Path, detail: String| CredentialsError::Pem {
            which,
            path: path.to_owned(),
            detail,
        };
        let certs = |which, path: &Path, text: &[u8]| {
            let v = CertificateDer::pem_slice_iter(text)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem(which, path, e.to_string()))?;
            if v.is_empty() {
                return Err(pem(which, path, "no -----BEGIN CERTIFICATE-----".into()));
            }
            Ok(v)
        };
        let cas = certs(Which::Ca, paths.ca, ca)?;
        let chain = certs(Which::Cert, paths.cert, cert)?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
            let detail = match e {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    "no -----BEGIN PRIVATE KEY-----".to_string()
                }
                e => e.to_string(),
            };
            pem(Which::Key, paths.key, detail)
        })?;

        let mut roots = RootCertStore::empty();
        for c in cas {
            roots.add(c).map_err(|e| CredentialsError::BadCa {
                path: paths.ca.to_owned(),
                detail: e.to_string(),
            })?;
        }
        CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider()).map_err(|e| {
            CredentialsError::KeyMismatch {
                key: paths.key.to_owned(),
                cert: paths.cert.to_owned(),
                detail: e.to_string(),
            }
        })?;
        let creds = Credentials {
            host: host.to_owned(),
            roots: Arc::new(roots),
            chain,
            key: Arc::new(key),
        };
        creds.check_own(paths)?;
        Ok(creds)
    }

    /// Credentials as given, unchecked: tests use it to play a peer whose
    /// certificate is wrong (another CA, another name) but who trusts our CA.
    #[cfg(test)]
    pub(crate) fn unchecked(host: &str, ca: &str, cert: &str, key: &str) -> Credentials {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        Credentials {
            host: host.to_owned(),
            roots: Arc::new(roots),
            chain: CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap(),
            key: Arc::new(PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap()),
        }
    }

    /// Check that our certificate names `addr` (an IP subjectAltName): QEMU's
    /// TLS client checks the server's certificate against the address it
    /// connects to when it has no other name (the secondary's proxy sockets).
    pub fn check_address(
        &self,
        addr: std::net::IpAddr,
        cert: &Path,
    ) -> Result<(), CredentialsError> {
        let (ee, _) = self.chain.split_first().expect("at least one certificate");
        check_name(ee, &ServerName::IpAddress(addr.into())).map_err(|e| {
            CredentialsError::NoAddress {
                cert: cert.to_owned(),
                host: self.host.clone(),
                addr,
                names: presented_names(&e).unwrap_or_else(|| certificate_problem(&e)),
            }
        })
    }

    /// The host these credentials are for.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Verify our own certificate as the peer will: as a client and as a server
    /// certificate for our host name, against our CA.
    fn check_own(&self, paths: Paths<'_>) -> Result<(), CredentialsError> {
        let name = server_name(&self.host).map_err(|detail| CredentialsError::BadName {
            host: self.host.clone(),
            detail,
        })?;
        let untrusted = |e: &TlsError| CredentialsError::Untrusted {
            cert: paths.cert.to_owned(),
            ca: paths.ca.to_owned(),
            reason: certificate_problem(e),
        };
        let (ee, rest) = self.chain.split_first().expect("at least one certificate");
        let now = UnixTime::now();
        let client = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider())
            .build()
            .map_err(|e| CredentialsError::BadCa {
                path: paths.ca.to_owned(),
                detail: e.to_string(),
            })?;
        client
            .verify_client_cert(ee, rest, now)
            .map_err(|e| untrusted(&e))?;
        if let Err(e) = check_name(ee, &name) {
            return Err(CredentialsError::WrongHost {
                cert: paths.cert.to_owned(),
                host: self.host.clone(),
                names: presented_names(&e).unwrap_or_else(|| certificate_problem(&e)),
            });
        }
        let server = WebPkiServerVerifier::builder_with_provider(self.roots.clone(), provider())
            .build()
            .map_err(|e| CredentialsError::BadCa {
                path: paths.ca.to_owned(),
                detail: e.to_string(),
            })?;
        server
            .verify_server_cert(ee, rest, &name, &[], now)
            .map_err(|e| untrusted(&e))?;
        Ok(())
    }
}

fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())
}

fn check_name(ee: &CertificateDer<'_>, name: &ServerName<'_>) -> Result<(), TlsError> {
    let parsed = ParsedCertificate::try_from(ee)?;
    verify_server_name(&parsed, name)
}

/// The TLS side of one peer link: this host's credentials, the peer's name.
pub(crate) struct Tls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    peer: ServerName<'static>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").field("peer", &self.peer).finish()
    }
}

impl Tls {
    /// Configurations for talking to `peer_host` with `creds`.
    pub fn new(creds: &Credentials, peer_host: &str) -> Result<Tls, String> {
        let peer = server_name(peer_host)
            .map_err(|e| format!("peer host name {peer_host:?} cannot be a TLS name: {e}"))?;
        let inner = WebPkiClientVerifier::builder_with_provider(creds.roots.clone(), provider())
            .build()
            .map_err(|e| format!("the CA cannot verify peers: {e}"))?;
        let verifier = Arc::new(PeerCertVerifier {
            inner,
            expected: peer.clone(),
        });
        let key = || creds.key.clone_key();
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(verifier)
            .with_single_cert(creds.chain.clone(), key())
            .map_err(|e| format!("this host's certificate cannot be used: {e}"))?;
        server.session_storage = Arc::new(NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
        let mut client = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| e.to_string())?
            .with_root_certificates(creds.roots.clone())
            .with_client_auth_cert(creds.chain.clone(), key())
            .map_err(|e| format!("this host's certificate cannot be used: {e}"))?;
        client.resumption = Resumption::disabled();
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            peer,
        })
    }

    /// Listener side: the TLS handshake, requiring the peer's certificate.
    pub async fn accept(
        &self,
        stream: TcpStream,
    ) -> Result<tokio_rustls::server::TlsStream<TcpStream>, String> {
        self.acceptor
            .accept(stream)
            .await
            .map_err(|e| io_reason(&e))
    }

    /// Dialer side: the TLS handshake, checking the listener is the peer.
    ///
    /// With TLS 1.3 the dialer finishes its handshake before the listener has
    /// checked the dialer's certificate: a refusal arrives as an alert on the
    /// first read (during the `Hello` exchange).
    pub async fn connect(
        &self,
        stream: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        self.connector
            .connect(self.peer.clone(), stream)
            .await
            .map_err(|e| io_reason(&e))
    }
}

/// The listener's check of the dialer's certificate: the standard chain check
/// against the CA, then the name must be the peer's.
#[derive(Debug)]
struct PeerCertVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    expected: ServerName<'static>,
}

impl ClientCertVerifier for PeerCertVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_name(end_entity, &self.expected)?;
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
