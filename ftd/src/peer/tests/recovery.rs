//! Losing the peer (killed, silent, stalled, sending garbage) and getting it
//! back. Reconnection, detection and stalls on the in-memory net with paused
//! time; the kill of a real process's sockets and garbage on the wire over TCP.

use super::proxy::Proxy;
use super::*;
use crate::coordinator::PeerMsg;
use tokio::time::Instant;

#[tokio::test]
async fn a_killed_peer_is_lost_and_the_link_comes_back_when_it_restarts() {
    logs();
    let (mut a, b) = pair().await;
    let addr = b.h.local_addr().unwrap();
    let old_boot = b.boot;

    // Kill the listener: its socket closes, so the dialer sees EOF (not the
    // silence of the detection time).
    b.kill().await;
    let reason = a.lost().await;
    // FIN, or RST when unread heartbeats were left in its socket.
    assert!(
        matches!(reason, LostReason::Closed | LostReason::Io(_)),
        "{reason}"
    );
    assert!(!a.h.is_up());

    // Restart it on the same address (SO_REUSEADDR) with a new boot id.
    let mut b = spawn(b_cfg(addr));
    let (host, boot, restarted) = a.up().await;
    assert_eq!(host, "b");
    assert_ne!(boot, old_boot);
    assert_eq!(boot, b.boot);
    assert!(restarted);
    let (_, _, restarted) = b.up().await;
    assert!(!restarted, "a fresh link has no previous session");
    a.h.send("vm1", PeerMsg::HostSecondary).unwrap();
    assert_eq!(b.msg().await, ("vm1".into(), PeerMsg::HostSecondary));
    b.h.send("vm1", PeerMsg::SecondaryReady).unwrap();
    assert_eq!(a.msg().await, ("vm1".into(), PeerMsg::SecondaryReady));

    // Kill the dialer, restart it: the listener sees it go and come back.
    let old_a = a.boot;
    a.kill().await;
    let reason = b.lost().await;
    assert!(
        matches!(reason, LostReason::Closed | LostReason::Io(_)),
        "{reason}"
    );
    let mut a = spawn(a_cfg(addr));
    let (host, boot, restarted) = b.up().await;
    assert_eq!((host.as_str(), restarted), ("a", true));
    assert_ne!(boot, old_a);
    a.up().await;
    b.h.send("vm2", PeerMsg::ReleaseSecondary).unwrap();
    assert_eq!(a.msg().await, ("vm2".into(), PeerMsg::ReleaseSecondary));
}

/// After a long outage the dialer's backoff is at its maximum (1 s): the link is
/// back within that long once the peer's ftd runs again.
#[tokio::test(start_paused = true)]
async fn a_peer_down_for_a_while_is_back_within_the_largest_backoff() {
    logs();
    let (net, mut a, _b) = mem_pair().await;
    let backoff_max = memory::config("a", "b").backoff_max;
    net.kill_daemon("b");
    a.lost().await;
    // Redials at 50, 150, 350, 750, 1550, 2550, 3550 ms after the loss: coming
    // back at 2600 ms is close to the worst case (the next try is 950 ms away).
    tokio::time::sleep(ms(2600)).await;
    let t = Instant::now();
    let mut b = mem_spawn(&net, memory::config("b", "a"));
    a.up().await;
    b.up().await;
    let took = t.elapsed();
    assert!(took <= backoff_max, "{took:?}");
    assert_eq!(took, ms(950));
}

