//! The etcd witness on the lab (`LabConfig::with_etcd`), seen from the lab's hosts
//! as ftd will see it: etcd members in the witness host's namespaces, reached over
//! mutual TLS at the witness's address from inside host a's and b's namespaces,
//! with each host's own certificate (etcdctl) and with ftd's own witness client
//! configured by the `arbiter:` section the lab writes into a host's ftd.yaml. A
//! client without a certificate is refused; a stopped member makes reads fail
//! within their deadline and, started again, still holds what was written; three
//! members keep accepting writes with one of them (the leader) stopped, and not
//! with two. Every etcd process dies with the lab.

use ftd::config::Config;
use ftd::witness::etcd::{EtcdWitness, Settings};
use ftd::witness::{Record, Swap, Versioned, Witness, WitnessError};
use ftvirt_lab::{etcd, ftd::lab_yaml, netns, wait_until, Lab, LabConfig, Look, WITNESS_IP};
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// ftd's witness settings for host `me` (paired with `peer`), read by ftd's own
/// configuration code from the text the lab writes for it.
fn settings(lab: &Lab, me: &str, peer: &str) -> Settings {
    let text = lab_yaml(lab, lab.host(me).unwrap(), lab.host(peer).unwrap(), 2000);
    let cfg = Config::from_str(&text, &format!("host {me}'s ftd.yaml"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    cfg.witness_settings().unwrap_or_else(|e| panic!("{e}"))
}

/// Run the async `f` inside host `host`'s network namespace; its result and how long
/// it took.
fn in_host<T: Send, F: Future<Output = T>>(
    lab: &Lab,
    host: &str,
    f: impl FnOnce() -> F + Send,
) -> (T, Duration) {
    lab.host(host)
        .unwrap()
        .ns
        .run_in(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let t0 = Instant::now();
            let v = rt.block_on(f());
            (v, t0.elapsed())
        })
        .unwrap()
}

/// ftd's client of host `me` reads `domain`'s record.
fn ftd_read(
    lab: &Lab,
    me: &str,
    peer: &str,
) -> (Result<Option<Versioned<Record>>, WitnessError>, Duration) {
    let s = settings(lab, me, peer);
    in_host(lab, me, || async move {
        let w = EtcdWitness::connect(s).await.unwrap();
        w.read("web").await
    })
}

/// The lines of member `i`'s log, after waiting until one contains `needle`.
fn wait_log(lab: &Lab, i: usize, needle: &str) -> String {
    wait_until(
        &format!("etcd member {i}'s log to say {needle:?}"),
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let t = lab.etcd_log_tail(i, 50).unwrap();
            Look::when(t.contains(needle).then(|| t.clone()), || t)
        },
    )
    .unwrap()
}

