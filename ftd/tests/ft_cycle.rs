//! The full cycle with each host's own ftd: protect on a, lose a, b takes over;
//! a comes back and b re-protects onto it by itself; a planned failover (the
//! `Failover` call) brings the guest back to a, which re-protects onto b; then
//! protection is disabled and nothing of COLO is left on either host. One client
//! connection, opened at the start, is used throughout. At each stage, QEMU runs
//! as libvirt's unprivileged user on both hosts and every file ftd made for it
//! (overlays, base images, the survivor's disk, COLO's TLS files) is that user's
//! and readable by no one else ([`common::assert_posture`]).

mod common;

use common::*;
use ftvirt_lab::{wait_until, Look};
use serde_json::json;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread")]
async fn fail_over_reprotect_fail_back_and_disable() {
    let Some((mut lab, g)) = lab_with_guest() else {
        return;
    };
    let mut c = lab.connect(&g).unwrap();
    c.set_timeout(Duration::from_secs(30));
    let boot = c.info().unwrap().boot_id;
    let mut n = 0u64;
    let mut put = |c: &mut ftvirt_lab::GuestConn, tag: &str| {
        n += 1;
        c.put(n, tag)
            .unwrap_or_else(|e| panic!("PUT {n} ({tag}): {e}"));
        n
    };

    // A checkpoint interval of the domain's own: it must follow the domain
    // through failovers (the survivor protects with it, not with its default).
    let opts = ftd_proxy::EnableOptions {
        checkpoint_interval_ms: Some(1500),
        ..Default::default()
    };
    client(&lab, "a")
        .await
        .enable("g", opts.to_dict())
        .await
        .unwrap();
    wait_state(&lab, "a", "g", "protected", LONG).await;
    for _ in 0..5 {
        put(&mut c, "a-protected");
    }
    assert_posture(&lab, "a", &["images/g.ftvirt", "qemu-tls/server-key.pem"]);
    assert_posture(
        &lab,
        "b",
        &[
            "overlays/g/secondary/parent0.qcow2",
            "secondary/active.qcow2",
            "secondary/hidden.qcow2",
            "qemu-tls/client-key.pem",
        ],
    );

    // 1. a dies: b takes over.
    lab.kill_host("a").unwrap();
    let acked = put(&mut c, "after-a-lost");
    wait_state(&lab, "b", "g", "degraded", LONG).await;
    assert_posture(&lab, "b", &["overlays/g/disk/g.qcow2"]);

    // 2. a comes back: b re-protects onto it by itself.
    let t = Instant::now();
    lab.restart_host("a").unwrap();
    start_ftd(&mut lab, "a", "b");
    wait_state(&lab, "b", "g", "protected", LONG).await;
    wait_state(&lab, "a", "g", "secondary", LONG).await;
    eprintln!(
        "re-protected onto the restarted host {:?} after it came back",
        t.elapsed()
    );
    for _ in 0..5 {
        put(&mut c, "b-protected");
    }
    // The survivor's pivot image beside its disk; a secondary on a again.
    assert_posture(&lab, "b", &["overlays/g/disk/g.ftvirt"]);
    assert_posture(&lab, "a", &["overlays/g/secondary/parent0.qcow2"]);
    // The survivor kept the mark, pointing at its own peer, and the interval.
    let mark = lab
        .host("b")
        .unwrap()
        .virsh(&["metadata", "g", ftd::annotation::NAMESPACE])
        .unwrap();
    assert!(
        mark.contains("peer=\"a\"") && mark.contains("checkpoint-interval=\"1500\""),
        "{mark}"
    );
    wait_checkpoint_delay(&lab, "b", 1500);
    assert_secondary_console_clean(&lab, "a", "g");

    // 3. Planned failover back to a; a then re-protects onto b.
    let t = Instant::now();
    let st = client(&lab, "b").await.failover("g").await.unwrap();
    assert_eq!(st, "switching-over");
    put(&mut c, "during-switch");
    wait_state(&lab, "a", "g", "protected", LONG).await;
    wait_state(&lab, "b", "g", "secondary", LONG).await;
    eprintln!("fail-back and re-protection took {:?}", t.elapsed());
    let last = put(&mut c, "a-protected-again");
    assert_eq!(c.info().unwrap().boot_id, boot, "the guest rebooted");
    assert_eq!(c.last().unwrap(), last);
    assert!(last > acked);

    // 4. Disable: a runs alone, nothing of COLO remains anywhere. With the
    // witness, a first claims the record (running alone is a go-live), then
    // leaves COLO.
    assert_eq!(
        client(&lab, "a").await.disable("g").await.unwrap(),
        "arbitrating"
    );
    wait_state(&lab, "a", "g", "unprotected", LONG).await;
    wait_state(&lab, "b", "g", "standby", LONG).await;
    let a = lab.host("a").unwrap();
    let qmp = |cmd: &str| {
        let out = a
            .virsh(&[
                "qemu-monitor-command",
                "g",
                &json!({"execute": cmd}).to_string(),
            ])
            .unwrap();
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["return"].clone()
    };
    let objects = a
        .virsh(&[
            "qemu-monitor-command",
            "g",
            r#"{"execute":"qom-list","arguments":{"path":"/objects"}}"#,
        ])
        .unwrap();
    for id in ["comp0", "m0", "redire0", "redire1", "iothread900"] {
        assert!(
            !objects.contains(&format!("\"{id}\"")),
            "object {id} left on a: {objects}"
        );
    }
    let chardevs = qmp("query-chardev").to_string();
    for id in ["mirror0", "compare1", "compare0", "compare_out"] {
        assert!(
            !chardevs.contains(&format!("\"{id}\"")),
            "chardev {id} left on a"
        );
    }
    let nodes = qmp("query-named-block-nodes").to_string();
    assert!(
        !nodes.contains("ftvirt-replication"),
        "replication child left on a"
    );
    assert_eq!(qmp("query-colo-status")["mode"], "none");
    // b reports standby at once; the secondary's destruction follows within moments.
    let b = lab.host("b").unwrap();
    wait_until(
        "the secondary on b to be destroyed",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let doms = b.domains(false).unwrap();
            let overlays = b.dir.join("overlays/g/secondary").exists();
            let gone = doms.is_empty() && !overlays;
            Look::holds(gone, || {
                format!("domains {doms:?}, overlays left: {overlays}")
            })
        },
    )
    .unwrap();
    put(&mut c, "unprotected");
    lab.shutdown().unwrap();
}
