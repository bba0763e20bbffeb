//! [`make`]: the directory `ftd make-certs` fills (see [`crate::certs`]): each
//! CA made once and reused, each host's two sets of files made when missing or
//! forced, each checked as ftd checks it at start before it is written, every
//! file replaced atomically and every key created 0600.

use super::{host_arg, Ca, CertsError, Set};
use crate::peer::tls::{Credentials, Paths};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What `make` did for one host.
#[derive(Debug)]
pub struct Made {
    pub host: String,
    /// The addresses the certificates name beside the host.
    pub addrs: Vec<IpAddr>,
    /// `DIR/HOST`, to copy to the host's `/etc/ftvirt/tls/`.
    pub dir: PathBuf,
    /// The sets made now (the others were there and kept).
    pub sets: Vec<Set>,
}

/// What `make` did.
#[derive(Debug)]
pub struct Report {
    /// The CAs made now (the others were in the directory and used).
    pub new_cas: Vec<Set>,
    pub hosts: Vec<Made>,
}

/// Make (or reuse) the two CAs in `dir` and, for each host of `args` (`HOST` or
/// `HOST=ADDR`), the sets of files it lacks, or both with `force`. A host that
/// has both is refused without `force`, before anything is written.
pub fn make(dir: &Path, args: &[String], days: u32, force: bool) -> Result<Report, CertsError> {
    if args.is_empty() {
        return Err(CertsError::NoHost);
    }
    let parsed = args
        .iter()
        .map(|a| host_arg(a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut todo = Vec::with_capacity(parsed.len());
    for (host, addrs) in parsed {
        let hd = dir.join(&host);
        let sets: Vec<Set> = [Set::PeerLink, Set::Colo]
            .into_iter()
            .filter(|s| force || !hd.join(s.host_files().0).exists())
            .collect();
        if sets.is_empty() {
            return Err(CertsError::Exists { dir: hd, host });
        }
        todo.push(Made {
            host,
            addrs,
            dir: hd,
            sets,
        });
    }
    mkdir(dir)?;
    let mut new_cas = vec![];
    let mut cas = vec![];
    for set in [Set::PeerLink, Set::Colo] {
        let (ca, new) = ca_in(dir, set, days)?;
        if new {
            new_cas.push(set);
        }
        cas.push(ca);
    }
    let [peer_ca, colo_ca] = [&cas[0], &cas[1]];
    for m in &todo {
        mkdir(&m.dir)?;
        for &set in &m.sets {
            let ca = if set == Set::PeerLink {
                peer_ca
            } else {
                colo_ca
            };
            host_files(dir, m, set, ca, peer_ca, days)?;
        }
    }
    Ok(Report {
        new_cas,
        hosts: todo,
    })
}

/// The CA of `set` in `dir`, made now (true) if it is not there.
fn ca_in(dir: &Path, set: Set, days: u32) -> Result<(Ca, bool), CertsError> {
    let (crt, key) = set.ca_files();
    let (crt, key) = (dir.join(crt), dir.join(key));
    if crt.exists() {
        let ca = Ca::from_pem(&read(&crt)?, &read(&key)?).map_err(|e| CertsError::BadCa {
            dir: dir.to_owned(),
            set,
            detail: e.to_string(),
        })?;
        return Ok((ca, false));
    }
    let ca = Ca::new_for(set, days)?;
    write(&key, &ca.key_pem(), 0o600)?;
    write(&crt, ca.cert_pem(), 0o644)?;
    Ok((ca, true))
}

/// Make `m`'s files of `set` with `ca`, check them as ftd does at start (COLO's
/// also against the peer link's CA, `peer_ca`), and write them into `m.dir`.
fn host_files(
    dir: &Path,
    m: &Made,
    set: Set,
    ca: &Ca,
    peer_ca: &Ca,
    days: u32,
) -> Result<(), CertsError> {
    let hc = ca.host(&m.host, &m.addrs, days)?;
    let (ca_name, _) = set.ca_files();
    let (crt, key) = set.host_files();
    let ca_path = dir.join(ca_name);
    let paths = Paths {
        ca: &ca_path,
        cert: Path::new(crt),
        key: Path::new(key),
    };
    let check = |source| CertsError::Check {
        host: m.host.clone(),
        source,
    };
    let creds = Credentials::from_pem(
        &m.host,
        paths,
        ca.cert_pem().as_bytes(),
        hc.cert_pem.as_bytes(),
        hc.key_pem.as_bytes(),
    )
    .map_err(check)?;
    for &a in &m.addrs {
        creds.check_address(a, paths.cert).map_err(check)?;
    }
    if set == Set::Colo {
        let peer_cas = CertificateDer::pem_slice_iter(peer_ca.cert_pem().as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("rcgen's PEM of the CA certificate");
        let peer_path = dir.join(Set::PeerLink.ca_files().0);
        creds
            .check_apart(&peer_cas, paths, &peer_path)
            .map_err(check)?;
    }
    write(&m.dir.join(key), &hc.key_pem, 0o600)?;
    write(&m.dir.join(crt), &hc.cert_pem, 0o644)?;
    write(&m.dir.join(ca_name), ca.cert_pem(), 0o644)
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
