//! A protected pair losing a host, leaving COLO, disabling, handing over, and a
//! restarted ftd re-attaching: the calls made and the states reached.

use super::*;
use crate::colo::plan::Ports;

/// The survivor's first call of the takeover came this long after the loss.
fn first_call_after(side: &Side, t0: tokio::time::Instant, what: &str) -> Option<Duration> {
    side.fake
        .timed_calls()
        .into_iter()
        .find(|(t, c)| *t >= t0 && c.contains(what))
        .map(|(t, _)| t - t0)
}

#[tokio::test(start_paused = true)]
async fn the_secondary_takes_over_when_the_primarys_host_dies() {
    let w = World::new().await;
    w.protect().await;
    w.b.fake.clear_calls();
    let t0 = tokio::time::Instant::now();
    w.cluster.kill_host(&w.a.fake);
    w.net.kill_host("a");
    w.wait("b runs g alone", || async {
        w.b.state("g").await == Some(State::Degraded)
    })
    .await;
    let after = first_call_after(&w.b, t0, "x-colo-lost-heartbeat").expect("no takeover");
    assert!(
        after <= DETECTION + 2 * HEARTBEAT,
        "the takeover began {after:?} after the loss (detection {DETECTION:?})"
    );
    // The primary's ports (slot 0 on a), never b's own slot.
    let p = Ports::slot(0);
    let cut = format!(
        "cut {ADDR_A} [{}, {}, {}, {}]",
        p.migration, p.nbd, p.mirror, p.compare
    );
    let calls = w.b.fake.calls();
    let i = |what: &str| {
        calls
            .iter()
            .position(|c| c.starts_with(what))
            .unwrap_or_else(|| panic!("no {what:?} in {calls:#?}"))
    };
    assert!(i(&cut) < i("qmp g nbd-server-stop"));
    assert!(i("qmp g nbd-server-stop") < i("qmp g x-colo-lost-heartbeat"));
    assert!(i("qmp g x-colo-lost-heartbeat") < i("qmp g announce-self"));
    assert!(
        i("define g") > i("qmp g x-colo-lost-heartbeat"),
        "the survivor keeps a definition"
    );
    assert!(w.b.fake.runs("g") && w.b.fake.colo_mode("g") == "none");
    let s = w.b.status("g").await.unwrap();
    assert!(s.last_failover.is_some() && s.wanted, "{s:?}");
}

