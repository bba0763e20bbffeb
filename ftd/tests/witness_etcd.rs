//! The witness against a real etcd (Debian's `etcd-server`, started by each test on
//! loopback with mutual TLS; see `witness_etcd/cluster.rs`): one winner per race,
//! stale versions lose, hand-written garbage is reported, a stopped witness is
//! unreachable within the deadline, strangers are refused, and a three-member
//! cluster works with one member gone but not with two. Also measures a read's and
//! a swap's latency (`WITNESS latency ...` lines; run with `--nocapture`).
//!
//! Needs only the `etcd` and `etcdctl` binaries (`cargo xtask setup`), no root and no
//! lab. nextest runs these one at a time (test group `witness`).

#[path = "witness_etcd/cluster.rs"]
mod cluster;

use cluster::{within, Cluster};
use ftd::witness::{Record, RecordError, Swap, Versioned, Witness, WitnessError, DEFAULT_TIMEOUT};
use std::time::{Duration, Instant};

/// A generous deadline where the test is not about deadlines (2 loaded cores).
const SLOW: Duration = Duration::from_secs(3);
/// How much later than its deadline an unreachable call may return.
const SLACK: Duration = Duration::from_millis(150);

fn won(s: Swap) -> Versioned<Record> {
    match s {
        Swap::Won(v) => v,
        Swap::Lost(now) => panic!("lost to {now:?}"),
    }
}

