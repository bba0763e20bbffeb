//! `peer-link.tls` checked at start ([`Config::peer_credentials`]): the files
//! the peer link and, with `colo.tls`, COLO's channels use.

use super::locate::{locate, Seg};
use super::{Config, ConfigError};
use crate::peer::Credentials;

impl Config {
    /// Read and check the peer link's TLS files (`peer-link.tls`), as the peer will
    /// check them: parsed, the key is the certificate's, the certificate is signed
    /// by the CA, names this host and is valid now. An error names the key, its
    /// place in the file, and the fix.
    pub fn peer_credentials(&self) -> Result<Credentials, ConfigError> {
        let t = &self.peer_link.tls;
        let paths = crate::peer::tls::Paths {
            ca: &t.ca,
            cert: &t.cert,
            key: &t.key,
        };
        Credentials::load(&self.host.name, paths)
            .and_then(|c| {
                if self.colo.tls {
                    c.check_address(self.host.address, &t.cert)?;
                }
                Ok(c)
            })
            .map_err(|e| {
                let key = e.which().key();
                let path = [Seg::Key("peer-link"), Seg::Key("tls"), Seg::Key(key)];
                // Only where it is written: a default has no place in the file.
                let at = locate(&self.text.0, &path)
                    .filter(|f| f.exact)
                    .map(|f| f.at);
                ConfigError::Invalid {
                    origin: self.origin.clone(),
                    at,
                    message: format!("peer-link.tls.{key}: {e}"),
                }
            })
    }
}
