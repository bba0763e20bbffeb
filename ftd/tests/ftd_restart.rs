//! Scenario 3 of the fault matrix: ftd killed (SIGKILL) on the primary's host, then
//! on the secondary's, while a protected 2-vCPU guest serves a client that keeps
//! making numbered durable writes on one connection. The peer's ftd sees the ftd,
//! not the host, go: COLO keeps running (no takeover, checkpoints go on), and the
//! restarted ftd re-attaches to the running pair from libvirt and QMP without
//! running a step, pausing or restarting the guest. Then protection is shown to
//! work: the primary's host dies and the secondary takes over. And the negative
//! case: a host whose ftd is already gone dies too: its peer still fails over.

mod common;

use common::*;
use ftvirt_lab::writer::{verify_writes, Stats, Writer};
use ftvirt_lab::{wait_until_async, Lab, LabConfig, Look};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(120);
const CHECKPOINT: Duration = Duration::from_millis(2000);
/// The guest-visible interruption allowed across an ftd restart: one checkpoint
/// interval (colo-compare may hold a reply until the next checkpoint) plus room
/// for this 2-core TCG machine.
const GAP_BOUND: Duration = Duration::from_millis(2000 + 1500);
const POLL: Duration = Duration::from_millis(100);

/// `query-colo-status`'s mode of the domain on `host`, asked through its libvirtd.
fn colo_mode(lab: &Lab, host: &str) -> String {
    let out = lab
        .host(host)
        .unwrap()
        .virsh(&[
            "qemu-monitor-command",
            "g",
            r#"{"execute":"query-colo-status"}"#,
        ])
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["return"]["mode"].as_str().unwrap_or("?").to_string()
}

async fn status(lab: &Lab, host: &str) -> ftd_proxy::DomainStatus {
    client(lab, host).await.status("g").await.unwrap()
}

/// Wait until `host` has counted at least `n` checkpoints.
async fn checkpoints_reach(lab: &Lab, host: &str, n: u64) -> u64 {
    wait_checkpoints(lab, host, "g", n, CHECKPOINT * 10)
        .await
        .checkpoints
}

/// Wait until `host`'s ftd says its peer's ftd is gone (and nothing else changed).
async fn notices_peer_ftd_gone(lab: &Lab, host: &str, state: &str) -> ftd_proxy::DomainStatus {
    let what = format!("{host} to notice its peer's ftd is gone");
    let s = wait_until_async(&what, Duration::from_secs(10), POLL, || async {
        let s = status(lab, host).await;
        if s.state != state {
            return Look::Failed(format!("{host} changed state: {s:?}"));
        }
        let noticed = s.last_error.contains("peer's ftd is not running");
        Look::when(noticed.then_some(s.clone()), || format!("{s:?}"))
    })
    .await
    .unwrap();
    assert!(!s.peer_up, "{s:?}");
    s
}

/// What `host`'s ftd logged since `from` bytes into its log.
fn log_since(lab: &Lab, host: &str, from: u64) -> String {
    let log = std::fs::read(lab.host(host).unwrap().ftd_log()).unwrap();
    String::from_utf8_lossy(&log[from as usize..]).into_owned()
}

fn log_len(lab: &Lab, host: &str) -> u64 {
    std::fs::metadata(lab.host(host).unwrap().ftd_log())
        .map(|m| m.len())
        .unwrap_or(0)
}

/// After `event`: same boot, every acknowledged write on the disk, the same
/// connection (see [`verify_writes`]); the writer goes on afterwards.
fn verify(w: &Writer, boot: &str, event: &str) {
    let v = verify_writes(w, boot, event, &[]).unwrap();
    eprintln!("after {event}: {v}");
    w.resume().unwrap();
}

fn assert_client_fine(s: &Stats) {
    s.trouble().unwrap();
}

/// Wait for the client's first reply to a request sent after `t_kill`.
fn first_reply_after(w: &Writer, t_kill: Instant) -> Duration {
    let r = w.wait_reply_sent_after(t_kill, LONG).unwrap();
    r.done - t_kill
}

