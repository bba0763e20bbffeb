//! The TLS files checked at start: the peer link's (`peer-link.tls`,
//! [`Config::peer_credentials`]) and, with `colo.tls`, COLO's own
//! (`colo.tls-ca`, `tls-cert`, `tls-key`, [`Config::check_colo_tls`]), which
//! QEMU loads as libvirt's user and the peer link must not accept.

use super::locate::{locate, Seg};
use super::{Config, ConfigError};
use crate::peer::tls::{CredentialsError, Paths, Which};
use crate::peer::Credentials;

impl Config {
    /// Read and check the peer link's TLS files (`peer-link.tls`), as the peer will
    /// check them: parsed, the key is the certificate's, the certificate is signed
    /// by the CA, names this host and is valid now. An error names the key, its
    /// place in the file, and the fix.
    pub fn peer_credentials(&self) -> Result<Credentials, ConfigError> {
        let t = &self.peer_link.tls;
        let paths = Paths {
            ca: &t.ca,
            cert: &t.cert,
            key: &t.key,
        };
        Credentials::load(&self.host.name, paths).map_err(|e| {
            let key = e.which().key();
            self.tls_error(&[Seg::Key("peer-link"), Seg::Key("tls"), Seg::Key(key)], &e)
        })
    }

    /// With `colo.tls`, read and check COLO's TLS files as [`peer_credentials`]
    /// does the peer link's, and also that the certificate names this host's
    /// replication address (QEMU on the secondary checks it) and that COLO's CA
    /// is not the peer link's, whose credentials are `peer`, and the peer link
    /// would refuse COLO's certificate: QEMU holds COLO's key as the user every
    /// guest's QEMU runs as, so with one CA for both a guest that escaped into
    /// its QEMU could act as this host on the peer link. Without `colo.tls`
    /// nothing is read.
    ///
    /// [`peer_credentials`]: Config::peer_credentials
    pub fn check_colo_tls(&self, peer: &Credentials) -> Result<(), ConfigError> {
        if !self.colo.tls {
            return Ok(());
        }
        let c = &self.colo;
        let paths = Paths {
            ca: &c.tls_ca,
            cert: &c.tls_cert,
            key: &c.tls_key,
        };
        Credentials::load(&self.host.name, paths)
            .and_then(|colo| {
                colo.check_address(self.host.address, &c.tls_cert)?;
                colo.check_apart(peer.ca_certs(), paths, &self.peer_link.tls.ca)
            })
            .map_err(|e| {
                let key = match e.which() {
                    Which::Ca => "tls-ca",
                    Which::Cert => "tls-cert",
                    Which::Key => "tls-key",
                };
                self.tls_error(&[Seg::Key("colo"), Seg::Key(key)], &e)
            })
    }

    /// `e` about the key at `path`, placed where the key is written (a default
    /// has no place in the file).
    fn tls_error(&self, path: &[Seg], e: &CredentialsError) -> ConfigError {
        let name: Vec<&str> = path
            .iter()
            .filter_map(|s| match s {
                Seg::Key(k) => Some(*k),
                Seg::Index(_) => None,
            })
            .collect();
        ConfigError::Invalid {
            origin: self.origin.clone(),
            at: locate(&self.text.0, path).filter(|f| f.exact).map(|f| f.at),
            message: format!("{}: {e}", name.join(".")),
        }
    }
}
