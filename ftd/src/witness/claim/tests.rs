//! The claim rules (`plan_pair`, `plan_go_live`, `plan_start`, `plan_start_claim`)
//! and the claim tasks, against a `FakeWitness`.

use super::*;
use crate::testing::FakeWitness;

#[test]
fn a_copy_starts_only_where_the_record_allows() {
    let r = Record::first("g", "a", "/d", true)
        .unwrap()
        .with_partner(Some("b"));
    assert_eq!(plan_start("b", None), Ok(()));
    assert_eq!(plan_start("a", Some(&r)), Ok(()));
    let e = plan_start("b", Some(&r)).unwrap_err();
    assert!(
        e.starts_with("the witness's record says a holds g (epoch 1), whose copy runs")
            && e.contains("this host (b) is stale")
            && e.contains("docs/witness.md"),
        "{e}"
    );
    let stopped = r.next("a", "/d", false);
    assert_eq!(plan_start("b", Some(&stopped)), Ok(()));

    // Starting takes the record: a claim in flight against it then loses.
    let c = |me: &str| Claim {
        domain: "g".into(),
        me: me.into(),
        peer: if me == "a" { "b" } else { "a" }.into(),
        disk: Some("/mine".into()),
    };
    assert_eq!(plan_start_claim(&c("b"), None), Plan::Won);
    match plan_start_claim(&c("a"), Some(&r)) {
        Plan::Swap(n) => {
            assert_eq!(
                (n.holder.as_str(), n.partner.clone(), n.epoch),
                ("a", None, 2)
            );
            assert!(n.running);
            // b's takeover, planned on the old record, is now refused.
            assert!(matches!(
                plan_go_live(&c("b"), Role::Secondary, Some(&n)),
                Plan::Lost(_)
            ));
        }
        p => panic!("{p:?}"),
    }
    assert!(matches!(plan_start_claim(&c("b"), Some(&r)), Plan::Lost(_)));
    match plan_start_claim(&c("b"), Some(&stopped)) {
        Plan::Swap(n) => assert_eq!((n.holder.as_str(), n.disk.to_str()), ("b", Some("/mine"))),
        p => panic!("{p:?}"),
    }
    let alone = r.next("a", "/d", true);
    assert_eq!(plan_start_claim(&c("a"), Some(&alone)), Plan::Won);
}

fn claim(me: &str, peer: &str, disk: &str) -> Claim {
    Claim {
        domain: "web1".into(),
        me: me.into(),
        peer: peer.into(),
        disk: Some(disk.into()),
    }
}

fn paired() -> Record {
    Record::first("web1", "hosta", "/a/web1.qcow2", true)
        .unwrap()
        .with_partner(Some("hostb"))
}

#[test]
fn exactly_one_side_of_a_pair_may_take_its_record() {
    let (a, b) = (
        claim("hosta", "hostb", "/a/web1.qcow2"),
        claim("hostb", "hosta", "/b/web1.qcow2"),
    );
    let r = paired();
    let Plan::Swap(pa) = plan_go_live(&a, Role::Primary, Some(&r)) else {
        panic!()
    };
    let Plan::Swap(pb) = plan_go_live(&b, Role::Secondary, Some(&r)) else {
        panic!()
    };
    assert_eq!((pa.holder.as_str(), pa.partner.as_deref()), ("hosta", None));
    assert_eq!((pb.holder.as_str(), pb.partner.as_deref()), ("hostb", None));
    assert_eq!(pb.disk, PathBuf::from("/b/web1.qcow2"));
    assert_eq!(pa.epoch, 2);
    assert_eq!(pb.epoch, 2);
    // Whoever won, the other finds the winner's record and loses.
    assert!(matches!(
        plan_go_live(&b, Role::Secondary, Some(&pa)),
        Plan::Lost(_)
    ));
    assert!(matches!(
        plan_go_live(&a, Role::Primary, Some(&pb)),
        Plan::Lost(_)
    ));
    // And the winner, asking again, has won.
    assert_eq!(plan_go_live(&a, Role::Primary, Some(&pa)), Plan::Won);
    assert_eq!(plan_go_live(&b, Role::Secondary, Some(&pb)), Plan::Won);
}

