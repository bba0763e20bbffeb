//! `ftd make-certs`: the certificates the peer link's and COLO's mutual TLS need,
//! made with `rcgen`: two CAs per cluster, the peer link's and COLO's, and per
//! host a certificate of each that names the host (subjectAltName = the host name
//! in ftd's configuration, and its replication address when given as
//! `HOST=ADDR`) and allows both TLS client and server authentication (either host
//! may dial), each with its own key. QEMU checks the replication address: the
//! secondary's proxy sockets connect to the primary by address, and QEMU (gnutls)
//! then wants that address in the primary's certificate; it also wants key
//! encipherment in a critical key usage.
//!
//! COLO has a CA of its own because QEMU loads COLO's key as libvirt's user, which
//! every guest's QEMU runs as: a guest that escaped into its QEMU can read it. The
//! peer link trusts only its own CA, so COLO's certificate gets nobody onto the
//! link (which can make the peer define and start VMs); the peer link's key never
//! leaves ftd's files.
//!
//! `make` writes, under one directory:
//!
//! ```text
//! DIR/ca.crt, ca.key             the peer link's CA (made on the first run, reused
//! DIR/colo-ca.crt, colo-ca.key   later) and COLO's; the keys (mode 0600) make new
//!                                host certificates: keep them off the hosts
//! DIR/HOST/ca.crt                what goes to HOST's /etc/ftvirt/tls/: the defaults
//! DIR/HOST/host.crt, host.key    of peer-link.tls.{ca,cert,key} and of
//! DIR/HOST/colo-ca.crt           colo.{tls-ca,tls-cert,tls-key} in ftd's
//! DIR/HOST/colo.crt, colo.key    configuration (keys mode 0600)
//! ```
//!
//! A host gets the set (the peer link's, COLO's) it lacks, or both with `force`:
//! run again on a directory made before COLO had its own CA, it adds COLO's CA
//! and files and keeps the peer link's. Every certificate made is checked as ftd
//! checks it at start ([`Credentials`]: `from_pem`, which the peer also makes in
//! the TLS handshake, `check_address`, and for COLO's `check_apart`).
//!
//! [`Credentials`]: crate::peer::Credentials

use crate::peer::tls::CredentialsError;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::net::IpAddr;
use std::path::PathBuf;

mod make;

pub use make::{make, Made, Report};

/// Default validity of what `make` makes (about ten years).
pub const DEFAULT_DAYS: u32 = 3650;

/// One of the two sets of files `make` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Set {
    /// The peer link's: ftd's own, never given to QEMU.
    PeerLink,
    /// COLO's channels': QEMU's copy is its user's (`crate::colo::tls`).
    Colo,
}

impl Set {
    /// The CA's certificate and key, in DIR (the certificate also in DIR/HOST).
    pub fn ca_files(self) -> (&'static str, &'static str) {
        match self {
            Set::PeerLink => ("ca.crt", "ca.key"),
            Set::Colo => ("colo-ca.crt", "colo-ca.key"),
        }
    }

    /// A host's certificate and key, in DIR/HOST.
    pub fn host_files(self) -> (&'static str, &'static str) {
        match self {
            Set::PeerLink => ("host.crt", "host.key"),
            Set::Colo => ("colo.crt", "colo.key"),
        }
    }

    fn ca_name(self) -> &'static str {
        match self {
            Set::PeerLink => "peer-link CA",
            Set::Colo => "COLO CA",
        }
    }
}

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("cannot make the {what}: {source}")]
    Make {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the CA {} cannot be used ({detail}): give the {} and {} made together \
             by an earlier `ftd make-certs`, or another --dir for new CAs",
            dir.join(set.ca_files().0).display(), set.ca_files().0, set.ca_files().1)]
    BadCa {
        dir: PathBuf,
        set: Set,
        detail: String,
    },
    #[error("{} and {} already exist: pass --force to replace {host:?}'s certificates \
             and keys (e.g. to renew them), or leave {host:?} out",
            dir.join(Set::PeerLink.host_files().0).display(),
            dir.join(Set::Colo.host_files().0).display())]
    Exists { dir: PathBuf, host: String },
    #[error(
        "{0:?} is not a host name: use letters, digits, '.', '-' and '_', starting with a \
             letter or digit, as under host: and peers: in ftd's configuration, then \
             optionally =ADDR (its replication address), e.g. hosta=10.200.0.11"
    )]
    BadHost(String),
    #[error(
        "{addr:?} in {arg:?} is not an IP address: give the host's replication address \
             (host.address in its ftd.yaml), e.g. {host}=10.200.0.11"
    )]
    BadAddress {
        arg: String,
        host: String,
        addr: String,
    },
    #[error(
        "no host given: name every host of the cluster, e.g. `ftd make-certs --dir DIR \
             hosta hostb`"
    )]
    NoHost,
    /// A certificate made here does not pass ftd's own check (a bug, or a DIR
    /// whose COLO CA someone replaced with the peer link's).
    #[error("the certificate made for {host:?} does not pass ftd's check: {source}")]
    Check {
        host: String,
        #[source]
        source: CredentialsError,
    },
}

