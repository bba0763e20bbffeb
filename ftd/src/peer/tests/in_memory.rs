//! The in-memory net ([`MemoryNet`]) with paused time: both sides up, messages
//! and requests, a cut path lost on both sides and back when healed, a link that
//! stops and its host's next one. Times here are virtual, hence exact.
//!
//! (The host-or-ftd tests on the net are in `daemon`, the reconnection and stall
//! tests in `recovery`.)

use super::*;
use crate::coordinator::PeerMsg;
use tokio::time::{sleep, Instant};

#[tokio::test(start_paused = true)]
async fn both_sides_come_up_at_once_with_the_right_names() {
    logs();
    let net = MemoryNet::new();
    let t = Instant::now();
    let mut b = mem_spawn(&net, memory::config("b", "a"));
    let mut a = mem_spawn(&net, memory::config("a", "b"));
    assert_eq!(a.up().await, ("b".to_string(), b.boot, false));
    assert_eq!(b.up().await, ("a".to_string(), a.boot, false));
    assert_eq!(
        t.elapsed(),
        Duration::ZERO,
        "no backoff, no timer on the way"
    );
    assert_eq!(
        a.h.peer(),
        Some(PeerInfo {
            host: "b".into(),
            boot: b.boot
        })
    );
    assert_eq!(b.h.peer().unwrap().boot, a.boot);
    assert_eq!(a.h.local_addr(), None);
    // Heartbeats keep it up, and nothing else happens.
    a.quiet(ms(10_000)).await;
    b.quiet(Duration::ZERO).await;
    assert!(a.h.is_up() && b.h.is_up());
}

#[tokio::test(start_paused = true)]
async fn the_dialer_started_first_comes_up_with_its_next_dial() {
    logs();
    let net = MemoryNet::new();
    let mut a = mem_spawn(&net, memory::config("a", "b"));
    // b has no link yet: refused (its host answers), a redials after backoff_min.
    sleep(ms(10)).await;
    let t = Instant::now();
    let mut b = mem_spawn(&net, memory::config("b", "a"));
    a.up().await;
    b.up().await;
    assert_eq!(
        t.elapsed(),
        ms(40),
        "the first redial is 50 ms after the start"
    );
}

#[tokio::test(start_paused = true)]
async fn messages_and_requests_cross_both_ways() {
    logs();
    let (_net, mut a, mut b) = mem_pair().await;
    let t = Instant::now();
    a.h.send("vm1", PeerMsg::HostSecondary).unwrap();
    b.h.send("vm2", PeerMsg::SecondaryReady).unwrap();
    assert_eq!(b.msg().await, ("vm1".into(), PeerMsg::HostSecondary));
    assert_eq!(a.msg().await, ("vm2".into(), PeerMsg::SecondaryReady));

    let (ah, bh) = (a.h.clone(), b.h.clone());
    let (_sa, _sb) = (super::traffic::serve(a), super::traffic::serve(b));
    assert_eq!(
        ah.request(Request::Ping, SOON).await.unwrap(),
        Response::Pong
    );
    assert_eq!(
        bh.request(Request::Ping, SOON).await.unwrap(),
        Response::Pong
    );
    let e = bh
        .request(
            Request::SecondarySpec {
                domain: "vm".into(),
            },
            SOON,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, PeerError::Remote { message, .. } if message.contains("not protected")),
        "{e}"
    );
    assert_eq!(t.elapsed(), Duration::ZERO, "in memory, nothing waits");
}

/// The path is cut (no FIN, no RST: silence, and knocks unanswered): each side
/// is lost `detection` after the last frame it got, so within detection of the
/// cut; then, healed, the dialer gets through again on its own.
#[tokio::test(start_paused = true)]
async fn a_cut_path_is_lost_on_both_sides_within_detection_and_back_when_healed() {
    logs();
    let (net, mut a, mut b) = mem_pair().await;
    let (interval, detection) = timing();
    // Heartbeats went both ways at 0, 100, 200 and 300 ms: cut between two.
    sleep(ms(350)).await;
    let t = Instant::now();
    net.cut();
    for side in [&mut a, &mut b] {
        let reason = side.lost_host().await;
        let took = t.elapsed();
        assert_eq!(reason, LostReason::Silent(detection));
        assert!(took > detection - interval && took <= detection, "{took:?}");
        assert_eq!(
            took,
            ms(300) + detection - ms(350),
            "from the last heartbeat"
        );
        assert!(side.h.host_lost() && !side.h.is_up());
    }
    // Nothing gets through while it is cut.
    a.quiet(ms(10_000)).await;
    b.quiet(Duration::ZERO).await;

    net.heal();
    let t = Instant::now();
    let (_, _, restarted) = a.up().await;
    assert!(!restarted, "the same ftd on the other side");
    b.up().await;
    let cfg = memory::config("a", "b");
    assert!(t.elapsed() <= cfg.backoff_max, "{:?}", t.elapsed());
    a.h.send("vm1", PeerMsg::StandingBy).unwrap();
    assert_eq!(b.msg().await, ("vm1".into(), PeerMsg::StandingBy));
}

/// A cut shorter than the detection time loses nothing: the frames that waited
/// are delivered when it heals, in order.
#[tokio::test(start_paused = true)]
async fn a_short_cut_is_not_a_loss_and_delays_nothing_for_good() {
    logs();
    let (net, mut a, mut b) = mem_pair().await;
    let (_, detection) = timing();
    net.cut();
    a.h.send("vm1", PeerMsg::HostSecondary).unwrap();
    a.h.send("vm1", PeerMsg::TakeOver).unwrap();
    b.quiet(detection / 2 - ms(20)).await;
    net.heal();
    assert_eq!(b.msg().await, ("vm1".into(), PeerMsg::HostSecondary));
    assert_eq!(b.msg().await, ("vm1".into(), PeerMsg::TakeOver));
    a.quiet(ms(5000)).await;
    b.quiet(Duration::ZERO).await;
}

/// Converted from the TCP test that asserted a wall-clock bound: dropping the
/// owner (handle and events, no cancel) stops the link, which closes its
/// connection: the peer sees its ftd gone at once. The net then takes the
/// host's next link.
#[tokio::test(start_paused = true)]
async fn dropping_the_owner_stops_the_link() {
    logs();
    let (net, a, mut b) = mem_pair().await;
    let t = Instant::now();
    drop(a);
    assert_eq!(b.daemon_lost().await, LostReason::Closed);
    assert_eq!(t.elapsed(), Duration::ZERO);
    let mut a = mem_spawn(&net, memory::config("a", "b"));
    a.up().await;
    assert!(b.up().await.2, "a new ftd (boot) on a");
}

#[tokio::test(start_paused = true)]
async fn a_host_runs_one_link_at_a_time() {
    logs();
    let (net, a, _b) = mem_pair().await;
    let e = net
        .spawn(memory::config("a", "b"), CancellationToken::new())
        .unwrap_err();
    assert!(e.to_string().contains("already runs a peer link"), "{e}");
    // Once stopped (here by its owner's cancel), it can be replaced.
    a.kill().await;
    mem_spawn(&net, memory::config("a", "b")).up().await;
    // The configuration is checked as over TCP.
    let mut c = memory::config("c", "d");
    c.detection = c.interval;
    let e = net.spawn(c, CancellationToken::new()).unwrap_err();
    assert!(e.to_string().contains("longer than the heartbeat"), "{e}");
}
