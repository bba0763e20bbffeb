//! What an authenticated peer, buggy or compromised, can make this host keep
//! (issue 14, item 2): a flood of domain names leaves no task and no port slot;
//! tasks held for the peer stop at one per slot, the next is refused with a log
//! line naming the peer and why; lookups in libvirt the peer starts are bounded;
//! a spec request takes no slot; tasks of domains gone from this host end and
//! give their slot back. `a`'s peer handle plays the peer, sending what it likes.

use super::*;
use crate::coordinator::PeerMsg;
use crate::daemon::{PEER_DOMAINS_MAX, PEER_LOOKUPS_MAX, RETIRE_IDLE, RETIRE_SWEEP};
use crate::peer::tests::logs::Capture;
use crate::peer::PeerError;

/// The domains `side`'s ftd has a task for, sorted.
async fn tasks(side: &Side) -> Vec<String> {
    let mut v: Vec<String> = side
        .daemon
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.domain)
        .collect();
    v.sort();
    v
}

/// `a`'s peer link sends `msg` for `domain` to `b`, waiting while its queue is full.
async fn send(w: &World, domain: &str, msg: PeerMsg) {
    loop {
        match w.a.peer.send(domain, msg.clone()) {
            Ok(()) => return,
            Err(PeerError::Backlog { .. }) => tokio::time::sleep(Duration::from_millis(1)).await,
            Err(e) => panic!("sending {msg:?} for {domain}: {e}"),
        }
    }
}

