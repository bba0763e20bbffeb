//! Mutual TLS: peers from one CA talk; a peer without the right certificate (another
//! CA, another name, none, no TLS at all) is refused in the handshake with a log
//! line that names its address and why, and never comes up; forged, replayed and
//! malformed bytes drop the session without delivering anything.

use super::logs::Capture;
use super::proxy::Proxy;
use super::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// No event and not up for a while: the side under test saw no peer.
async fn never_up(side: &mut Side) {
    side.quiet(ms(300)).await;
    assert!(!side.h.is_up());
}

/// The TLS records in `bytes` (type, payload length, whole record).
fn records(bytes: &[u8]) -> Vec<(u8, usize, &[u8])> {
    let mut out = vec![];
    let mut rest = bytes;
    while rest.len() >= 5 {
        let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
        if rest.len() < 5 + len {
            break;
        }
        out.push((rest[0], len, &rest[..5 + len]));
        rest = &rest[5 + len..];
    }
    out
}

#[tokio::test]
async fn links_with_certificates_from_one_ca_come_up_and_talk_encrypted() {
    logs();
    let mut b = spawn(b_cfg(any_port()));
    let proxy = Proxy::start(b.h.local_addr().unwrap()).await;
    let mut a = spawn(a_cfg(proxy.addr));
    assert_eq!(a.up().await.0, "b");
    assert_eq!(b.up().await.0, "a");
    let secret = "a-domain-name-that-must-not-travel-in-clear";
    a.h.send(secret, PeerMsg::HostSecondary).unwrap();
    assert_eq!(b.msg().await, (secret.into(), PeerMsg::HostSecondary));
    b.h.send("vm2", PeerMsg::SecondaryReady).unwrap();
    assert_eq!(a.msg().await, ("vm2".into(), PeerMsg::SecondaryReady));

    // On the wire: a TLS handshake record first, then only TLS records; neither the
    // domain name nor a frame's JSON in clear.
    let wire = proxy.recorded();
    let recs = records(&wire);
    assert_eq!(
        recs.first().map(|r| r.0),
        Some(0x16),
        "no TLS ClientHello first"
    );
    assert_eq!(recs.iter().map(|r| r.2.len()).sum::<usize>(), wire.len());
    let clear = |s: &str| wire.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(!clear(secret) && !clear("Hello") && !clear("Heartbeat"));
}

#[tokio::test]
async fn a_dialer_with_a_certificate_from_another_ca_is_refused() {
    let logs = Capture::start();
    let mut b = spawn(b_cfg(any_port()));
    let addr = b.h.local_addr().unwrap();
    let mut cfg = a_cfg(addr);
    cfg.tls = forged("a", &pki().other, &["a"]);
    let mut mallory = spawn(cfg);

    let line = logs
        .line(&["refused a connection", "not signed by this host's CA"])
        .await;
    assert!(line.contains("127.0.0.1:"), "no address: {line}");
    logs.line(&["TLS with", &addr.to_string(), "UnknownCA alert"])
        .await;
    never_up(&mut b).await;
    never_up(&mut mallory).await;
    mallory.kill().await;

    // The real "a" still gets in, to a link that kept no trace of the intruder.
    let mut a = spawn(a_cfg(addr));
    a.up().await;
    assert_eq!(b.up().await, ("a".to_string(), a.boot, false));
}

#[tokio::test]
async fn a_listener_with_a_certificate_from_another_ca_is_refused() {
    let logs = Capture::start();
    let mut cfg = b_cfg(any_port());
    cfg.tls = forged("b", &pki().other, &["b"]);
    let mut mallory = spawn(cfg);
    let addr = mallory.h.local_addr().unwrap();
    let mut a = spawn(a_cfg(addr));

    logs.line(&[
        "TLS with",
        &addr.to_string(),
        "the peer's certificate is not signed by this host's CA (unknown CA)",
    ])
    .await;
    logs.line(&["refused a connection", "UnknownCA alert"])
        .await;
    never_up(&mut a).await;
    never_up(&mut mallory).await;
}

#[tokio::test]
async fn a_certificate_that_names_another_host_is_refused_both_ways() {
    let logs = Capture::start();
    // A dialer calling itself "a" with a good CA's certificate for "c".
    let mut b = spawn(b_cfg(any_port()));
    let addr = b.h.local_addr().unwrap();
    let mut cfg = a_cfg(addr);
    cfg.tls = forged("a", &pki().ca, &["c"]);
    let mut c = spawn(cfg);
    logs.line(&[
        "refused a connection",
        "127.0.0.1:",
        r#"the peer's certificate names "c", expected "a""#,
    ])
    .await;
    logs.line(&["TLS with", &addr.to_string(), "BadCertificate alert"])
        .await;
    never_up(&mut b).await;
    never_up(&mut c).await;

    // A listener calling itself "b" with a certificate for "c".
    let mut cfg = b_cfg(any_port());
    cfg.tls = forged("b", &pki().ca, &["c"]);
    let mut c2 = spawn(cfg);
    let addr2 = c2.h.local_addr().unwrap();
    let mut a = spawn(a_cfg(addr2));
    logs.line(&[
        "TLS with",
        &addr2.to_string(),
        r#"the peer's certificate names "c", expected "b""#,
    ])
    .await;
    never_up(&mut a).await;
    never_up(&mut c2).await;
}