fn made(what: &str) -> impl FnOnce(rcgen::Error) -> CertsError + '_ {
    move |source| CertsError::Make {
        what: what.into(),
        source,
    }
}

/// Validity from an hour ago (clock skew between hosts) for `days`.
fn validity(p: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(days.into());
}

/// A CA that signs host certificates.
#[derive(Debug)]
pub struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A new peer-link CA, valid for `days`.
    pub fn new(days: u32) -> Result<Ca, CertsError> {
        Ca::new_for(Set::PeerLink, days)
    }

    /// A new CA for `set`, valid for `days`.
    pub fn new_for(set: Set, days: u32) -> Result<Ca, CertsError> {
        let key = KeyPair::generate().map_err(made("CA key"))?;
        let mut p = CertificateParams::default();
        // A random suffix tells two clusters' CAs apart in error messages and tools.
        let id = format!("{:08x}", crate::peer::random_u64() as u32);
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, format!("ftvirt {} {id}", set.ca_name()));
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut p, days);
        let cert = p.self_signed(&key).map_err(made("CA certificate"))?;
        Ok(Ca {
            cert_pem: cert.pem(),
            issuer: Issuer::new(p, key),
        })
    }

    /// A CA made earlier, from its certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, CertsError> {
        let key = KeyPair::from_pem(key_pem).map_err(made("CA key from its PEM"))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(made("CA from its PEM"))?;
        Ok(Ca {
            cert_pem: cert_pem.to_owned(),
            issuer,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A certificate for `host` (its name and `addrs`), valid for `days`, with a
    /// new key.
    pub fn host(&self, host: &str, addrs: &[IpAddr], days: u32) -> Result<HostCert, CertsError> {
        let addrs: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
        let mut names = vec![host];
        names.extend(addrs.iter().map(String::as_str));
        self.cert_for(host, &names, days)
    }

    /// A certificate for `host` that names `names` (host names or IP addresses;
    /// tests make wrong ones).
    pub fn cert_for(&self, host: &str, names: &[&str], days: u32) -> Result<HostCert, CertsError> {
        let what = format!("certificate of {host:?}");
        let key = KeyPair::generate().map_err(made(&what))?;
        let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .map_err(made(&what))?;
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, host);
        // QEMU refuses a critical key usage without key encipherment (its
        // `qcrypto_tls_creds_check_cert_key_usage`), whatever the key type.
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.use_authority_key_identifier_extension = true;
        validity(&mut p, days);
        let cert = p.signed_by(&key, &self.issuer).map_err(made(&what))?;
        Ok(HostCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A host's certificate and key, PEM.
#[derive(Clone)]
pub struct HostCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for HostCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostCert").finish_non_exhaustive()
    }
}

/// `HOST` or `HOST=ADDR[,ADDR...]`: a host name and its replication address(es).
pub fn host_arg(arg: &str) -> Result<(String, Vec<IpAddr>), CertsError> {
    let (host, addrs) = match arg.split_once('=') {
        Some((h, a)) => (h, Some(a)),
        None => (arg, None),
    };
    if !crate::config::is_host_name(host) {
        return Err(CertsError::BadHost(arg.to_owned()));
    }
    let addrs = match addrs {
        None => vec![],
        Some(a) => a
            .split(',')
            .map(|one| {
                one.parse::<IpAddr>().map_err(|_| CertsError::BadAddress {
                    arg: arg.to_owned(),
                    host: host.to_owned(),
                    addr: one.to_owned(),
                })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok((host.to_owned(), addrs))
}