#[test]
fn one_member_serves_the_hosts_over_mutual_tls_and_outlives_a_restart() {
    let Some(mut lab) = Lab::for_test(LabConfig::hosts(&["a", "b"]).with_etcd(1)) else {
        return;
    };
    assert_eq!(lab.etcd_endpoints(), [SocketAddr::from((WITNESS_IP, 2379))]);

    // From inside a, with a's certificate; read back from b and by the lab.
    let a = lab.etcdctl("a").unwrap();
    a.put("/lab/k", "v 1").unwrap();
    assert_eq!(a.get("/lab/k").unwrap().as_deref(), Some("v 1"));
    let b = lab.etcdctl("b").unwrap();
    assert_eq!(b.get("/lab/k").unwrap().as_deref(), Some("v 1"));
    assert_eq!(lab.etcd_get("/lab/k").unwrap().as_deref(), Some("v 1"));
    assert_eq!(lab.etcd_get("/lab/absent").unwrap(), None);

    // No certificate: the member refuses the TLS handshake.
    let e = lab
        .etcdctl("a")
        .unwrap()
        .without_cert()
        .timeout(Duration::from_secs(2))
        .get("/lab/k")
        .expect_err("a client without a certificate must be refused");
    eprintln!("without a certificate: {e}");
    wait_log(&lab, 0, "client didn't provide a certificate");

    // ftd's own client, configured by the arbiter section the lab writes: a
    // swaps in the first record, b reads it, and it is stored where ftd keeps it.
    let rec = Record::first("web", "a", "/var/lib/ftvirt/web.qcow2", true).unwrap();
    let s = settings(&lab, "a", "b");
    assert_eq!(s.server_name.as_deref(), Some(etcd::SERVER_NAME));
    let (won, _) = in_host(&lab, "a", || async {
        let w = EtcdWitness::connect(s).await.unwrap();
        w.swap("web", None, &rec).await.unwrap()
    });
    assert!(matches!(&won, Swap::Won(v) if v.value == rec), "{won:?}");
    let (seen, took) = ftd_read(&lab, "b", "a");
    assert_eq!(seen.unwrap().map(|v| v.value), Some(rec.clone()));
    eprintln!("ftd's client on b read the record in {took:?}");
    let stored = lab.etcd_get("/ftvirt/v1/domains/web").unwrap().unwrap();
    assert!(stored.contains(r#""holder":"a""#), "{stored}");

    // The member down: reads from b fail within their deadline.
    lab.etcd_stop_member(0).unwrap();
    let t0 = Instant::now();
    let r = lab
        .etcdctl("b")
        .unwrap()
        .timeout(Duration::from_secs(2))
        .get("/lab/k");
    let took = t0.elapsed();
    assert!(r.is_err(), "read from b with the witness down: {r:?}");
    assert!(
        took < Duration::from_secs(4),
        "etcdctl failed after {took:?}"
    );
    let (r, took) = ftd_read(&lab, "b", "a");
    let deadline = settings(&lab, "b", "a").timeout;
    assert!(
        matches!(&r, Err(e) if e.is_unreachable()),
        "ftd's read with the witness down: {r:?}"
    );
    assert!(
        took < deadline + Duration::from_secs(1),
        "ftd's read failed after {took:?}, its deadline is {deadline:?}"
    );
    eprintln!("with the witness down, ftd's read failed in {took:?}");

    // Up again on its data directory: everything is still there.
    let took = lab.etcd_start_member(0).unwrap();
    eprintln!("member 0 answered again {took:?} after its start");
    let b = lab.etcdctl("b").unwrap();
    assert_eq!(b.get("/lab/k").unwrap().as_deref(), Some("v 1"));
    let (seen, _) = ftd_read(&lab, "b", "a");
    assert_eq!(seen.unwrap().map(|v| v.value), Some(rec));

    let inodes = lab.netns_inodes().to_vec();
    lab.shutdown().unwrap();
    assert!(
        netns::pids_in(&inodes).is_empty(),
        "processes of the lab survived its tear-down"
    );
}

#[test]
fn three_members_take_writes_with_one_down_and_not_with_two() {
    let Some(mut lab) = Lab::for_test(LabConfig::hosts(&["a", "b"]).with_etcd(3)) else {
        return;
    };
    let list = lab
        .etcdctl("b")
        .unwrap()
        .run(&["member", "list", "--write-out=json"])
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v["members"].as_array().map(Vec::len), Some(3), "{list}");

    // The leader down: the other two elect one and take the write (quorum 2 of 3).
    let down = lab.etcd_leader().unwrap();
    lab.etcd_stop_member(down).unwrap();
    let took = wait_until(
        "the two members left to take a write",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            lab.etcdctl("a")
                .unwrap()
                .put("/lab/q", "two of three")
                .into()
        },
    );
    took.unwrap();
    let up: Vec<usize> = (0..3).filter(|&i| i != down).collect();
    for &i in &up {
        let b = lab.etcdctl("b").unwrap().member(i).unwrap();
        assert_eq!(b.get("/lab/q").unwrap().as_deref(), Some("two of three"));
    }

    // Back up, the stopped member has caught up.
    lab.etcd_start_member(down).unwrap();
    let m = lab.etcdctl("b").unwrap().member(down).unwrap();
    assert_eq!(m.get("/lab/q").unwrap().as_deref(), Some("two of three"));

    // Two down: no quorum, no write (another key: a proposal the lone member took
    // as a stale leader could still be committed once a second member is back).
    lab.etcd_stop_member(up[0]).unwrap();
    lab.etcd_stop_member(up[1]).unwrap();
    let r = lab
        .etcdctl("a")
        .unwrap()
        .timeout(Duration::from_secs(2))
        .put("/lab/one", "one of three");
    assert!(r.is_err(), "a write with one member of three: {r:?}");
    lab.etcd_start_member(up[0]).unwrap();
    assert_eq!(
        lab.etcd_get("/lab/q").unwrap().as_deref(),
        Some("two of three")
    );

    let inodes = lab.netns_inodes().to_vec();
    lab.shutdown().unwrap();
    assert!(
        netns::pids_in(&inodes).is_empty(),
        "processes of the lab survived its tear-down"
    );
}