/// Create web1's first record (holder hosta).
async fn create(w: &dyn Witness, domain: &str) -> Versioned<Record> {
    let first = Record::first(domain, "hosta", "/var/lib/libvirt/images/web1.qcow2", true).unwrap();
    won(w.swap(domain, None, &first).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_racing_swaps_from_one_version_exactly_one_wins() {
    let c = Cluster::start(1).await;
    let a = c.client("hosta", &[0], SLOW).await;
    let b = c.client("hostb", &[0], SLOW).await;
    let mut seen = create(&a, "web1").await;
    let (mut a_won, mut b_won) = (0, 0);
    for round in 0..200 {
        let ra = seen
            .value
            .next("hosta", "/var/lib/libvirt/images/web1.qcow2", true);
        let rb = seen
            .value
            .next("hostb", "/var/lib/ftvirt/web1/disk.qcow2", true);
        let (sa, sb) = tokio::join!(
            a.swap("web1", Some(&seen), &ra),
            b.swap("web1", Some(&seen), &rb)
        );
        let (sa, sb) = (sa.unwrap(), sb.unwrap());
        let winner = match (sa, sb) {
            (Swap::Won(w), Swap::Lost(Some(now))) => {
                a_won += 1;
                assert_eq!(now, w, "round {round}: b learns a's record");
                w
            }
            (Swap::Lost(Some(now)), Swap::Won(w)) => {
                b_won += 1;
                assert_eq!(now, w, "round {round}: a learns b's record");
                w
            }
            other => panic!("round {round}: not exactly one winner: {other:?}"),
        };
        assert_eq!(winner.value.epoch, seen.value.epoch + 1);
        assert!(winner.revision > seen.revision);
        assert_eq!(a.read("web1").await.unwrap(), Some(winner.clone()));
        seen = winner;
    }
    eprintln!("WITNESS races: 200, hosta won {a_won}, hostb won {b_won}");
    assert_eq!(seen.value.epoch, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_expected_version_loses_and_gets_the_current_record() {
    let c = Cluster::start(1).await;
    let a = c.client("hosta", &[0], SLOW).await;
    let b = c.client("hostb", &[0], SLOW).await;
    assert_eq!(a.read("web1").await.unwrap(), None);
    let v1 = create(&a, "web1").await;
    // b takes over from v1; a, still at v1, tries to keep the domain.
    let v2 = won(b
        .swap(
            "web1",
            Some(&v1),
            &v1.value.next("hostb", "/srv/web1.qcow2", true),
        )
        .await
        .unwrap());
    let keep = v1
        .value
        .next("hosta", "/var/lib/libvirt/images/web1.qcow2", true);
    assert_eq!(
        a.swap("web1", Some(&v1), &keep).await.unwrap(),
        Swap::Lost(Some(v2.clone()))
    );
    // A first record where one exists loses too, and learns it.
    let again = Record::first("web1", "hosta", "/d", true).unwrap();
    assert_eq!(
        a.swap("web1", None, &again).await.unwrap(),
        Swap::Lost(Some(v2.clone()))
    );
    // From the current version a wins; its retry of the same swap is still won.
    let back = v2
        .value
        .next("hosta", "/var/lib/libvirt/images/web1.qcow2", false);
    let v3 = won(a.swap("web1", Some(&v2), &back).await.unwrap());
    assert_eq!(
        a.swap("web1", Some(&v2), &back).await.unwrap(),
        Swap::Won(v3.clone())
    );
    assert_eq!(b.read("web1").await.unwrap(), Some(v3.clone()));
    // A record deleted by hand: a swap from it loses and learns there is none.
    c.etcdctl(0, &["del", "/ftvirt/v1/domains/web1"]);
    let after = v3.value.next("hostb", "/srv/web1.qcow2", true);
    assert_eq!(
        b.swap("web1", Some(&v3), &after).await.unwrap(),
        Swap::Lost(None)
    );
    // Records of other domains are their own.
    assert_eq!(a.read("web2").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_record_written_by_hand_is_reported() {
    let c = Cluster::start(1).await;
    let w = c.client("hosta", &[0], SLOW).await;
    let key = "/ftvirt/v1/domains/web1";
    type Expect = fn(&RecordError) -> bool;
    let cases: [(&str, Expect); 5] = [
        ("hosta", |e| matches!(e, RecordError::Json(_))),
        (
            r#"{"domain":"web1","holder":"hosta","partner":null,"epoch":1,"disk":"/d"}"#,
            |e| matches!(e, RecordError::Json(j) if j.contains("running")),
        ),
        (
            r#"{"domain":"web1","holder":"host a","partner":null,"epoch":1,"disk":"/d","running":true}"#,
            |e| matches!(e, RecordError::BadHolder(_)),
        ),
        (
            r#"{"domain":"web1","holder":"hosta","partner":null,"epoch":1,"disk":"../d","running":true}"#,
            |e| matches!(e, RecordError::BadDisk(_)),
        ),
        (
            r#"{"domain":"web2","holder":"hosta","partner":null,"epoch":1,"disk":"/d","running":true}"#,
            |e| matches!(e, RecordError::WrongDomain { .. }),
        ),
    ];
    for (value, expect) in cases {
        c.etcdctl(0, &["put", key, value]);
        match w.read("web1").await {
            Err(WitnessError::BadRecord { key: k, source, .. }) => {
                assert_eq!(k, key);
                assert!(expect(&source), "{value}: {source}");
            }
            other => panic!("{value}: {other:?}"),
        }
    }
    let e = w.read("web1").await.unwrap_err();
    assert!(
        e.to_string()
            .contains("etcdctl get /ftvirt/v1/domains/web1"),
        "{e}"
    );
    // Nobody replaces it without looking: a first record's swap reports it too.
    let first = Record::first("web1", "hosta", "/d", true).unwrap();
    assert!(matches!(
        w.swap("web1", None, &first).await,
        Err(WitnessError::BadRecord { .. })
    ));
    // Too large for a record.
    c.etcdctl(0, &["put", key, &"x".repeat(5000)]);
    assert!(matches!(
        w.read("web1").await,
        Err(WitnessError::BadRecord {
            source: RecordError::TooLarge { len: 5000 },
            ..
        })
    ));
    // Once a person deletes it, the domain starts again at epoch 1.
    c.etcdctl(0, &["del", key]);
    assert_eq!(
        won(w.swap("web1", None, &first).await.unwrap()).value.epoch,
        1
    );
    let out = c.etcdctl(0, &["get", key, "--print-value-only"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8(first.to_json()).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_witness_is_unreachable_within_the_deadline_then_answers_again() {
    let mut c = Cluster::start(1).await;
    let w = c.client("hosta", &[0], DEFAULT_TIMEOUT).await;
    let v1 = create(&w, "web1").await;
    c.kill(0);
    let next = v1.value.next("hostb", "/e", true);
    for _ in 0..3 {
        let t0 = Instant::now();
        let e = w.read("web1").await.unwrap_err();
        let t_read = t0.elapsed();
        let t0 = Instant::now();
        let s = w.swap("web1", Some(&v1), &next).await.unwrap_err();
        let t_swap = t0.elapsed();
        eprintln!("WITNESS stopped: read failed after {t_read:?}, swap after {t_swap:?}: {s}");
        assert!(e.is_unreachable() && s.is_unreachable(), "{e} / {s}");
        assert!(t_read <= DEFAULT_TIMEOUT + SLACK && t_swap <= DEFAULT_TIMEOUT + SLACK);
        assert!(s.to_string().contains(&c.client_addr(0).to_string()), "{s}");
    }
    // The same client reaches it again once it is back, with the record kept.
    c.restart(0).await;
    let (_, took) = within(Duration::from_secs(10), || async {
        w.read("web1").await.ok()
    })
    .await
    .expect("the client reconnects");
    eprintln!("WITNESS restarted: the client read again {took:?} after etcd was ready");
    assert_eq!(w.read("web1").await.unwrap(), Some(v1.clone()));
    won(w.swap("web1", Some(&v1), &next).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_valid_certificate_is_refused() {
    let c = Cluster::start(1).await;
    let ok = c.client("hosta", &[0], SLOW).await;
    let v1 = create(&ok, "web1").await;
    let next = v1.value.next("hostb", "/e", true);
    // A certificate from another CA: etcd refuses the handshake.
    let stranger = c.client("stranger", &[0], DEFAULT_TIMEOUT).await;
    let e = stranger.read("web1").await.unwrap_err();
    eprintln!("WITNESS stranger's read: {e}");
    assert!(e.is_unreachable(), "{e}");
    let e = stranger.swap("web1", Some(&v1), &next).await.unwrap_err();
    assert!(e.is_unreachable(), "{e}");
    // etcd says why (and logs it for its operator).
    let log = c.log_tail(0);
    assert!(
        log.contains("rejected connection") && log.contains("certificate"),
        "{log}"
    );
    // A member whose certificate does not carry the name we expect: we refuse it.
    let mut s = c.settings("hosta", &[0], DEFAULT_TIMEOUT);
    s.server_name = Some("elsewhere".into());
    let wrong = ftd::witness::etcd::EtcdWitness::connect(s).await.unwrap();
    let e = wrong.swap("web1", Some(&v1), &next).await.unwrap_err();
    eprintln!("WITNESS wrong server name: {e}");
    assert!(
        e.is_unreachable() && e.to_string().contains("certificate"),
        "{e}"
    );
    // The record did not move.
    assert_eq!(ok.read("web1").await.unwrap(), Some(v1));
}

/// Median, 90th percentile and maximum of `n` timed runs of `f`.
async fn timed<F, Fut>(n: usize, mut f: F) -> [Duration; 3]
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut t = Vec::with_capacity(n);
    for i in 0..n {
        let t0 = Instant::now();
        f(i).await;
        t.push(t0.elapsed());
    }
    t.sort();
    [t[n / 2], t[n * 9 / 10], t[n - 1]]
}

/// 200 reads and 200 swaps one after the other; prints and returns the medians.
async fn measure(w: &dyn Witness, members: usize) -> (Duration, Duration) {
    let mut seen = create(w, "lat").await;
    let reads = timed(200, |_| async {
        w.read("lat").await.unwrap().unwrap();
    })
    .await;
    let mut swaps = Vec::with_capacity(200);
    for i in 0..200 {
        let next = seen
            .value
            .next(if i % 2 == 0 { "hostb" } else { "hosta" }, "/d", true);
        let t0 = Instant::now();
        seen = won(w.swap("lat", Some(&seen), &next).await.unwrap());
        swaps.push(t0.elapsed());
    }
    swaps.sort();
    let swaps = [swaps[100], swaps[180], swaps[199]];
    eprintln!(
        "WITNESS latency members={members} read p50={:?} p90={:?} max={:?}; \
         swap p50={:?} p90={:?} max={:?} (200 each)",
        reads[0], reads[1], reads[2], swaps[0], swaps[1], swaps[2]
    );
    (reads[0], swaps[0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_latency_of_a_read_and_a_swap() {
    let c = Cluster::start(1).await;
    let w = c.client("hosta", &[0], SLOW).await;
    let (read, swap) = measure(&w, 1).await;
    // Loose bounds (a loaded 2-core machine); the figures are the point.
    assert!(read < Duration::from_millis(100) && swap < Duration::from_millis(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_answer_with_one_gone_but_not_with_two() {
    let mut c = Cluster::start(3).await;
    let all = c.all();
    let w = c.client("hosta", &all, DEFAULT_TIMEOUT).await;
    let patient = c.client("hosta", &all, SLOW).await;
    let (read, swap) = measure(&patient, 3).await;
    assert!(read < Duration::from_millis(100) && swap < Duration::from_millis(200));
    let mut seen = create(&w, "web1").await;

    // The leader dies: once the other two have elected one, swaps win again.
    let leader = c.leader(0);
    let t_kill = Instant::now();
    c.kill(leader);
    let (v, took) = within(Duration::from_secs(15), || {
        let next = seen.value.next("hostb", "/e", true);
        let seen = seen.clone();
        let w = &w;
        async move {
            match w.swap("web1", Some(&seen), &next).await {
                Ok(s) => Some(won(s)),
                Err(e) => {
                    assert!(e.is_unreachable(), "{e}");
                    None
                }
            }
        }
    })
    .await
    .expect("two members of three answer again");
    eprintln!(
        "WITNESS leader m{leader} killed: swaps won again after {took:?} ({:?} after the kill)",
        t_kill.elapsed()
    );
    seen = v;
    for i in 0..20 {
        let next = seen
            .value
            .next(if i % 2 == 0 { "hosta" } else { "hostb" }, "/d", true);
        seen = won(w.swap("web1", Some(&seen), &next).await.unwrap());
    }
    assert_eq!(w.read("web1").await.unwrap(), Some(seen.clone()));

    // A second member dies: no quorum, nobody may go live.
    let second = all.iter().copied().find(|&i| i != leader).unwrap();
    c.kill(second);
    let next = seen.value.next("hostb", "/e", true);
    for _ in 0..3 {
        let t0 = Instant::now();
        let e = w.swap("web1", Some(&seen), &next).await.unwrap_err();
        let t = t0.elapsed();
        assert!(e.is_unreachable(), "{e}");
        assert!(t <= DEFAULT_TIMEOUT + SLACK, "{t:?}");
        let e = w.read("web1").await.unwrap_err();
        assert!(e.is_unreachable(), "{e}");
        eprintln!("WITNESS two of three killed: swap unreachable after {t:?}: {e}");
    }
}
