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
use ftvirt_lab::Lab;
use std::time::{Duration, Instant};

/// The lab's first domain slot's incoming migration port (ftd's default ports).
const MIGRATION_PORT: &str = "9998";

#[tokio::test(flavor = "multi_thread")]
async fn primary_host_killed_in_the_middle_of_a_checkpoint() {
    let lab = kill_mid_checkpoint("a").await;
    let sb = wait_state(&lab, "b", "g", "degraded", Duration::from_secs(30)).await;
    assert!(sb.last_failover.contains("primary host lost"), "{sb:?}");
    lab.shutdown().unwrap();
}

/// The other way round: the secondary's host dies while the primary is sending it
/// a checkpoint. The primary's QEMU is then blocked writing to a dead host, its
/// guest stopped for the checkpoint: it must leave COLO and run on.
#[tokio::test(flavor = "multi_thread")]
async fn secondary_host_killed_in_the_middle_of_a_checkpoint() {
    let lab = kill_mid_checkpoint("b").await;
    let sa = wait_state(&lab, "a", "g", "degraded", Duration::from_secs(30)).await;
    assert!(sa.last_failover.contains("secondary host lost"), "{sa:?}");
    lab.shutdown().unwrap();
}

/// Protect `g` (primary a, secondary b) with the client connected, slow down a's
/// checkpoints, and power-cut `victim` while the client is stalled by one; then
/// check the client's connection answers a request sent after the cut, with the
/// same boot and every acknowledged write.
async fn kill_mid_checkpoint(victim: &str) -> Lab {
    let survivor = if victim == "a" { "b" } else { "a" };
    let (mut lab, g) = lab_with_guest();
    let mut c = lab.connect(&g).unwrap();
    let boot = c.info().unwrap().boot_id;
    let first = c.last().unwrap() + 1;
    protect_g(&lab).await;
    wait_state(&lab, "b", "g", "secondary", Duration::from_secs(30)).await;

    throttle(&lab, "a", MIGRATION_PORT, "4mbit");
    let w = BusyWriter::start(c, first);
    let t = Instant::now();
    while w.waiting() < Duration::from_millis(300) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no checkpoint stalled the client within 60 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!(
        "client stalled {:?}: the primary is in a checkpoint",
        w.waiting()
    );
    lab.kill_host(victim).unwrap();
    let t_kill = Instant::now();
    let answered = w.wait_reply_sent_after(t_kill, Duration::from_secs(40));
    let (mut c, acked, err) = w.stop();
    let st = client(&lab, survivor).await.status("g").await.unwrap();
    let Some(answered) = answered else {
        panic!(
            "no reply within 40 s of the kill ({err:?}); {survivor}: {st:?}\n{}",
            ftvirt_lab::ftd::log_tail(&lab, survivor, 15)
        );
    };
    let ms = answered.duration_since(t_kill).as_millis();
    eprintln!(
        "first reply {ms} ms after the kill; {} writes acknowledged",
        acked + 1 - first
    );
    assert_eq!(c.info().unwrap().boot_id, boot, "the guest rebooted");
    assert!(c.last().unwrap() >= acked, "acknowledged writes lost");
    lab
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