#[test]
fn a_secondary_takes_only_a_record_naming_it_partner() {
    let b = claim("hostb", "hosta", "/b/d");
    let other = paired().with_partner(Some("hostc"));
    assert!(matches!(
        plan_go_live(&b, Role::Secondary, Some(&other)),
        Plan::Lost(_)
    ));
    let alone = paired().with_partner(None);
    match plan_go_live(&b, Role::Secondary, Some(&alone)) {
        Plan::Lost(why) => assert!(why.contains("hosta holds web1 (epoch 1)"), "{why}"),
        p => panic!("{p:?}"),
    }
    // A primary never takes a record another host holds.
    let a = claim("hosta", "hostb", "/a/d");
    let held = Record::first("web1", "hostb", "/b/d", true).unwrap();
    assert!(matches!(
        plan_go_live(&a, Role::Primary, Some(&held)),
        Plan::Lost(_)
    ));
}

#[test]
fn pairing_refuses_a_copy_that_is_not_of_record() {
    let a = claim("hosta", "hostb", "/a/d");
    match plan_pair(&a, None) {
        Plan::Swap(r) => {
            assert_eq!((r.epoch, r.partner.as_deref()), (1, Some("hostb")));
        }
        p => panic!("{p:?}"),
    }
    let mine = Record::first("web1", "hosta", "/a/d", true).unwrap();
    let Plan::Swap(r) = plan_pair(&a, Some(&mine)) else {
        panic!()
    };
    assert_eq!((r.epoch, r.partner.as_deref()), (2, Some("hostb")));
    assert_eq!(plan_pair(&a, Some(&r)), Plan::Won);
    let theirs = Record::first("web1", "hostb", "/b/d", true).unwrap();
    match plan_pair(&a, Some(&theirs)) {
        Plan::Lost(why) => assert!(why.contains("not the copy of record"), "{why}"),
        p => panic!("{p:?}"),
    }
    // A record whose copy was shut down cleanly may be taken.
    let stopped = Record::first("web1", "hostb", "/b/d", false).unwrap();
    assert!(matches!(plan_pair(&a, Some(&stopped)), Plan::Swap(_)));
}

#[tokio::test]
async fn two_claims_from_the_same_pair_have_one_winner() {
    let w = FakeWitness::new();
    let (a, b) = (
        claim("hosta", "hostb", "/a/d"),
        claim("hostb", "hosta", "/b/d"),
    );
    assert!(matches!(pair(&w, &a).await, Ok(Claimed::Won(Some(_)))));
    let (ra, rb) = tokio::join!(
        go_live(&w, &a, Role::Primary),
        go_live(&w, &b, Role::Secondary)
    );
    let won = [&ra, &rb]
        .iter()
        .filter(|r| matches!(r, Ok(Claimed::Won(_))))
        .count();
    assert_eq!(won, 1, "{ra:?} {rb:?}");
    // The loser asking again still loses; the winner still wins.
    let (again_a, again_b) = (
        go_live(&w, &a, Role::Primary).await.unwrap(),
        go_live(&w, &b, Role::Secondary).await.unwrap(),
    );
    assert_eq!(
        matches!(again_a, Claimed::Won(_)),
        matches!(ra, Ok(Claimed::Won(_)))
    );
    assert_eq!(
        matches!(again_b, Claimed::Won(_)),
        matches!(rb, Ok(Claimed::Won(_)))
    );
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_witness_stops_then_the_claim_goes_on() {
    let w = FakeWitness::new();
    let a = claim("hosta", "hostb", "/a/d");
    pair(&w, &a).await.unwrap();
    w.set_reachable(false);
    let b = claim("hostb", "hosta", "/b/d");
    let mut rx = spawn_go_live(
        Arc::new(w.clone()),
        b,
        Role::Secondary,
        Duration::ZERO,
        async { None },
    );
    assert_eq!(rx.recv().await, Some(Verdict::Stop));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(rx.try_recv().is_err(), "no verdict while unreachable");
    w.set_reachable(true);
    assert_eq!(rx.recv().await, Some(Verdict::Proceed));
    let r = w.read("web1").await.unwrap().unwrap().value;
    assert_eq!((r.holder.as_str(), r.epoch), ("hostb", 2));
}