#[tokio::test]
async fn garbage_in_a_session_drops_the_connection_and_the_link_recovers() {
    logs();
    let mut b = spawn(b_cfg(any_port()));
    let proxy = Proxy::start(b.h.local_addr().unwrap()).await;
    let mut a = spawn(a_cfg(proxy.addr));
    a.up().await;
    b.up().await;

    // Bytes injected on the path are not a TLS record ("G" is no record type).
    proxy.inject(b"GET / HTTP/1.1\r\n\r\n".to_vec()).await;
    let reason = b.lost().await;
    println!("garbage: listener dropped the connection: {reason}");
    assert!(matches!(reason, LostReason::Malformed(_)), "{reason}");
    assert!(reason.to_string().contains("TLS"), "{reason}");
    let reason = a.lost().await;
    assert!(
        matches!(reason, LostReason::Closed | LostReason::Io(_)),
        "{reason}"
    );
    a.up().await;
    b.up().await;

    // A well-framed frame that is not JSON, in clear: not TLS either. (Garbage
    // inside TLS, from a peer with a certificate: see `tls`.)
    proxy.inject(b"\0\0\0\x05hello".to_vec()).await;
    let reason = b.lost().await;
    assert!(matches!(reason, LostReason::Malformed(_)), "{reason}");
    a.lost().await;
    a.up().await;
    b.up().await;
    a.h.send("vm1", PeerMsg::TookOver).unwrap();
    assert_eq!(b.msg().await, ("vm1".into(), PeerMsg::TookOver));
}

#[tokio::test]
async fn garbage_or_an_unknown_frame_from_a_fake_peer_is_dropped() {
    logs();
    let mut b = spawn(b_cfg(any_port()));
    let addr = b.h.local_addr().unwrap();

    // Garbage instead of TLS: closed without a session, after at most a TLS alert
    // record (type 21).
    let mut s = TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut s, b"\xff\xfe garbage \x00\x01")
        .await
        .unwrap();
    let mut got = vec![];
    let r = timeout(SOON, tokio::io::AsyncReadExt::read_to_end(&mut s, &mut got))
        .await
        .expect("not closed in time");
    assert!(r.is_err() || got.is_empty() || got[0] == 21, "{got:?}");
    b.quiet(ms(50)).await;

    // A proper handshake, then a frame of an unknown kind (a newer protocol?).
    let mut w = raw(addr).await;
    frame::write(&mut w, &hello(PROTOCOL_VERSION, "a"))
        .await
        .unwrap();
    assert!(matches!(read(&mut w).await, Ok(Frame::Hello { .. })));
    b.up().await;
    futures::SinkExt::send(
        &mut w,
        bytes::Bytes::from_static(br#"{"Teleport":{"to":"mars"}}"#),
    )
    .await
    .unwrap();
    let reason = b.lost().await;
    println!("unknown frame: {reason}");
    assert!(reason.to_string().contains("unknown variant"), "{reason}");
    loop {
        // Heartbeats may precede the close.
        match read(&mut w).await {
            Ok(Frame::Heartbeat { .. }) => continue,
            Err(frame::FrameError::Closed | frame::FrameError::Io(_)) => break,
            other => panic!("expected the connection to close, got {other:?}"),
        }
    }

    // The real peer still gets through.
    let mut a = spawn(a_cfg(addr));
    a.up().await;
    b.up().await;
}

/// The whole process does not run for three detection times, as when a loaded
/// machine starves ftd (here: the paused clock jumps, so every timer of both
/// ends fires late at once): neither end was silent while the other was
/// running, so neither is lost. Without the stall grace both ends declared each
/// other lost at the same instant (the benchmark's false failover on both
/// sides).
#[tokio::test(start_paused = true)]
async fn a_stall_of_ftd_itself_is_not_a_lost_peer() {
    logs();
    let (_net, mut a, mut b) = mem_pair().await;
    tokio::time::advance(ms(1500)).await;
    a.quiet(ms(10_000)).await;
    b.quiet(Duration::ZERO).await;
    assert!(a.h.is_up() && b.h.is_up());
    a.h.send("vm1", PeerMsg::HostSecondary).unwrap();
    assert_eq!(b.msg().await, ("vm1".into(), PeerMsg::HostSecondary));
}

/// A path cut while ftd was stalled is still a lost peer, soon after the stall:
/// the grace is a couple of heartbeat periods, not a new detection time.
#[tokio::test(start_paused = true)]
async fn a_path_cut_during_a_stall_is_still_lost() {
    logs();
    let (net, mut a, mut b) = mem_pair().await;
    let (interval, detection) = timing();
    net.cut();
    tokio::time::advance(ms(1500)).await;
    let t = Instant::now();
    for side in [&mut a, &mut b] {
        assert_eq!(side.lost().await, LostReason::Silent(detection));
        let took = t.elapsed();
        assert!(took <= 2 * interval, "{took:?}");
    }
}
