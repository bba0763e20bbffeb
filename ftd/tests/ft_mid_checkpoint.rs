//! The primary's host dies in the middle of a checkpoint: while it is sending the
//! guest's state to the secondary. The secondary's QEMU is then blocked reading a
//! stream that will never end (no RST comes from a dead host), and it reads the
//! RAM part of a checkpoint holding QEMU's big lock, so every QMP command waits
//! too. The takeover must not hang: the secondary must drop the dead stream and go
//! on from its own state (which the client's acknowledged writes are part of).
//!
//! To be in a checkpoint on purpose, the primary host's outgoing migration
//! traffic is slowed down (tc htb on its replication link) so that a checkpoint
//! takes seconds; the client's writes stall while the primary is stopped for it;
//! a stall is when the host is killed. Both ways: the primary's host (the
//! secondary must take over) and the secondary's (the primary must run on).

mod common;

use common::*;
use ftvirt_lab::writer::{verify_writes, Pace, Writer};
use ftvirt_lab::Lab;
use std::time::{Duration, Instant};

/// The lab's first domain slot's incoming migration port (ftd's default ports).
const MIGRATION_PORT: &str = "9998";

#[tokio::test(flavor = "multi_thread")]
async fn primary_host_killed_in_the_middle_of_a_checkpoint() {
    let Some(lab) = kill_mid_checkpoint("a").await else {
        return;
    };
    let sb = wait_state(&lab, "b", "g", "degraded", Duration::from_secs(30)).await;
    assert!(sb.last_failover.contains("primary host lost"), "{sb:?}");
    lab.shutdown().unwrap();
}

/// The other way round: the secondary's host dies while the primary is sending it
/// a checkpoint. The primary's QEMU is then blocked writing to a dead host, its
/// guest stopped for the checkpoint: it must leave COLO and run on.
#[tokio::test(flavor = "multi_thread")]
async fn secondary_host_killed_in_the_middle_of_a_checkpoint() {
    let Some(lab) = kill_mid_checkpoint("b").await else {
        return;
    };
    let sa = wait_state(&lab, "a", "g", "degraded", Duration::from_secs(30)).await;
    assert!(sa.last_failover.contains("secondary host lost"), "{sa:?}");
    lab.shutdown().unwrap();
}

/// Protect `g` (primary a, secondary b) with the client connected, slow down a's
/// checkpoints, and power-cut `victim` while the client is stalled by one; then
/// check the client's connection answers a request sent after the cut, with the
/// same boot and every acknowledged write. `None` when lab tests are skipped.
async fn kill_mid_checkpoint(victim: &str) -> Option<Lab> {
    let survivor = if victim == "a" { "b" } else { "a" };
    let (mut lab, g) = lab_with_guest()?;
    let mut c = lab.connect(&g).unwrap();
    c.set_timeout(Duration::from_secs(30));
    let boot = c.info().unwrap().boot_id;
    let last = c.last().unwrap();
    protect_g(&lab).await;
    wait_state(&lab, "b", "g", "secondary", Duration::from_secs(30)).await;

    throttle(&lab, "a", MIGRATION_PORT, "4mbit");
    let w = Writer::start_paced(c, 2, last, Pace::BackToBack).unwrap();
    let stalled = w
        .wait_stalled(Duration::from_millis(300), Duration::from_secs(60))
        .expect("a checkpoint to stall the client");
    eprintln!("client stalled {stalled:?}: the primary is in a checkpoint");
    lab.kill_host(victim).unwrap();
    let t_kill = Instant::now();
    let answered = w.wait_reply_sent_after(t_kill, Duration::from_secs(40));
    let st = client(&lab, survivor).await.status("g").await.unwrap();
    let r = answered.unwrap_or_else(|e| {
        panic!(
            "{e}; {survivor}: {st:?}\n{}",
            ftvirt_lab::ftd::log_tail(&lab, survivor, 15)
        )
    });
    eprintln!(
        "first reply {} ms after the kill; {} writes acknowledged",
        (r.done - t_kill).as_millis(),
        w.stats().acked - last
    );
    let v = verify_writes(&w, &boot, &format!("{victim}'s loss mid-checkpoint"), &[]).unwrap();
    eprintln!("{v}");
    w.stop();
    Some(lab)
}

/// Slow down what host `host` sends to TCP port `port` on its replication link.
fn throttle(lab: &Lab, host: &str, port: &str, rate: &str) {
    let ns = lab.host(host).unwrap().ns.name.clone();
    let tc = |args: &[&str]| {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "tc"])
            .args(args)
            .output()
            .expect("tc");
        assert!(
            out.status.success(),
            "tc {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    tc(&[
        "qdisc", "add", "dev", "rep0", "root", "handle", "1:", "htb", "default", "10",
    ]);
    tc(&[
        "class", "add", "dev", "rep0", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit",
    ]);
    tc(&[
        "class", "add", "dev", "rep0", "parent", "1:", "classid", "1:20", "htb", "rate", rate,
        "ceil", rate,
    ]);
    tc(&[
        "filter", "add", "dev", "rep0", "parent", "1:", "protocol", "ip", "u32", "match", "ip",
        "dport", port, "0xffff", "flowid", "1:20",
    ]);
}