/// Lines of `log` with every one of `parts`.
fn lines(log: &Capture, parts: &[&str]) -> usize {
    log.text()
        .lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .count()
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_unknown_domains_from_the_peer_leave_no_task_and_no_slot() {
    let log = Capture::of("ftd::daemon=warn");
    let w = World::new().await;
    w.protect().await;
    let (before, a_slots) = (tasks(&w.b).await, w.a.ports.taken());
    assert_eq!(before, ["g"]);
    assert_eq!(
        (a_slots, w.b.ports.taken()),
        (1, 0),
        "only a's primary has a slot"
    );
    // Every message a domain standing by would only answer or refuse.
    let msgs = [
        PeerMsg::ReleaseSecondary,
        PeerMsg::CheckPair { primary: true },
        PeerMsg::TakeOver,
        PeerMsg::TookOver,
        PeerMsg::StandingBy,
        PeerMsg::SecondaryFailed("x".into()),
        PeerMsg::PairConfirmed,
        PeerMsg::ColoEnded,
    ];
    const N: usize = 10_000;
    for i in 0..N {
        send(&w, &format!("u{i}"), msgs[i % msgs.len()].clone()).await;
    }
    // Each message is refused with one line naming the peer (a) and why.
    w.wait("b to refuse every message", || async {
        lines(&log, &["peer=a", "peer message refused"]) >= N
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(lines(&log, &["peer=a", "peer message refused"]), N);
    assert!(lines(&log, &["peer=a", "domain=u9999", "reason="]) == 1);
    assert_eq!(tasks(&w.b).await, before, "no task made");
    assert_eq!(tasks(&w.a).await, ["g"], "nor on a, from b's answers");
    assert_eq!(
        (w.a.ports.taken(), w.b.ports.taken()),
        (a_slots, 0),
        "no slot taken"
    );
    // The pair is untouched and the link up.
    assert_eq!(w.a.state("g").await, Some(State::Protected));
    assert_eq!(w.b.state("g").await, Some(State::Secondary));
    assert!(w.b.peer_up().await);
}

#[tokio::test(start_paused = true)]
async fn tasks_held_for_the_peer_stop_at_one_per_slot_and_end_once_idle() {
    let log = Capture::of("ftd::daemon=warn");
    let w = World::new().await;
    assert_eq!(PEER_DOMAINS_MAX, usize::from(Ports::SLOTS));
    // s0 was b's primary once: it has a slot there.
    w.b.ports.ports("s0").unwrap();
    for i in 0..PEER_DOMAINS_MAX {
        send(&w, &format!("s{i}"), PeerMsg::HostSecondary).await;
    }
    // Each becomes a secondary-to-be, fails (a has no spec for it) and stands by.
    w.wait("b standing by for every one", || async {
        let l = w.b.daemon.list().await.unwrap();
        l.len() == PEER_DOMAINS_MAX && l.iter().all(|s| s.state == State::Standby)
    })
    .await;
    // One more is refused: logged, answered, nothing made.
    send(&w, "one-more", PeerMsg::HostSecondary).await;
    w.wait("the refusal", || async {
        lines(&log, &["peer=a", "domain=one-more", "64 domains"]) == 1
    })
    .await;
    assert_eq!(tasks(&w.b).await.len(), PEER_DOMAINS_MAX);
    assert!(!tasks(&w.b).await.contains(&"one-more".to_string()));
    assert!(!w.b.dir.join("overlays/one-more").exists());
    let calls: Vec<String> =
        w.b.fake
            .calls()
            .into_iter()
            .filter(|c| c.contains("one-more"))
            .collect();
    assert_eq!(calls, ["state one-more"], "looked up, nothing else");
    assert_eq!(w.b.ports.taken(), 1, "s0's only");
    // Idle, not defined here, nothing held: the tasks end, s0's slot is free.
    tokio::time::sleep(RETIRE_IDLE + 2 * RETIRE_SWEEP).await;
    w.wait("b's tasks ended", || async { tasks(&w.b).await.is_empty() })
        .await;
    assert_eq!(w.b.ports.taken(), 0);
    // Now there is room again.
    send(&w, "one-more", PeerMsg::HostSecondary).await;
    w.wait("one-more's task", || async {
        w.b.state("one-more").await.is_some()
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn lookups_the_peer_starts_are_bounded() {
    let log = Capture::of("ftd::daemon=warn");
    let w = World::new().await;
    // libvirt takes 20 s to answer about these names.
    let names: Vec<String> = (0..=PEER_LOOKUPS_MAX).map(|i| format!("h{i}")).collect();
    for n in &names {
        w.b.fake.hang(n, Some(Duration::from_secs(20)));
    }
    for n in &names {
        send(&w, n, PeerMsg::HostSecondary).await;
    }
    let last = format!("domain={}", names[PEER_LOOKUPS_MAX]);
    w.wait("the refusal of the lookup past the bound", || async {
        lines(&log, &["peer=a", &last, "being looked up"]) == 1
    })
    .await;
    let looked_up =
        w.b.fake
            .calls()
            .iter()
            .filter(|c| c.starts_with("state h"))
            .count();
    assert_eq!(looked_up, PEER_LOOKUPS_MAX);
    // The others get their tasks once libvirt answers (they then stand by).
    w.wait("tasks for the looked-up ones", || async {
        tasks(&w.b).await.len() == PEER_LOOKUPS_MAX
    })
    .await;
    assert_eq!(w.b.state(&names[PEER_LOOKUPS_MAX]).await, None);
}

#[tokio::test(start_paused = true)]
async fn a_spec_request_takes_no_slot_of_a_domain_not_protected_from_here() {
    let w = World::new().await;
    w.b.fake
        .add_domain("y", &w.b.dir.join("images/y.qcow2"), true);
    let _ = w.b.daemon.disable("y").await;
    assert_eq!(w.b.state("y").await, Some(State::Unprotected));
    let r =
        w.a.peer
            .request(
                crate::peer::Request::SecondarySpec { domain: "y".into() },
                Duration::from_secs(5),
            )
            .await;
    let e = r.expect_err("refused").to_string();
    assert!(e.contains("not protected from here"), "{e}");
    assert_eq!(w.b.ports.taken(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_task_ends_once_its_domain_is_undefined_not_before() {
    let w = World::new().await;
    w.protect().await;
    // b: a shut-off domain it has a task for.
    w.b.fake
        .add_domain("off", &w.b.dir.join("images/off.qcow2"), false);
    let _ = w.b.daemon.disable("off").await;
    assert_eq!(w.b.state("off").await, Some(State::Stopped));
    tokio::time::sleep(RETIRE_IDLE + 2 * RETIRE_SWEEP).await;
    assert_eq!(tasks(&w.b).await, ["g", "off"], "defined: kept");
    assert_eq!(tasks(&w.a).await, ["g"]);
    w.b.fake.undefine("off");
    tokio::time::sleep(RETIRE_IDLE + 2 * RETIRE_SWEEP).await;
    assert_eq!(tasks(&w.b).await, ["g"], "undefined: ended");
    // The pair held all along.
    assert_eq!(w.b.state("g").await, Some(State::Secondary));
    assert_eq!(w.a.state("g").await, Some(State::Protected));
}
