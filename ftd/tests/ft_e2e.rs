//! ftvirt end to end: each lab host runs its own ftd; the D-Bus API protects a
//! running 2-vCPU guest, and the guest survives the loss of its host with the
//! client's TCP connection, every acknowledged write and its boot intact.

mod common;

use common::*;
use ftvirt_lab::writer::{verify_writes, Pace, Writer};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn protect_then_survive_primary_host_loss() {
    let Some((mut lab, g)) = lab_with_guest() else {
        return;
    };
    let mut c = lab.connect(&g).unwrap();
    let boot = c.info().unwrap().boot_id;
    let mut acked = 0;
    for n in 1..=5 {
        c.put(n, "unprotected").unwrap();
        acked = n;
    }

    let took = protect_g(&lab).await;
    let sa = client(&lab, "a").await.status("g").await.unwrap();
    eprintln!("protected in {took:?}; a: {sa:?}");
    assert!(sa.peer_up && sa.wanted);

    // Protected: writes go on, checkpoints flow.
    for n in 6..=20 {
        c.put(n, "protected").unwrap();
        acked = n;
    }
    let t = Instant::now();
    let sa = wait_checkpoints(&lab, "a", "g", sa.checkpoints + 2, Duration::from_secs(30)).await;
    eprintln!(
        "{} checkpoints, 2 of them in {:?}",
        sa.checkpoints,
        t.elapsed()
    );
    assert_secondary_console_clean(&lab, "b", "g");

    // Host a dies; b's ftd detects it and takes over by itself.
    lab.kill_host("a").unwrap();
    let t_kill = Instant::now();
    c.set_timeout(Duration::from_secs(30));
    let k = c
        .seq(1)
        .expect("the connection opened before the kill still answers");
    let failover_ms = t_kill.elapsed().as_millis();
    eprintln!("first reply {failover_ms} ms after the kill (request {k} on this connection)");
    assert_eq!(c.info().unwrap().boot_id, boot, "the guest rebooted");
    assert!(c.last().unwrap() >= acked, "acknowledged writes lost");
    c.put(acked + 1, "after-failover").unwrap();
    let sb = wait_state(&lab, "b", "g", "degraded", Duration::from_secs(30)).await;
    assert!(sb.last_failover.contains("primary host lost"), "{sb:?}");
    assert_eq!(
        lab.host("b")
            .unwrap()
            .virsh(&["domstate", "g"])
            .unwrap()
            .trim(),
        "running"
    );
    lab.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn secondary_host_loss_leaves_the_primary_running() {
    let Some((mut lab, g)) = lab_with_guest() else {
        return;
    };
    let mut c = lab.connect(&g).unwrap();
    protect_g(&lab).await;
    for n in 1..=10 {
        c.put(n, "protected").unwrap();
    }
    lab.kill_host("b").unwrap();
    let t = Instant::now();
    // The primary goes on; requests may wait for the detection, none fails.
    let mut worst = Duration::ZERO;
    for n in 11..=30 {
        let (r, rtt) = c.request_timed(&format!("PUT {n} alone")).unwrap();
        assert_eq!(r, format!("DURABLE {n}"));
        worst = worst.max(rtt);
    }
    eprintln!(
        "worst RTT across the secondary's loss: {worst:?} ({:?} for 20 writes)",
        t.elapsed()
    );
    let sa = wait_state(&lab, "a", "g", "degraded", Duration::from_secs(30)).await;
    assert!(sa.last_failover.contains("secondary host lost"), "{sa:?}");
    assert_eq!(c.last().unwrap(), 30);
    lab.shutdown().unwrap();
}

/// A connection the client opens while the domain is already protected (born
/// under COLO: the secondary's guest chose its own initial sequence number, which
/// filter-rewriter maps) must survive the primary host's loss like an older one,
/// with a client writing all the time, cycle after cycle (A -> B, re-protect onto
/// A, B -> A): `FTVIRT_CYCLES` of them (2 by default).
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_opened_while_protected_survives_primary_host_loss() {
    let Some((mut lab, g)) = lab_with_guest() else {
        return;
    };
    protect_g(&lab).await;
    wait_state(&lab, "b", "g", "secondary", Duration::from_secs(30)).await;
    let cycles: usize = std::env::var("FTVIRT_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let (mut p, mut s) = ("a", "b");
    for cycle in 1..=cycles {
        let capture = capture_start(&lab, cycle);
        let mut c = lab.connect(&g).unwrap();
        c.set_timeout(Duration::from_secs(30));
        let boot = c.info().unwrap().boot_id;
        let last = c.last().unwrap();
        let w = Writer::start_paced(c, 2, last, Pace::BackToBack).unwrap();
        // Two checkpoints with the connection established and busy.
        let cp0 = client(&lab, p).await.status("g").await.unwrap().checkpoints;
        wait_checkpoints(&lab, p, "g", cp0 + 2, Duration::from_secs(30)).await;
        lab.kill_host(p).unwrap();
        let t_kill = Instant::now();
        let answered = w.wait_reply_sent_after(t_kill, Duration::from_secs(30));
        capture_stop(capture);
        let r = answered.unwrap_or_else(|e| {
            panic!("cycle {cycle}: no reply on the connection opened while protected after {p}'s loss: {e}")
        });
        eprintln!(
            "cycle {cycle}: {p} killed; first reply to a request sent after it: {} ms; {} writes acked",
            (r.done - t_kill).as_millis(),
            w.stats().acked - last
        );
        let v = verify_writes(&w, &boot, &format!("{p}'s loss"), &[]).unwrap();
        eprintln!("cycle {cycle}: {v}");
        w.stop();
        wait_state(&lab, s, "g", "degraded", Duration::from_secs(30)).await;
        if cycle == cycles {
            break;
        }
        lab.restart_host(p).unwrap();
        start_ftd(&mut lab, p, s);
        wait_state(&lab, s, "g", "protected", Duration::from_secs(180)).await;
        wait_state(&lab, p, "g", "secondary", Duration::from_secs(30)).await;
        std::mem::swap(&mut p, &mut s);
    }
    lab.shutdown().unwrap();
}
