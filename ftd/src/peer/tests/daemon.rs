//! Telling the death of the peer's ftd from its host's (`link`, "Host or ftd?"):
//! `DaemonLost` while the host answers, `Lost` when it does not (at once, or when
//! it stops answering later). The logic and its timing on the in-memory net with
//! paused time; over TCP, that a real host's answers (a refused or an accepted
//! knock) count.

use super::proxy::Proxy;
use super::*;
use crate::coordinator::PeerMsg;
use tokio::time::{sleep, Instant};

#[tokio::test(start_paused = true)]
async fn a_killed_ftd_on_a_live_host_is_daemon_lost_at_once_until_a_new_one_starts() {
    logs();
    let (net, mut a, b) = mem_pair().await;
    let old = b.boot;
    let t = Instant::now();
    net.kill_daemon("b");
    assert_eq!(a.daemon_lost().await, LostReason::Closed);
    assert_eq!(t.elapsed(), Duration::ZERO, "the close says it at once");
    assert!(!a.h.is_up() && !a.h.host_lost());
    // Its host keeps answering: no Lost follows, however long.
    a.quiet(ms(60_000)).await;

    let t = Instant::now();
    let mut b = mem_spawn(&net, memory::config("b", "a"));
    let (host, boot, restarted) = a.up().await;
    assert_eq!((host.as_str(), boot, restarted), ("b", b.boot, true));
    assert_ne!(boot, old);
    let cfg = memory::config("a", "b");
    assert!(t.elapsed() <= cfg.backoff_max, "{:?}", t.elapsed());
    assert!(!b.up().await.2, "a fresh link has no previous session");
    a.h.send("vm1", PeerMsg::HostSecondary).unwrap();
    assert_eq!(b.msg().await, ("vm1".into(), PeerMsg::HostSecondary));

    // The dialer's ftd killed: the listener sees it the same way.
    net.kill_daemon("a");
    assert_eq!(b.daemon_lost().await, LostReason::Closed);
    let mut a = mem_spawn(&net, memory::config("a", "b"));
    a.up().await;
    assert!(b.up().await.2);
    b.h.send("vm2", PeerMsg::ReleaseSecondary).unwrap();
    assert_eq!(a.msg().await, ("vm2".into(), PeerMsg::ReleaseSecondary));
}

/// An ftd that hangs (no frames, no close) on a host that answers: DaemonLost
/// at the usual deadline, and nothing more while its host answers.
#[tokio::test(start_paused = true)]
async fn a_hung_ftd_on_a_live_host_is_daemon_lost_at_the_usual_deadline() {
    logs();
    let (net, mut a, mut b) = mem_pair().await;
    let (interval, detection) = timing();
    sleep(ms(350)).await; // between two heartbeats
    let t = Instant::now();
    net.hang_daemon("b");
    assert_eq!(a.daemon_lost().await, LostReason::Silent(detection));
    let took = t.elapsed();
    assert!(took > detection - interval && took <= detection, "{took:?}");
    assert!(!a.h.host_lost());
    a.quiet(ms(10_000)).await;
    // (b's own link saw a go silent too; a real hung ftd would not run at all.)
    assert_eq!(b.daemon_lost().await, LostReason::Silent(detection));
    net.heal();
    assert!(!a.up().await.2, "the same ftd, back");
    b.up().await;
}

/// After its ftd was lost, the peer's host stops answering: Lost follows
/// within detection.
#[tokio::test(start_paused = true)]
async fn the_host_of_a_lost_ftd_that_stops_answering_is_lost_within_detection() {
    logs();
    let (net, mut a, _b) = mem_pair().await;
    let (interval, detection) = timing();
    net.kill_daemon("b");
    a.daemon_lost().await;
    // a knocks every interval, answered; go down between two knocks.
    a.quiet(ms(850)).await;
    let t = Instant::now();
    net.kill_host("b");
    assert_eq!(a.lost_host().await, LostReason::HostSilent(detection));
    let took = t.elapsed();
    assert!(took > detection - interval && took <= detection, "{took:?}");
    assert!(a.h.host_lost());
    a.quiet(ms(10_000)).await;
    // It boots, and its ftd starts.
    let mut b = mem_spawn(&net, memory::config("b", "a"));
    assert!(a.up().await.2);
    b.up().await;
    assert!(!a.h.host_lost());
}

/// The peer's host goes down (power cut: no close reaches anyone): Lost within
/// detection, then Up when it is back.
#[tokio::test(start_paused = true)]
async fn a_host_that_goes_down_is_lost_within_detection_and_up_when_back() {
    logs();
    let (net, mut a, _b) = mem_pair().await;
    let (interval, detection) = timing();
    sleep(ms(350)).await; // between two heartbeats
    let t = Instant::now();
    net.kill_host("b");
    assert_eq!(a.lost_host().await, LostReason::Silent(detection));
    let took = t.elapsed();
    assert!(took > detection - interval && took <= detection, "{took:?}");
    assert!(a.h.host_lost());
    a.quiet(ms(10_000)).await;
    let mut b = mem_spawn(&net, memory::config("b", "a"));
    assert!(a.up().await.2);
    b.up().await;
}

#[tokio::test(start_paused = true)]
async fn a_peer_host_that_never_answers_after_the_start_is_lost_then_up_when_it_comes() {
    logs();
    let net = MemoryNet::new();
    net.kill_host("b");
    let (_, detection) = timing();
    let t = Instant::now();
    let mut a = mem_spawn(&net, memory::config("a", "b"));
    assert!(!a.h.host_lost());
    assert_eq!(a.lost_host().await, LostReason::Unreached(detection));
    assert_eq!(t.elapsed(), detection);
    assert!(a.h.host_lost());
    a.quiet(ms(10_000)).await;
    let mut b = mem_spawn(&net, memory::config("b", "a"));
    a.up().await;
    b.up().await;
    assert!(!a.h.host_lost());
}

/// Over TCP: the killed ftd's port refuses, and a refusal is the host's answer.
#[tokio::test]
async fn a_killed_ftd_on_a_live_tcp_host_is_daemon_lost_until_it_is_back() {
    logs();
    let (mut a, b) = pair().await;
    let addr = b.h.local_addr().unwrap();
    b.kill().await;
    let reason = a.daemon_lost().await;
    // FIN, or RST when unread heartbeats were left in its socket.
    assert!(
        matches!(reason, LostReason::Closed | LostReason::Io(_)),
        "{reason}"
    );
    // Its host keeps answering (the port refuses): no Lost follows.
    a.quiet(ms(1500)).await;
    let mut b = spawn(b_cfg(addr));
    a.up().await;
    b.up().await;
}

/// Over TCP: a path that goes silent (no FIN) where the peer's address still
/// accepts connections (the proxy's port stands for the peer's host).
#[tokio::test]
async fn a_silent_tcp_peer_whose_host_answers_is_daemon_lost() {
    logs();
    let mut b = spawn(b_cfg(any_port()));
    let proxy = Proxy::start(b.h.local_addr().unwrap()).await;
    let mut a = spawn(a_cfg(proxy.addr));
    a.up().await;
    b.up().await;
    proxy.cut();
    let reason = a.daemon_lost().await;
    assert!(matches!(reason, LostReason::Silent(_)), "{reason}");
}