#[tokio::test]
async fn a_client_without_tls_or_without_a_certificate_is_refused() {
    let logs = Capture::start();
    let mut b = spawn(b_cfg(any_port()));
    let addr = b.h.local_addr().unwrap();

    // Plain TCP, a well-formed Hello from "a": TLS refuses it, the socket closes.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let json = frame::encode(&hello(PROTOCOL_VERSION, "a")).unwrap();
    s.write_all(&(json.len() as u32).to_be_bytes())
        .await
        .unwrap();
    s.write_all(&json).await.unwrap();
    let mut got = vec![];
    let r = timeout(SOON, s.read_to_end(&mut got))
        .await
        .expect("not closed in time");
    // At most a TLS alert record (type 21) comes back, never a frame.
    assert!(r.is_err() || got.is_empty() || got[0] == 21, "{got:?}");
    let line = logs
        .line(&["refused a connection", "not a valid TLS 1.3 record"])
        .await;
    assert!(
        line.contains(&s.local_addr().unwrap().to_string()),
        "{line}"
    );
    never_up(&mut b).await;

    // TLS that trusts our CA but presents no certificate.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki().ca.cert_pem().as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let io = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("b").unwrap(), tcp)
        .await
        .expect("the server's side of TLS 1.3 completes first");
    let mut w = frame::wire(Box::new(io));
    let _ = frame::write(&mut w, &hello(PROTOCOL_VERSION, "a")).await;
    match read(&mut w).await {
        Err(frame::FrameError::Tls { reason, .. }) => {
            assert!(reason.contains("CertificateRequired"), "{reason}")
        }
        other => panic!("expected a TLS alert, got {other:?}"),
    }
    logs.line(&["refused a connection", "presented no certificate"])
        .await;
    never_up(&mut b).await;
}

#[tokio::test]
async fn garbage_and_oversized_frames_on_an_authenticated_session_drop_it() {
    let logs = Capture::start();
    let mut b = spawn(b_cfg(any_port()));
    let addr = b.h.local_addr().unwrap();
    let cases: [(&[u8], &str); 3] = [
        // A well-framed frame that is not JSON.
        (b"\0\0\0\x05hello", "malformed frame from the peer (5 bytes"),
        // A length over the limit (2 GiB).
        (
            b"\x7f\xff\xff\xffxxxx",
            "length prefix is over the 1048576-byte limit",
        ),
        // JSON of a frame that does not exist.
        (b"\0\0\0\x0e{\"Teleport\":1}", "unknown variant `Teleport`"),
    ];
    for (bytes, why) in cases {
        // A peer with the right certificate and Hello...
        let mut w = raw(addr).await;
        frame::write(&mut w, &hello(PROTOCOL_VERSION, "a"))
            .await
            .unwrap();
        assert!(matches!(read(&mut w).await, Ok(Frame::Hello { .. })));
        b.up().await;
        frame::write(
            &mut w,
            &Frame::Msg {
                domain: "vm1".into(),
                msg: PeerMsg::TakeOver,
            },
        )
        .await
        .unwrap();
        assert_eq!(b.msg().await, ("vm1".into(), PeerMsg::TakeOver));
        // ...then bytes inside TLS that are not a frame: lost, nothing delivered.
        let io = w.get_mut();
        io.write_all(bytes).await.unwrap();
        io.flush().await.unwrap();
        let reason = b.lost().await;
        assert!(matches!(reason, LostReason::Malformed(_)), "{reason}");
        assert!(reason.to_string().contains(why), "{reason}");
        logs.line(&["peer link: lost", why]).await;
        assert!(!b.h.is_up());
    }
    b.quiet(ms(100)).await;
}

#[tokio::test]
async fn replayed_or_forged_records_drop_the_session_and_deliver_nothing() {
    logs();
    let mut b = spawn(b_cfg(any_port()));
    let proxy = Proxy::start(b.h.local_addr().unwrap()).await;
    let mut a = spawn(a_cfg(proxy.addr));
    a.up().await;
    b.up().await;

    // A message in a record of its own size; record it on the way. (Its text
    // arrives cut to the link's bound, `inbound::text`; a name that long would
    // be refused.)
    let (domain, long) = ("d".to_string(), "x".repeat(3000));
    let arrives = crate::peer::inbound::text(&long);
    a.h.send(domain.clone(), PeerMsg::SecondaryFailed(long.clone()))
        .unwrap();
    assert_eq!(
        b.msg().await,
        (domain.clone(), PeerMsg::SecondaryFailed(arrives.clone()))
    );
    let wire = proxy.recorded();
    let record = records(&wire)
        .into_iter()
        .find(|r| r.0 == 0x17 && r.1 > 3000)
        .expect("the message's record")
        .2
        .to_vec();

    // Replay it on the same connection: TLS numbers records, so it does not
    // decrypt as the next one. The session drops; the message is not delivered again.
    proxy.inject(record.clone()).await;
    let reason = b.lost().await;
    println!("replayed record: {reason}");
    assert!(matches!(reason, LostReason::Malformed(_)), "{reason}");
    assert!(reason.to_string().contains("integrity check"), "{reason}");
    a.lost().await;

    // The link comes back; a forged record (one bit flipped in a recorded one of
    // this connection) fares the same.
    a.up().await;
    b.up().await;
    a.h.send(domain.clone(), PeerMsg::SecondaryFailed(long))
        .unwrap();
    assert_eq!(b.msg().await, (domain, PeerMsg::SecondaryFailed(arrives)));
    let wire = proxy.recorded();
    let mut forged = records(&wire)
        .into_iter()
        .find(|r| r.0 == 0x17 && r.1 > 3000)
        .expect("the message's record")
        .2
        .to_vec();
    forged[100] ^= 1;
    proxy.inject(forged).await;
    let reason = b.lost().await;
    println!("forged record: {reason}");
    assert!(reason.to_string().contains("integrity check"), "{reason}");
}
