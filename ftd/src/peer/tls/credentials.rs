//! This host's TLS identity for the peer link ([`Credentials`]): the PEM files
//! named in ftd's configuration, read and checked together exactly as the peer
//! will check them (parsed, the key is the certificate's, signed by the CA, names
//! this host, valid now), and [`CredentialsError`], what is wrong and the fix.

use super::explain::{certificate_problem, presented_names};
use super::{check_name, provider, server_name};
use rustls::client::danger::ServerCertVerifier as _;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{Error as TlsError, RootCertStore};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which of the three files a problem is about (`peer-link.tls.<key>`, or
/// `colo.tls-<key>` for COLO's, in ftd's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Ca,
    Cert,
    Key,
}

impl Which {
    /// The configuration key under `peer-link.tls` (`colo.tls-` prefixes it).
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
             give the key that was made with that certificate (host.key next to host.crt, \
             colo.key next to colo.crt)",
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
             `ftd make-certs --force --dir DIR {host}={addr}` (the same DIR as the CAs), \
             or set colo.tls: false where the replication network is protected another \
             way (an authenticated tunnel)", cert.display())]
    NoAddress {
        cert: PathBuf,
        host: String,
        addr: std::net::IpAddr,
        names: String,
    },
    /// COLO's CA file holds a CA certificate of the peer link's
    /// ([`Credentials::check_apart`]).
    #[error("{} holds the peer link's CA certificate ({}, peer-link.tls.ca): COLO's \
             channels need a CA of their own, since QEMU holds COLO's key and any guest \
             that escaped into its QEMU could present a certificate of the peer link's CA \
             to the peer's ftd as this host; {APART}", ca.display(), peer_ca.display())]
    SameCa { ca: PathBuf, peer_ca: PathBuf },
    /// The peer link would accept COLO's certificate
    /// ([`Credentials::check_apart`]).
    #[error("the certificate {} is valid with the peer link's CA {} (peer-link.tls.ca), \
             so the peer's ftd would take it as this host: COLO's certificate must come \
             from a CA the peer link does not trust, since QEMU holds its key; {APART}",
            cert.display(), peer_ca.display())]
    PeerLinkTrusts { cert: PathBuf, peer_ca: PathBuf },
}

/// How to give COLO its own CA, appended to the errors of [`Credentials::check_apart`].
const APART: &str = "run `ftd make-certs --dir DIR HOST=ADDR...` again with the DIR that \
                     holds the peer link's CA: it adds COLO's CA and, in DIR/HOST/, \
                     colo-ca.crt, colo.crt and colo.key, keeping the peer link's files; copy \
                     them to HOST's /etc/ftvirt/tls/ (see README.md, \"Peer link and \
                     replication security\")";

impl CredentialsError {
    /// The file the problem is about.
    pub fn which(&self) -> Which {
        match self {
            CredentialsError::Read { which, .. } | CredentialsError::Pem { which, .. } => *which,
            CredentialsError::BadCa { .. } | CredentialsError::SameCa { .. } => Which::Ca,
            CredentialsError::KeyMismatch { .. } => Which::Key,
            CredentialsError::Untrusted { .. }
            | CredentialsError::WrongHost { .. }
            | CredentialsError::BadName { .. }
            | CredentialsError::NoAddress { .. }
            | CredentialsError::PeerLinkTrusts { .. } => Which::Cert,
        }
    }
}

/// The three files, by path (`peer-link.tls`, or COLO's `colo.tls-*`, in ftd's
/// configuration).
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
    /// The CA certificates, as in the file (to compare with another set's).
    cas: Vec<CertificateDer<'static>>,
    pub(super) roots: Arc<RootCertStore>,
    pub(super) chain: Vec<CertificateDer<'static>>,
    pub(super) key: Arc<PrivateKeyDer<'static>>,
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
        for c in &cas {
            roots.add(c.clone()).map_err(|e| CredentialsError::BadCa {
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
            cas,
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
        let cas: Vec<_> = CertificateDer::pem_slice_iter(ca.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let mut roots = RootCertStore::empty();
        for c in &cas {
            roots.add(c.clone()).unwrap();
        }
        Credentials {
            host: host.to_owned(),
            cas,
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

    /// Check that these credentials (COLO's) are apart from the peer link's,
    /// whose CA certificates are `peer_cas` (from the file `peer_ca`): no CA
    /// certificate in common, and the peer link, as listener or as dialer,
    /// refuses their certificate. QEMU loads COLO's key as libvirt's user, which
    /// every guest's QEMU runs as; the peer link's key stays ftd's. `paths` are
    /// COLO's files, for the message.
    pub fn check_apart(
        &self,
        peer_cas: &[CertificateDer<'static>],
        paths: Paths<'_>,
        peer_ca: &Path,
    ) -> Result<(), CredentialsError> {
        if self.cas.iter().any(|c| peer_cas.contains(c)) {
            return Err(CredentialsError::SameCa {
                ca: paths.ca.to_owned(),
                peer_ca: peer_ca.to_owned(),
            });
        }
        let trusts = || CredentialsError::PeerLinkTrusts {
            cert: paths.cert.to_owned(),
            peer_ca: peer_ca.to_owned(),
        };
        let (ee, rest) = self.chain.split_first().expect("at least one certificate");
        let now = UnixTime::now();
        let mut roots = RootCertStore::empty();
        // One the store refuses is no trust anchor: the peer link refuses it too.
        let _ = roots.add_parsable_certificates(peer_cas.iter().cloned());
        let roots = Arc::new(roots);
        // A verifier that cannot be built (no usable CA) accepts nothing.
        if let Ok(client) =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider()).build()
        {
            if client.verify_client_cert(ee, rest, now).is_ok() {
                return Err(trusts());
            }
        }
        if let (Ok(server), Ok(name)) = (
            WebPkiServerVerifier::builder_with_provider(roots, provider()).build(),
            server_name(&self.host),
        ) {
            if server.verify_server_cert(ee, rest, &name, &[], now).is_ok() {
                return Err(trusts());
            }
        }
        Ok(())
    }

    /// The CA certificates these credentials trust, as in their file.
    pub fn ca_certs(&self) -> &[CertificateDer<'static>] {
        &self.cas
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