/// A lab with the etcd witness, the guest on a, protected onto b, and the
/// writer running; `None` when lab tests are skipped.
async fn protected_lab() -> Option<(Lab, Writer, String)> {
    let mut lab = Lab::for_test(LabConfig::hosts(&["a", "b"]).with_etcd(1))?;
    let g = lab
        .boot_guest("a", &ftvirt_lab::GuestSpec::standard("g", 0))
        .expect("boot");
    start_ftd(&mut lab, "a", "b");
    start_ftd(&mut lab, "b", "a");
    let mut c = lab.connect(&g).unwrap();
    c.set_timeout(Duration::from_secs(30));
    let boot = c.info().unwrap().boot_id;
    let last = c.last().unwrap();
    let w = Writer::start(c, 2, last).unwrap();
    protect_g(&lab).await;
    checkpoints_reach(&lab, "a", 2).await;
    Some((lab, w, boot))
}

/// Start `me`'s ftd again, its bus still up (paired with `peer`, the test's
/// checkpoint interval).
fn start_ftd_again(lab: &mut Lab, me: &str, peer: &str) {
    let yaml = {
        let (h, p) = (lab.host(me).unwrap(), lab.host(peer).unwrap());
        ftvirt_lab::ftd::lab_yaml(lab, h, p, CHECKPOINT.as_millis() as u64)
    };
    lab.host_mut(me)
        .unwrap()
        .start_ftd(
            std::path::Path::new(env!("CARGO_BIN_EXE_ftd")),
            &yaml,
            BUS_NAME,
        )
        .unwrap();
}