#[tokio::test(start_paused = true)]
async fn the_primary_leaves_colo_when_the_secondarys_host_dies() {
    let w = World::new().await;
    w.protect().await;
    w.a.fake.clear_calls();
    w.cluster.kill_host(&w.b.fake);
    w.net.kill_host("b");
    w.wait("a runs g alone", || async {
        w.a.state("g").await == Some(State::Degraded) && w.a.fake.colo_mode("g") == "none"
    })
    .await;
    let q = w.a.qmp("g");
    for cmd in [
        "x-blockdev-change",
        "blockdev-del",
        "object-del",
        "x-colo-lost-heartbeat",
        "chardev-remove",
        "cont",
    ] {
        assert!(q.iter().any(|c| c == cmd), "no {cmd} in {q:#?}");
    }
    assert!(
        w.a.call_index(&format!("cut {ADDR_B}")).is_some(),
        "the lost peer's sockets are cut first"
    );
    assert!(w.a.fake.runs("g"));
    let d = w.a.fake.dom("g").unwrap();
    assert!(
        d.objects.is_empty() && d.chardevs.is_empty(),
        "COLO's objects are gone: {d:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn disable_leaves_colo_releases_the_secondary_and_unmarks() {
    let w = World::new().await;
    w.protect().await;
    let st = w.a.daemon.disable("g").await.unwrap();
    assert_eq!(st, State::Disabling);
    // The reply comes once the mark is gone: a restart now does not protect.
    assert!(w
        .a
        .fake
        .metadata_of("g", crate::annotation::NAMESPACE)
        .is_none());
    w.wait("a unprotected, b standby", || async {
        w.a.state("g").await == Some(State::Unprotected)
            && w.b.state("g").await == Some(State::Standby)
    })
    .await;
    assert!(!w.b.fake.runs("g"), "the secondary is destroyed");
    assert!(w.a.fake.runs("g") && w.a.fake.colo_mode("g") == "none");
    assert!(w
        .a
        .fake
        .metadata_of("g", crate::annotation::NAMESPACE)
        .is_none());
    assert!(!w.a.status("g").await.unwrap().wanted);
}

#[tokio::test(start_paused = true)]
async fn a_planned_failover_hands_the_domain_over_and_b_protects_it_back() {
    let w = World::new().await;
    w.protect().await;
    w.a.fake.clear_calls();
    w.b.fake.clear_calls();
    assert_eq!(w.a.daemon.failover("g").await, Ok(State::SwitchingOver));
    // b takes over, then (auto re-protect) protects g onto a, whose old copy
    // was paused, then destroyed, before its new secondary started.
    w.wait("b primary in COLO, a its secondary", || async {
        w.b.fake.colo_mode("g") == "primary" && w.a.fake.colo_mode("g") == "secondary"
    })
    .await;
    let a = w.a.fake.calls();
    let i = |v: &[String], what: &str| {
        v.iter()
            .position(|c| c.starts_with(what))
            .unwrap_or_else(|| panic!("no {what:?} in {v:#?}"))
    };
    assert!(i(&a, "qmp g stop") < i(&a, "destroy g"));
    assert!(i(&a, "destroy g") < i(&a, "create g"));
    let b = w.b.fake.calls();
    assert!(i(&b, "qmp g x-colo-lost-heartbeat") < i(&b, "qmp g blockdev-mirror"));
    let s = w.b.status("g").await.unwrap();
    assert_eq!(s.last_failover.as_deref(), Some("planned switch-over"));
    // b's disk left its scratch directory at the takeover; the protection's new
    // base image replaced it there, and the definition follows.
    use crate::host::Hypervisor;
    let def = w.b.fake.persistent_xml("g").await.unwrap().unwrap();
    let survivors = w.b.dir.join("overlays/g/disk");
    let src = crate::colo::spec::disk_source(&def).unwrap();
    assert!(
        src.starts_with(&format!("{}/g.ftvirt", survivors.display())),
        "{src}"
    );
    assert!(std::path::Path::new(&src).is_file());
    assert!(
        !survivors.join("g.qcow2").exists(),
        "the replaced disk stays"
    );
    assert!(!w.b.dir.join("overlays/g/secondary/parent0.qcow2").exists());
}

#[tokio::test(start_paused = true)]
async fn a_restarted_ftd_reattaches_without_touching_qemu() {
    let mut w = World::new().await;
    w.protect().await;
    w.a.stop_ftd();
    w.a.fake.clear_calls();
    w.a = w.restart("a").await;
    // Checkpoints go on while ftd is away and after.
    w.wait("a re-attached", || async {
        w.a.state("g").await == Some(State::Starting)
    })
    .await;
    w.cluster.checkpoint("g");
    w.wait("a protected again", || async {
        w.a.state("g").await == Some(State::Protected)
    })
    .await;
    // Re-attach reads QEMU and changes nothing: no command that alters the guest.
    let q = w.a.qmp("g");
    let reads = [
        "query-colo-status",
        "query-status",
        "query-named-block-nodes",
        "qom-list",
        "query-block-jobs",
        "migrate-set-parameters",
    ];
    assert!(
        q.iter().all(|c| reads.contains(&c.as_str())),
        "a sent more than reads: {q:#?}"
    );
    assert_eq!(w.a.fake.colo_mode("g"), "primary");
    assert_eq!(w.b.state("g").await, Some(State::Secondary));
}

/// Review 1.4: each host numbers its domains' port slots itself, so the
/// secondary's slot for a domain may differ from the primary's; the takeover must
/// cut the ports the domain uses (the primary's), never a slot of its own.
#[tokio::test(start_paused = true)]
async fn the_takeover_cuts_the_primarys_ports_not_its_own_slots() {
    let w = World::new().await;
    // b wired y as its primary first: y has b's slot 0, so a slot b took for
    // g would be slot 1.
    w.b.ports.ports("y").unwrap();
    w.protect().await;
    assert_eq!(w.b.ports.existing("g"), None, "the secondary takes no slot");
    w.b.fake.clear_calls();
    w.cluster.kill_host(&w.a.fake);
    w.net.kill_host("a");
    w.wait("b runs g alone", || async {
        w.b.state("g").await == Some(State::Degraded)
    })
    .await;
    let cuts: Vec<String> =
        w.b.fake
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("cut "))
            .collect();
    let (a0, b1) = (Ports::slot(0), Ports::slot(1));
    let want = format!(
        "cut {ADDR_A} [{}, {}, {}, {}]",
        a0.migration, a0.nbd, a0.mirror, a0.compare
    );
    assert_eq!(cuts, [want], "b1 would be {b1:?}");
}
