//! The peer link's mutual TLS: the rustls configurations for one peer (`Tls`),
//! built from this host's [`Credentials`] (the cluster's CA, this host's
//! certificate and key, checked together when they are loaded: `credentials`);
//! `explain` puts TLS failures in plain words for the log.
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

use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::{verify_server_name, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, Error as TlsError, ServerConfig,
    SignatureScheme,
};
use std::fmt;
use std::sync::{Arc, OnceLock};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

mod credentials;
mod explain;

pub use credentials::{Credentials, CredentialsError, Paths, Which};
pub(crate) use explain::fault;
use explain::io_reason;
pub use explain::{explain, Fault};

/// ring, TLS 1.3 only.
fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

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
