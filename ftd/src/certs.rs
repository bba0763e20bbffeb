//! `ftd make-certs`: the certificates the peer link's and COLO's mutual TLS need,
//! made with `rcgen`: one CA per cluster, and per host a certificate that names the
//! host (subjectAltName = the host name in ftd's configuration, and its replication
//! address when given as `HOST=ADDR`) and allows both TLS client and server
//! authentication (either host may dial), with its own key. QEMU checks the
//! replication address: the secondary's proxy sockets connect to the primary by
//! address, and QEMU (gnutls) then wants that address in the primary's
//! certificate; it also wants key encipherment in a critical key usage.
//!
//! `make` writes, under one directory:
//!
//! ```text
//! DIR/ca.crt            the CA certificate (made on the first run, reused later)
//! DIR/ca.key            the CA's key (mode 0600): keep it off the hosts; it makes
//!                       new host certificates (another host, or a renewal)
//! DIR/HOST/ca.crt       what goes to HOST's /etc/ftvirt/tls/, the defaults of
//! DIR/HOST/host.crt     peer-link.tls.{ca,cert,key} in ftd's configuration
//! DIR/HOST/host.key     (mode 0600)
//! ```
//!
//! Every certificate made is checked with [`Credentials::from_pem`], the same check
//! ftd makes at start and the peer makes in the TLS handshake.

use crate::peer::tls::{Credentials, CredentialsError, Paths};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Default validity of what `make` makes (about ten years).
pub const DEFAULT_DAYS: u32 = 3650;

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
    #[error("the CA in {} cannot be used ({detail}): give the ca.crt and ca.key made \
             together by an earlier `ftd make-certs`, or another --dir for a new CA",
            dir.display())]
    BadCa { dir: PathBuf, detail: String },
    #[error("{} already exists: pass --force to replace {host:?}'s certificate and key \
             (e.g. to renew them), or leave {host:?} out", path.display())]
    Exists { path: PathBuf, host: String },
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
    /// A certificate made here does not pass ftd's own check (a bug).
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
    /// A new CA, valid for `days`.
    pub fn new(days: u32) -> Result<Ca, CertsError> {
        let key = KeyPair::generate().map_err(made("CA key"))?;
        let mut p = CertificateParams::default();
        // A random suffix tells two clusters' CAs apart in error messages and tools.
        let id = format!("{:08x}", crate::peer::random_u64() as u32);
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, format!("ftvirt peer-link CA {id}"));
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

/// What `make` did for one host.
#[derive(Debug)]
pub struct Made {
    pub host: String,
    /// The addresses the certificate names beside the host.
    pub addrs: Vec<IpAddr>,
    /// `DIR/HOST`, to copy to the host's `/etc/ftvirt/tls/`.
    pub dir: PathBuf,
}

/// What `make` did.
#[derive(Debug)]
pub struct Report {
    /// A new CA was made (else the one in the directory was used).
    pub new_ca: bool,
    pub hosts: Vec<Made>,
}

/// Make (or reuse) the CA in `dir` and a certificate for each of `hosts`.
pub fn make(dir: &Path, args: &[String], days: u32, force: bool) -> Result<Report, CertsError> {
    if args.is_empty() {
        return Err(CertsError::NoHost);
    }
    let parsed = args
        .iter()
        .map(|a| host_arg(a))
        .collect::<Result<Vec<_>, _>>()?;
    let hosts: Vec<String> = parsed.iter().map(|(h, _)| h.clone()).collect();
    for h in &hosts {
        let crt = dir.join(h).join("host.crt");
        if !force && crt.exists() {
            return Err(CertsError::Exists {
                path: crt,
                host: h.clone(),
            });
        }
    }
    mkdir(dir)?;
    let (ca_crt, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
    let new_ca = !ca_crt.exists();
    let ca = if new_ca {
        let ca = Ca::new(days)?;
        write(&ca_key, &ca.key_pem(), 0o600)?;
        write(&ca_crt, ca.cert_pem(), 0o644)?;
        ca
    } else {
        let cert = read(&ca_crt)?;
        let key = read(&ca_key)?;
        Ca::from_pem(&cert, &key).map_err(|e| CertsError::BadCa {
            dir: dir.to_owned(),
            detail: e.to_string(),
        })?
    };
    let mut report = Report {
        new_ca,
        hosts: vec![],
    };
    for (h, addrs) in &parsed {
        let hc = ca.host(h, addrs, days)?;
        let paths = Paths {
            ca: &ca_crt,
            cert: Path::new("host.crt"),
            key: Path::new("host.key"),
        };
        Credentials::from_pem(
            h,
            paths,
            ca.cert_pem().as_bytes(),
            hc.cert_pem.as_bytes(),
            hc.key_pem.as_bytes(),
        )
        .map_err(|source| CertsError::Check {
            host: h.clone(),
            source,
        })?;
        let hd = dir.join(h);
        mkdir(&hd)?;
        write(&hd.join("host.key"), &hc.key_pem, 0o600)?;
        write(&hd.join("host.crt"), &hc.cert_pem, 0o644)?;
        write(&hd.join("ca.crt"), ca.cert_pem(), 0o644)?;
        report.hosts.push(Made {
            host: h.clone(),
            addrs: addrs.clone(),
            dir: hd,
        });
    }
    Ok(report)
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

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CertsError + '_ {
    move |source| CertsError::Io {
        path: path.to_owned(),
        source,
    }
}

fn mkdir(dir: &Path) -> Result<(), CertsError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))
}

fn read(path: &Path) -> Result<String, CertsError> {
    std::fs::read_to_string(path).map_err(io(path))
}

/// Replace `path` with `text`, created with `mode` (a key is never readable by
/// others, not even for a moment).
fn write(path: &Path, text: &str, mode: u32) -> Result<(), CertsError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}
