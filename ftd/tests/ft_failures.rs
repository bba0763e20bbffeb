//! When protection cannot be established, it fails with an error that names the
//! step and the cause, and the primary is left running, unharmed, with nothing
//! of COLO left on either host.

mod common;

use common::*;
use ftvirt_lab::{wait_until, wait_until_async, GuestSpec, Lab, LabConfig, Look};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

/// Nothing of COLO on the primary (checked through QMP, not ftd's state).
fn assert_primary_clean(lab: &Lab, domain: &str) {
    let a = lab.host("a").unwrap();
    let q = |cmd: &str| a.virsh(&["qemu-monitor-command", domain, cmd]).unwrap();
    let objects = q(r#"{"execute":"qom-list","arguments":{"path":"/objects"}}"#);
    for id in ["comp0", "m0", "redire0", "redire1", "iothread900"] {
        assert!(
            !objects.contains(&format!("\"{id}\"")),
            "object {id} left: {objects}"
        );
    }
    assert!(!q(r#"{"execute":"query-named-block-nodes"}"#).contains("ftvirt-replication"));
    assert!(
        !q(r#"{"execute":"query-block-jobs"}"#).contains("ftvirt-"),
        "a block job is left"
    );
    assert!(
        q(r#"{"execute":"query-status"}"#).contains(r#""status":"running""#),
        "the primary is not running"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_peer_fails_clearly_then_protects_when_it_returns() {
    let Some(mut lab) = Lab::for_test(LabConfig::hosts(&["a", "b"])) else {
        return;
    };
    let g = lab
        .boot_guest("a", &GuestSpec::standard("g", 0))
        .expect("boot");
    start_ftd(&mut lab, "a", "b");
    let mut c = lab.connect(&g).unwrap();
    let st = client(&lab, "a")
        .await
        .enable("g", ftd_proxy::no_options())
        .await
        .unwrap();
    assert_eq!(st, "failed");
    let s = client(&lab, "a").await.status("g").await.unwrap();
    assert!(s.last_error.contains("peer host is unreachable"), "{s:?}");
    assert!(s.wanted && !s.peer_up);
    c.put(1, "still-served").unwrap();
    assert_primary_clean(&lab, "g");

    // The peer's ftd starts: protection follows by itself.
    start_ftd(&mut lab, "b", "a");
    wait_state(&lab, "a", "g", "protected", LONG).await;
    c.put(2, "protected").unwrap();
    lab.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn secondary_that_cannot_be_created_fails_protection_leaves_nothing_and_is_retried() {
    let Some(mut lab) = Lab::for_test(LabConfig::hosts(&["a", "b"])) else {
        return;
    };
    let g = lab
        .boot_guest("a", &GuestSpec::standard("g", 0))
        .expect("boot");
    // b's overlay directory sits under a regular file: qemu-img cannot create images.
    let blocker = lab.host("b").unwrap().dir.join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let yaml_b = {
        let (b, a) = (lab.host("b").unwrap(), lab.host("a").unwrap());
        ftd_yaml(b, a, 2000).replace(
            &format!("overlay-dir: {}/overlays", b.dir.display()),
            &format!("overlay-dir: {}/overlays", blocker.display()),
        )
    };
    start_ftd(&mut lab, "a", "b");
    start_ftd_with(&mut lab, "b", &yaml_b);
    let mut c = lab.connect(&g).unwrap();
    c.put(1, "before").unwrap();

    client(&lab, "a")
        .await
        .enable("g", ftd_proxy::no_options())
        .await
        .unwrap();
    let s = wait_state(&lab, "a", "g", "failed", LONG).await;
    eprintln!("last error: {}", s.last_error);
    assert!(
        s.last_error.starts_with("protection failed on the peer: "),
        "{s:?}"
    );
    assert!(
        s.last_error.contains("creating the secondary failed"),
        "the step is named: {s:?}"
    );
    assert!(
        s.last_error.contains("not-a-dir") && s.last_error.contains("Not a directory"),
        "the cause is named: {s:?}"
    );

    // The primary runs on, untouched; the secondary's host holds nothing.
    c.put(2, "after").unwrap();
    assert_eq!(c.last().unwrap(), 2);
    assert_primary_clean(&lab, "g");
    let b = lab.host("b").unwrap();
    assert!(
        b.domains(true).unwrap().is_empty(),
        "b holds {:?}",
        b.domains(true)
    );
    assert_eq!(
        client(&lab, "b").await.status("g").await.unwrap().state,
        "standby"
    );

    // ftd tries again by itself; once the cause is fixed, the retry protects.
    assert!(
        s.last_error.contains("attempt 1; ftd tries again in 10s"),
        "the retry is announced: {s:?}"
    );
    std::fs::remove_file(&blocker).unwrap();
    std::fs::create_dir(&blocker).unwrap();
    let t = std::time::Instant::now();
    wait_state(&lab, "a", "g", "protected", LONG).await;
    eprintln!("protected by the retry {:?} after the fix", t.elapsed());
    c.put(3, "protected").unwrap();
    assert_eq!(c.last().unwrap(), 3);
    lab.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn secondary_dying_mid_protection_fails_it_leaves_nothing_and_the_retry_protects() {
    let Some((lab, g)) = lab_with_guest() else {
        return;
    };
    let mut c = lab.connect(&g).unwrap();
    client(&lab, "a")
        .await
        .enable("g", ftd_proxy::no_options())
        .await
        .unwrap();
    // Once the secondary is up and the primary is syncing or entering COLO, the
    // secondary dies: the sync, the migration or the COLO start fails.
    let a_bus = client(&lab, "a").await;
    let what = "the primary to sync or start COLO";
    let st = wait_until_async(what, LONG, Duration::from_millis(10), || async {
        let st = a_bus.status("g").await.map(|s| s.state).unwrap_or_default();
        match st.as_str() {
            "syncing" | "starting" => Look::Ready(st),
            "protected" => Look::Failed("protected before the secondary could be destroyed".into()),
            _ => Look::Seen(st),
        }
    })
    .await
    .unwrap();
    eprintln!("destroying the secondary while the primary is {st}");
    lab.host("b").unwrap().virsh(&["destroy", "g"]).unwrap();
    let s = wait_state(&lab, "a", "g", "failed", LONG).await;
    eprintln!("last error: {}", s.last_error);
    assert!(
        [
            "disk sync",
            "starting COLO",
            "secondary domain stopped",
            "failed on the peer"
        ]
        .iter()
        .any(|step| s.last_error.contains(step)),
        "the failing step is named: {s:?}"
    );
    c.put(1, "after").unwrap();
    // Undo may still be finishing: wait for its block jobs to go, then nothing
    // is left (assert_primary_clean says what is, should they not go).
    let _ = wait_until(
        "the undo's block jobs on a to end",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let jobs = lab.host("a").unwrap().virsh(&[
                "qemu-monitor-command",
                "g",
                r#"{"execute":"query-block-jobs"}"#,
            ]);
            match jobs {
                Ok(j) => Look::holds(!j.contains("ftvirt-"), || j),
                Err(e) => Look::Failed(e.to_string()),
            }
        },
    );
    assert_primary_clean(&lab, "g");
    assert!(lab.host("b").unwrap().domains(false).unwrap().is_empty());
    // b is fine again: ftd's own retry protects the domain.
    wait_state(&lab, "a", "g", "protected", LONG).await;
    c.put(2, "protected again").unwrap();
    assert_eq!(c.last().unwrap(), 2);
    lab.shutdown().unwrap();
}
