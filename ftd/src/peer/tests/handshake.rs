//! The handshake: the right names come up, wrong names and versions are refused.

use super::*;

#[tokio::test]
async fn handshake_brings_both_sides_up_with_the_right_names() {
    logs();
    let mut b = spawn(b_cfg(any_port()));
    let mut a = spawn(a_cfg(b.h.local_addr().unwrap()));
    assert_eq!(a.up().await, ("b".to_string(), b.boot, false));
    assert_eq!(b.up().await, ("a".to_string(), a.boot, false));
    assert!(a.h.is_up() && b.h.is_up());
    assert_eq!(
        a.h.peer(),
        Some(PeerInfo {
            host: "b".into(),
            boot: b.boot
        })
    );
    assert_eq!(b.h.peer().unwrap().boot, a.boot);
}

#[tokio::test]
async fn a_peer_with_the_wrong_name_or_version_is_refused() {
    logs();
    let mut b = spawn(b_cfg(any_port()));
    let addr = b.h.local_addr().unwrap();

    // Fake dialers: wrong name, wrong version. Each gets Refused, then EOF.
    for (hi, want) in [
        (
            hello(PROTOCOL_VERSION, "mallory"),
            "configured to pair with \"a\"",
        ),
        (hello(99, "a"), "version 99"),
    ] {
        let mut w = raw(addr).await;
        frame::write(&mut w, &hi).await.unwrap();
        match read(&mut w).await {
            Ok(Frame::Refused { reason }) => assert!(reason.contains(want), "{reason}"),
            other => panic!("expected Refused, got {other:?}"),
        }
        assert!(matches!(read(&mut w).await, Err(frame::FrameError::Closed)));
    }

    // A real link named "a0" (still sorts first, so it dials) that b does not expect
    // (refused in TLS already: its certificate names "a0").
    let mut a0 = spawn(PeerConfig::new("a0", "b", unused(), addr, creds("a0")));
    a0.quiet(ms(500)).await;
    b.quiet(ms(10)).await;
    assert!(!a0.h.is_up() && !b.h.is_up());

    // The dialer checks the listener's name too.
    let fake = tokio::net::TcpListener::bind(any_port()).await.unwrap();
    let mut a = spawn(a_cfg(fake.local_addr().unwrap()));
    let mut w = fake_accept(&fake, &creds("b")).await;
    assert!(matches!(read(&mut w).await, Ok(Frame::Hello { .. })));
    frame::write(&mut w, &hello(PROTOCOL_VERSION, "c"))
        .await
        .unwrap();
    match read(&mut w).await {
        Ok(Frame::Refused { reason }) => {
            assert!(reason.contains("introduced itself as \"c\""), "{reason}")
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    a.quiet(ms(100)).await;
}
