//! TLS failures in plain words: what is wrong and where to look, for the log lines
//! of refused peers and dropped sessions.

use rustls::pki_types::UnixTime;
use rustls::{AlertDescription, CertificateError, Error as TlsError};

/// A TLS failure in plain words, and whether it means the bytes on the wire were
/// not (or no longer) an intact TLS stream from the peer: corrupted, forged or
/// replayed records, or no TLS at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub reason: String,
    pub forged: bool,
}

/// The TLS error inside an I/O error from tokio-rustls, if any.
pub(crate) fn fault(e: &std::io::Error) -> Option<Fault> {
    let tls = e.get_ref()?.downcast_ref::<TlsError>()?;
    Some(Fault {
        reason: explain(tls),
        forged: matches!(
            tls,
            TlsError::DecryptError
                | TlsError::InvalidMessage(_)
                | TlsError::InappropriateMessage { .. }
                | TlsError::InappropriateHandshakeMessage { .. }
                | TlsError::PeerMisbehaved(_)
        ),
    })
}

/// Why a TLS handshake failed, in plain words.
pub(super) fn io_reason(e: &std::io::Error) -> String {
    if let Some(f) = fault(e) {
        return f.reason;
    }
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "the peer closed the connection during the TLS \
             handshake (it refused this host, or it does not speak TLS: see its log)"
            .into(),
        _ => format!("TLS handshake failed: {e}"),
    }
}

/// A rustls error in plain words: what is wrong and where to look.
pub fn explain(e: &TlsError) -> String {
    match e {
        TlsError::InvalidCertificate(_) => {
            format!("the peer's certificate {}", certificate_problem(e))
        }
        TlsError::NoCertificatesPresented => {
            "the peer presented no certificate (it has none configured, or it is not an \
             ftd with TLS)"
                .into()
        }
        TlsError::AlertReceived(a) => alert(*a),
        TlsError::DecryptError => "a TLS record failed its integrity check: the bytes were \
             corrupted, forged or replayed on the way"
            .into(),
        TlsError::InvalidMessage(_)
        | TlsError::InappropriateMessage { .. }
        | TlsError::InappropriateHandshakeMessage { .. } => format!(
            "the peer sent bytes that are not a valid TLS 1.3 record ({e}): not TLS at all \
             (a plain-TCP client, such as an ftd without TLS), or corrupted or forged data"
        ),
        TlsError::PeerIncompatible(_) => {
            format!("the peer's TLS is incompatible ({e}): ftd requires TLS 1.3")
        }
        TlsError::PeerMisbehaved(_) => format!("the peer broke the TLS protocol ({e})"),
        e => format!("TLS error: {e}"),
    }
}

/// What is wrong with a certificate, after "the peer's certificate ...".
pub(super) fn certificate_problem(e: &TlsError) -> String {
    let TlsError::InvalidCertificate(ce) = e else {
        return e.to_string();
    };
    #[allow(deprecated)]
    match ce {
        CertificateError::UnknownIssuer => "is not signed by this host's CA (unknown CA): \
             the two hosts' certificates must come from the same CA (peer-link.tls.ca)"
            .into(),
        CertificateError::BadSignature => {
            "has a signature that does not verify against this host's CA".into()
        }
        CertificateError::NotValidForNameContext { expected, .. } => format!(
            "names {}, expected {:?} (the host this one pairs with)",
            presented_names(e).unwrap_or_default(),
            expected.to_str()
        ),
        CertificateError::NotValidForName => "does not name the expected host".into(),
        CertificateError::ExpiredContext { not_after, .. } => format!(
            "expired on {}: make a new one with `ftd make-certs --force`",
            date(*not_after)
        ),
        CertificateError::Expired => {
            "has expired: make a new one with `ftd make-certs --force`".into()
        }
        CertificateError::NotValidYetContext { not_before, .. } => format!(
            "is not valid before {}: check both hosts' clocks",
            date(*not_before)
        ),
        CertificateError::NotValidYet => "is not valid yet: check both hosts' clocks".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            format!(
                "is not made for both TLS client and server authentication ({ce}): \
                 make it with `ftd make-certs`"
            )
        }
        CertificateError::BadEncoding => "is not a valid X.509 certificate".into(),
        other => format!("is not acceptable: {other}"),
    }
}

/// The names a certificate presented, from a name mismatch error.
pub(super) fn presented_names(e: &TlsError) -> Option<String> {
    let TlsError::InvalidCertificate(CertificateError::NotValidForNameContext {
        presented, ..
    }) = e
    else {
        return None;
    };
    Some(match presented.as_slice() {
        [] => "no host".to_string(),
        names => names
            .iter()
            .map(|n| {
                // webpki shows them as `DnsName("hostb")` and
                // `IpAddress(10.200.0.12)`: keep the name or the address.
                n.split('"')
                    .nth(1)
                    .or_else(|| n.strip_prefix("IpAddress(")?.strip_suffix(')'))
                    .unwrap_or(n)
                    .to_string()
            })
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// An alert from the peer, in plain words.
fn alert(a: AlertDescription) -> String {
    let why = match a {
        AlertDescription::UnknownCA => {
            "it does not trust this host's certificate: the two hosts' certificates come \
             from different CAs"
        }
        AlertDescription::BadCertificate => {
            "it rejected this host's certificate (e.g. the certificate names another host \
             than the peer expects)"
        }
        AlertDescription::CertificateExpired => {
            "this host's certificate has expired or is not valid yet by the peer's clock"
        }
        AlertDescription::CertificateRequired => "it requires a certificate and got none",
        AlertDescription::UnsupportedCertificate => {
            "this host's certificate is not made for TLS client and server authentication"
        }
        AlertDescription::DecryptError | AlertDescription::BadRecordMac => {
            "a TLS record failed its integrity check on the peer's side"
        }
        _ => "see its log for why",
    };
    format!("the peer ended the TLS session with a {a:?} alert: {why}")
}

fn date(t: UnixTime) -> String {
    let secs = i64::try_from(t.as_secs()).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        ),
        Err(_) => format!("{secs} (UNIX time)"),
    }
}