/// Kill ftd on `victim` (holding the `victim_state` half), check its peer keeps
/// COLO running and counting checkpoints, restart it, and wait until it has
/// re-attached. Returns the time from the restart to `protected`/`secondary`.
async fn kill_and_restart_ftd(lab: &mut Lab, victim: &str, peer: &str) -> Duration {
    let (victim_state, peer_state) = if victim == "a" {
        ("protected", "secondary")
    } else {
        ("secondary", "protected")
    };
    let peer_log = log_len(lab, peer);
    let before = status(lab, peer).await.checkpoints;
    lab.host_mut(victim).unwrap().kill_ftd();
    let t = Instant::now();
    notices_peer_ftd_gone(lab, peer, peer_state).await;
    eprintln!("{peer} noticed {victim}'s ftd gone after {:?}", t.elapsed());
    // COLO goes on without the victim's ftd: the peer keeps counting
    // checkpoints (two intervals and more), and nobody took over.
    let n = checkpoints_reach(lab, peer, before + 2).await;
    eprintln!(
        "{peer}: {} checkpoints while {victim}'s ftd was dead ({:?})",
        n - before,
        t.elapsed()
    );
    assert_eq!(status(lab, peer).await.state, peer_state);
    assert_eq!(colo_mode(lab, "a"), "primary");
    assert_eq!(colo_mode(lab, "b"), "secondary");
    let since = log_since(lab, peer, peer_log);
    assert!(
        !since.contains("step started"),
        "{peer} ran a step:\n{since}"
    );

    let victim_log = log_len(lab, victim);
    let t = Instant::now();
    start_ftd_again(lab, victim, peer);
    let s = wait_state(lab, victim, "g", victim_state, LONG).await;
    let took = t.elapsed();
    eprintln!("{victim}'s ftd restarted: {victim_state} again after {took:?}: {s:?}");
    assert!(s.wanted || victim == "b", "{s:?}");
    // Both sides agree again, the peer's note is gone.
    let (v, p) = wait_until_async(
        "both sides to agree again",
        Duration::from_secs(10),
        POLL,
        || async {
            let (v, p) = (status(lab, victim).await, status(lab, peer).await);
            let agree =
                v.peer_up && p.peer_up && p.last_error.is_empty() && v.last_error.is_empty();
            let seen = format!("{v:?} / {p:?}");
            Look::when(agree.then_some((v, p)), || seen)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (v.state.as_str(), p.state.as_str()),
        (victim_state, peer_state)
    );
    // Re-attaching ran no step but the read-only inspection: nothing was set
    // up again, nothing paused.
    let since = log_since(lab, victim, victim_log);
    assert!(since.contains("re-attach: decided"), "{since}");
    let steps: Vec<&str> = since
        .lines()
        .filter(|l| l.contains("step started"))
        .collect();
    assert!(
        steps.len() == 1 && steps[0].contains("Inspect"),
        "{victim} ran a step:\n{since}"
    );
    // The re-attached side counts checkpoints again.
    checkpoints_reach(lab, victim, 2).await;
    took
}

#[tokio::test(flavor = "multi_thread")]
async fn ftd_killed_on_either_host_re_attaches_and_protection_still_works() {
    let Some((mut lab, w, boot)) = protected_lab().await else {
        return;
    };
    // Both sides count checkpoints (from their QEMU's STOP/RESUME): side by side.
    let (a0, b0) = (
        status(&lab, "a").await.checkpoints,
        status(&lab, "b").await.checkpoints,
    );
    let t = Instant::now();
    let a1 = checkpoints_reach(&lab, "a", a0 + 3).await;
    let b1 = status(&lab, "b").await.checkpoints;
    eprintln!(
        "in {:?}: a counted {} checkpoints, b {}",
        t.elapsed(),
        a1 - a0,
        b1 - b0
    );

    let t = Instant::now();
    let a_ms = kill_and_restart_ftd(&mut lab, "a", "b").await;
    let gap_a = w.stats().longest_gap(t, Instant::now());
    let t = Instant::now();
    let b_ms = kill_and_restart_ftd(&mut lab, "b", "a").await;
    let gap_b = w.stats().longest_gap(t, Instant::now());
    assert_client_fine(&w.stats());
    verify(&w, &boot, "both ftd restarts");
    let acked = w.stats().acked;
    eprintln!(
        "re-attach: a (primary) {a_ms:?}, b (secondary) {b_ms:?}; longest reply gap \
         {gap_a:?} / {gap_b:?}; {acked} writes acknowledged"
    );
    assert!(
        gap_a < GAP_BOUND && gap_b < GAP_BOUND,
        "{gap_a:?} {gap_b:?}"
    );
    assert_secondary_console_clean(&lab, "b", "g");

    // Protection works after both restarts: a dies, b takes over.
    checkpoints_reach(&lab, "a", 3).await;
    lab.kill_host("a").unwrap();
    let t_kill = Instant::now();
    let sb = wait_state(&lab, "b", "g", "degraded", LONG).await;
    assert!(sb.last_failover.contains("primary host lost"), "{sb:?}");
    eprintln!(
        "a's host killed: b took over, first reply {:?} after the kill",
        first_reply_after(&w, t_kill)
    );
    verify(&w, &boot, "the takeover");
    let s = w.stop();
    assert_client_fine(&s);
    lab.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_killed_after_its_ftd_still_fails_over() {
    let Some((mut lab, w, boot)) = protected_lab().await else {
        return;
    };
    lab.host_mut("a").unwrap().kill_ftd();
    notices_peer_ftd_gone(&lab, "b", "secondary").await;

    // Now the host goes too: b's knocks go unanswered, b takes over.
    lab.kill_host("a").unwrap();
    let t_kill = Instant::now();
    let sb = wait_state(&lab, "b", "g", "degraded", LONG).await;
    eprintln!(
        "b degraded {:?} after a's host was killed: {sb:?}",
        t_kill.elapsed()
    );
    assert!(sb.last_failover.contains("primary host lost"), "{sb:?}");
    let first = first_reply_after(&w, t_kill);
    eprintln!("first reply {first:?} after the host kill");
    verify(&w, &boot, "the takeover");
    assert_client_fine(&w.stop());
    lab.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secondary_whose_ftd_was_down_when_the_primary_died_takes_over_on_restart() {
    let Some((mut lab, w, boot)) = protected_lab().await else {
        return;
    };
    lab.host_mut("b").unwrap().kill_ftd();
    notices_peer_ftd_gone(&lab, "a", "protected").await;

    // a's host dies while nobody watches on b; b's QEMU waits in COLO.
    lab.kill_host("a").unwrap();
    let t_kill = Instant::now();
    assert_eq!(colo_mode(&lab, "b"), "secondary");
    let t = Instant::now();
    start_ftd_again(&mut lab, "b", "a");
    // b's ftd re-attaches to its secondary, finds a's host silent since it
    // started, and takes over.
    let sb = wait_state(&lab, "b", "g", "degraded", LONG).await;
    eprintln!(
        "b's ftd restarted after a's host died: degraded {:?} after its start: {sb:?}",
        t.elapsed()
    );
    assert!(sb.last_failover.contains("primary host lost"), "{sb:?}");
    let log = std::fs::read_to_string(lab.host("b").unwrap().ftd_log()).unwrap();
    assert!(log.contains("Found(ColoSecondary)"), "{log}");
    let first = first_reply_after(&w, t_kill);
    eprintln!("first reply {first:?} after a's host was killed");
    verify(&w, &boot, "the takeover");
    assert_client_fine(&w.stop());
    lab.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn disable_on_a_survivor_then_an_ftd_restart_keeps_it_running() {
    // The review of 2026-12-04 (8.2): after a takeover the survivor's disk is in
    // its overlay directory; `Disable` removed its mark, and the next ftd start
    // took it for a stale secondary, destroyed it and deleted its only disk.
    let Some((mut lab, w, boot)) = protected_lab().await else {
        return;
    };
    lab.kill_host("a").unwrap();
    wait_state(&lab, "b", "g", "degraded", LONG).await;
    let def = lab
        .host("b")
        .unwrap()
        .virsh(&["dumpxml", "--inactive", "g"])
        .unwrap();
    // Its disk left the scratch directory at the takeover.
    assert!(def.contains("/overlays/g/disk/g.qcow2"), "{def}");
    assert!(!def.contains("/secondary/"), "{def}");
    client(&lab, "b").await.disable("g").await.unwrap();
    wait_state(&lab, "b", "g", "unprotected", LONG).await;
    // `unprotected` is reported when Disable is accepted; the mark goes in the
    // step after it. A crash before that step leaves a marked domain, which a
    // restarted ftd protects again: that is not what this test is about.
    let b = lab.host("b").unwrap();
    ftvirt_lab::wait_until(
        "b's ftd to remove g's mark after Disable",
        LONG,
        Duration::from_millis(50),
        || {
            let marked = ["--live", "--config"].iter().any(|when| {
                b.virsh(&["metadata", "g", ftd::annotation::NAMESPACE, when])
                    .is_ok_and(|s| !s.trim().is_empty())
            });
            ftvirt_lab::Look::holds(!marked, || "still marked".into())
        },
    )
    .unwrap();
    let written = w.stats().acked;

    lab.host_mut("b").unwrap().kill_ftd();
    start_ftd_again(&mut lab, "b", "a");
    // The restarted ftd looks at it and leaves it running, unprotected.
    let s = wait_state(&lab, "b", "g", "unprotected", LONG).await;
    eprintln!("after the restart: {s:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let state = lab.host("b").unwrap().virsh(&["domstate", "g"]).unwrap();
    assert_eq!(state.trim(), "running", "the survivor was stopped");
    let log = std::fs::read_to_string(lab.host("b").unwrap().ftd_log()).unwrap();
    assert!(!log.contains("destroyed the secondary copy"), "{log}");
    let disk = lab.host("b").unwrap().dir.join("overlays/g/disk/g.qcow2");
    assert!(disk.is_file(), "{} is gone", disk.display());
    w.wait_acked(5, Duration::from_secs(30)).unwrap();
    assert!(w.stats().acked > written);
    verify(&w, &boot, "disable on the survivor and an ftd restart");
    assert_client_fine(&w.stop());
    lab.shutdown().unwrap();
}
