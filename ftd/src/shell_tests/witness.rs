//! A protected pair with the witness (`arbiter: kind: etcd`, a `FakeWitness`
//! shared by both ftds): the record written before COLO starts, a lost host, a cut
//! link with both hosts alive, the witness down, a planned switch-over and a
//! disable, each checked by the calls made, the states reached and the record.

use super::*;
use crate::coordinator::WITNESS_UNREACHABLE;
use crate::witness::Record;

impl World {
    fn record(&self) -> Option<Record> {
        self.witness.as_ref().expect("a witness").record("g")
    }

    /// Is exactly one copy of `g` running out of COLO (serving alone), or a
    /// COLO pair (primary + secondary)? Returns the hosts whose copy serves.
    fn serving(&self) -> Vec<&'static str> {
        [&self.a, &self.b]
            .into_iter()
            .filter(|s| s.fake.runs("g") && s.fake.colo_mode("g") != "secondary")
            .map(|s| s.name)
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn the_record_names_the_pair_before_colo_starts() {
    let w = World::with_witness().await;
    w.protect().await;
    let r = w.record().expect("a record");
    assert_eq!(
        (r.holder.as_str(), r.partner.as_deref(), r.running),
        ("a", Some("b"), true)
    );
    // The file the guest writes to since the pivot under COLO's quorum (the
    // live XML still names the one it booted from).
    assert_eq!(r.disk, w.a.dir.join("images/g.ftvirt1.qcow2"));
    // Written before the migration into COLO began.
    let calls = w.witness.as_ref().unwrap().calls();
    assert!(calls
        .iter()
        .any(|c| matches!(c, crate::testing::WitnessCall::Swap { new, .. } if new.partner.as_deref() == Some("b"))));
}

#[tokio::test(start_paused = true)]
async fn the_secondary_claims_then_takes_over_when_the_primarys_host_dies() {
    let w = World::with_witness().await;
    w.protect().await;
    let before = w.record().unwrap();
    w.b.fake.clear_calls();
    let t0 = tokio::time::Instant::now();
    w.cluster.kill_host(&w.a.fake);
    w.net.kill_host("a");
    w.wait("b runs g alone", || async {
        w.b.state("g").await == Some(State::Degraded)
    })
    .await;
    let took =
        w.b.fake
            .timed_calls()
            .into_iter()
            .find(|(t, c)| *t >= t0 && c.contains("x-colo-lost-heartbeat"))
            .map(|(t, _)| t - t0)
            .expect("no takeover");
    let delay = crate::witness::claim::secondary_delay(HEARTBEAT);
    assert!(
        took <= DETECTION + delay + 2 * HEARTBEAT,
        "the takeover began {took:?} after the loss (detection {DETECTION:?}, claim delay {delay:?})"
    );
    let r = w.record().unwrap();
    assert_eq!(
        (r.holder.as_str(), r.partner.as_deref(), r.epoch),
        ("b", None, before.epoch + 1)
    );
    assert_eq!(
        r.disk,
        w.b.dir.join("overlays/g/disk/g.qcow2"),
        "the survivor's disk, out of the scratch directory"
    );
    assert!(r.disk.is_file(), "{} is not there", r.disk.display());
    assert!(!w.b.dir.join("overlays/g/secondary/parent0.qcow2").exists());
    let s = w.b.status("g").await.unwrap();
    assert!(
        s.last_failover.as_deref().unwrap_or("").contains("witness"),
        "{s:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cut_link_leaves_one_copy_serving_and_the_loser_rejoins() {
    let w = World::with_witness().await;
    w.protect().await;
    w.net.cut();
    w.wait("a alone, b fenced", || async {
        w.a.state("g").await == Some(State::Degraded) && w.b.state("g").await == Some(State::Fenced)
    })
    .await;
    // The primary, which claims first, won; b's copy never served.
    w.wait("b's copy destroyed", || async { !w.b.fake.runs("g") })
        .await;
    assert!(
        !w.b.qmp("g").iter().any(|c| c == "x-colo-lost-heartbeat"),
        "b took over: {:?}",
        w.b.qmp("g")
    );
    assert_eq!(w.serving(), vec!["a"]);
    // Its guest was cut off the network while it claimed, and is back.
    let links: Vec<String> =
        w.a.fake
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("link "))
            .collect();
    assert!(
        links.first().is_some_and(|c| c.ends_with(" down")),
        "{links:?}"
    );
    assert!(
        links.last().is_some_and(|c| c.ends_with(" up")),
        "{links:?}"
    );
    let r = w.record().unwrap();
    assert_eq!((r.holder.as_str(), r.partner.as_deref()), ("a", None));
    // The link heals: a protects onto b again, and the record names the pair.
    w.net.heal();
    w.wait("b secondary again", || async {
        w.b.state("g").await == Some(State::Secondary)
    })
    .await;
    w.cluster.checkpoint("g");
    w.wait("a protected", || async {
        w.a.state("g").await == Some(State::Protected)
    })
    .await;
    let r = w.record().unwrap();
    assert_eq!((r.holder.as_str(), r.partner.as_deref()), ("a", Some("b")));
}

#[tokio::test(start_paused = true)]
async fn with_the_witness_down_nobody_goes_live_until_it_answers() {
    let w = World::with_witness().await;
    w.protect().await;
    let witness = w.witness.clone().unwrap();
    witness.set_reachable(false);
    // No fault: protection goes on without the witness.
    tokio::time::sleep(Duration::from_secs(5)).await;
    w.cluster.checkpoint("g");
    assert_eq!(w.a.state("g").await, Some(State::Protected));
    assert_eq!(w.b.state("g").await, Some(State::Secondary));
    // Then the primary's host dies: b waits for the witness.
    w.cluster.kill_host(&w.a.fake);
    w.net.kill_host("a");
    w.wait("b arbitrating, saying why", || async {
        let s = w.b.status("g").await;
        s.is_some_and(|s| {
            s.state == State::SecondaryArbitrating
                && s.last_error.as_deref() == Some(WITNESS_UNREACHABLE)
        })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(w.b.state("g").await, Some(State::SecondaryArbitrating));
    assert!(
        !w.b.qmp("g").iter().any(|c| c == "x-colo-lost-heartbeat"),
        "b went live without the witness"
    );
    witness.set_reachable(true);
    w.wait("b runs g alone", || async {
        w.b.state("g").await == Some(State::Degraded)
    })
    .await;
    assert_eq!(w.record().unwrap().holder, "b");
}

#[tokio::test(start_paused = true)]
async fn a_primary_cut_off_from_the_witness_and_its_peer_keeps_its_guest_off_the_network() {
    let w = World::with_witness().await;
    w.protect().await;
    w.witness.as_ref().unwrap().set_reachable(false);
    w.net.cut();
    w.wait(
        "a arbitrating with its guest cut off, saying why",
        || async {
            let s = w.a.status("g").await.unwrap();
            s.state == State::Arbitrating
                && s.last_error.as_deref() == Some(WITNESS_UNREACHABLE)
                && w.a
                    .fake
                    .calls()
                    .iter()
                    .any(|c| c.starts_with("link ") && c.ends_with(" down"))
        },
    )
    .await;
    assert!(
        !w.a.qmp("g").iter().any(|c| c == "x-colo-lost-heartbeat"),
        "a left COLO without the witness"
    );
    // The witness answers again: the primary, first to ask, wins and runs on.
    w.witness.as_ref().unwrap().set_reachable(true);
    w.wait("a alone, b fenced", || async {
        w.a.state("g").await == Some(State::Degraded) && w.b.state("g").await == Some(State::Fenced)
    })
    .await;
    assert_eq!(w.serving(), vec!["a"]);
}

#[tokio::test(start_paused = true)]
async fn a_planned_switch_over_moves_the_record_and_protection_comes_back() {
    let w = World::with_witness().await;
    w.protect().await;
    assert_eq!(w.a.daemon.failover("g").await, Ok(State::SwitchingOver));
    w.wait("b protects g onto a", || async {
        matches!(
            w.b.state("g").await,
            Some(State::Starting | State::Protected)
        ) && w.a.state("g").await == Some(State::Secondary)
    })
    .await;
    let r = w.record().unwrap();
    assert_eq!((r.holder.as_str(), r.partner.as_deref()), ("b", Some("a")));
    // b claimed the record before it took over (epoch 2), then paired (3).
    assert_eq!(r.epoch, 3);
    let claimed = w.witness.as_ref().unwrap().calls().into_iter().any(|c| {
        matches!(c, crate::testing::WitnessCall::Swap { new, outcome: Ok(crate::witness::Swap::Won(_)), .. }
            if new.holder == "b" && new.partner.is_none() && new.epoch == 2)
    });
    assert!(claimed, "no won claim by b before its takeover");
}

#[tokio::test(start_paused = true)]
async fn disable_claims_the_record_before_leaving_colo() {
    let w = World::with_witness().await;
    w.protect().await;
    let epoch = w.record().unwrap().epoch;
    let st = w.a.daemon.disable("g").await;
    assert!(
        matches!(st, Ok(State::Arbitrating | State::Disabling)),
        "{st:?}"
    );
    w.wait("a unprotected, b standing by", || async {
        w.a.state("g").await == Some(State::Unprotected)
            && w.b.state("g").await == Some(State::Standby)
    })
    .await;
    let r = w.record().unwrap();
    assert_eq!(
        (r.holder.as_str(), r.partner.as_deref(), r.epoch),
        ("a", None, epoch + 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_copy_starts_only_with_the_record_and_takes_it() {
    let w = World::with_witness().await;
    // No record yet: a start goes on and writes nothing (protection pairs it).
    assert_eq!(w.a.daemon.may_start("g").await.unwrap(), "ok");
    assert!(w.record().is_none());
    w.protect().await;
    let paired = w.record().unwrap();
    // The secondary's host may not start a copy of its own.
    let r = w.b.daemon.may_start("g").await.unwrap();
    assert!(
        r.starts_with("refused: the witness's record says a holds g (epoch 1), whose copy runs"),
        "{r}"
    );
    assert_eq!(w.record().unwrap(), paired);
    // The holder's start takes the record: no partner, epoch + 1, so that a
    // takeover the peer planned on the paired record would now lose.
    assert_eq!(w.a.daemon.may_start("g").await.unwrap(), "ok");
    let taken = w.record().unwrap();
    assert_eq!(
        (taken.holder.as_str(), taken.partner.as_deref(), taken.epoch),
        ("a", None, paired.epoch + 1)
    );
    // The disk stays the record's until protection pairs this copy's (ftd asks
    // libvirt nothing while libvirtd runs the hook).
    assert_eq!(taken.disk, paired.disk);
    // The witness down: refused, saying why.
    w.witness.as_ref().unwrap().set_reachable(false);
    let r = w.a.daemon.may_start("g").await.unwrap();
    assert!(
        r.starts_with("refused: the witness (etcd) did not answer"),
        "{r}"
    );
}

/// Mark `g` on `fake` (peer `peer`), set it to autostart, and shut it off.
async fn marked_autostart_shut_off(fake: &crate::testing::FakeHost, peer: &str) {
    use crate::annotation::{self, Protection};
    use crate::host::Hypervisor;
    let el = annotation::to_element(&Protection::new(peer));
    fake.set_metadata("g", Some(&el), annotation::KEY, annotation::NAMESPACE)
        .await
        .unwrap();
    fake.set_autostart("g", true);
    fake.destroy("g").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn ftd_starts_an_autostart_domain_only_where_the_record_allows() {
    let mut w = World::with_witness().await;
    let witness = w.witness.clone().unwrap();
    // The record names a's copy, alone (b's copy is stale).
    let r = Record::first("g", "a", w.a.dir.join("images/g.qcow2"), true).unwrap();
    witness.put_raw("g", &r.to_json());
    w.b.fake
        .add_domain("g", &w.b.dir.join("images/g.qcow2"), false);
    for (side, peer) in [(&w.a, "b"), (&w.b, "a")] {
        side.stop_ftd();
        marked_autostart_shut_off(&side.fake, peer).await;
    }
    assert!(!w.a.fake.runs("g") && !w.b.fake.runs("g"));
    // Both ftds start again (libvirt's autostart was refused by the hook).
    w.a = w.restart("a").await;
    w.b = w.restart("b").await;
    w.wait("a started g", || async { w.a.fake.runs("g") }).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    // b never started its own copy (a copy of g on b now is a's secondary).
    assert!(
        w.b.fake.calls().iter().all(|c| !c.starts_with("start g")),
        "b started its stale copy: {:#?}",
        w.b.fake.calls()
    );
    if w.b.fake.runs("g") {
        assert_ne!(w.b.fake.colo_mode("g"), "none", "b's g serves");
    }
    // a's copy is the domain: the record still names it, and it is protected
    // again onto b (the survivor's usual re-protection).
    let now = w.record().unwrap();
    assert_eq!(now.holder, "a");
    w.wait("a protects g onto b", || async {
        w.a.state("g").await.is_some_and(|s| s != State::Stopped)
    })
    .await;
}
