//! Partitions (issue 7, scenario 2): the replication link between the pair is cut
//! while both hosts live. Each lab host runs corosync and a quorum device, the
//! witness host w runs corosync-qnetd, and each host's ftd follows its corosync
//! (`arbiter: {kind: corosync}`). A protected 2-vCPU guest, ONE client connection
//! writing numbered durable records throughout, and a watcher sampling both copies
//! from outside. Each test proves: exactly one side goes on serving, the other
//! stops first; the client never sees two servers (no sample with both copies
//! running out of COLO; every reply is the expected one, in order, from a guest that
//! never rebooted and counted every request of the connection); no acknowledged
//! write is lost; when the link heals, the loser comes back as the secondary and
//! the pair is protected again.
//!
//! (a) the primary's replication port is cut (its LAN port stays up, so its guest
//!     could still answer): the primary cuts its guest off the network, then is
//!     fenced; the secondary takes over only once the primary has certainly stopped.
//! (b) the secondary's replication port is cut: the primary runs on, the secondary
//!     never takes over.
//! (c) only the a<->b path is cut, both reach w: the witness's tie-breaker keeps a
//!     (the primary); b is fenced.

mod common;
#[path = "common/split.rs"]
mod split;

use common::*;
use ftvirt_lab::cluster::ClusterTiming;
use ftvirt_lab::ftdlog::ms_between;
use ftvirt_lab::writer::{verify_writes, Writer};
use ftvirt_lab::{GuestSpec, Lab, LabConfig};
use split::{log_time, Cut, Watcher};
use std::time::{Duration, Instant, SystemTime};

const LONG: Duration = Duration::from_secs(120);

/// A lab with the arbiter's cluster, the guest protected on a (secondary on b),
/// the client writing and two checkpoints taken with it connected; `None` when
/// lab tests are skipped.
async fn protected_pair() -> Option<(Lab, Writer, String)> {
    let mut lab = Lab::for_test(LabConfig::hosts(&["a", "b"]).with_witness())?;
    let took = lab.start_cluster(&["a", "b"], ClusterTiming::LAB).unwrap();
    eprintln!("corosync cluster with witness quorate in {took:?}");
    let g = lab
        .boot_guest("a", &GuestSpec::standard("g", 0))
        .expect("boot");
    for (me, peer) in [("a", "b"), ("b", "a")] {
        let yaml = format!(
            "{}arbiter:\n  kind: corosync\n  fence-margin: 500\n",
            ftd_yaml(lab.host(me).unwrap(), lab.host(peer).unwrap(), 2000)
        );
        start_ftd_with(&mut lab, me, &yaml);
    }
    let mut c = lab.connect(&g).unwrap();
    c.set_timeout(Duration::from_secs(90));
    let info = c.info().unwrap();
    protect_g(&lab).await;
    let w = Writer::start(c, 1, info.last).unwrap();
    // Two checkpoints with the connection open and writing.
    let cp0 = client(&lab, "a")
        .await
        .status("g")
        .await
        .unwrap()
        .checkpoints;
    wait_checkpoints(&lab, "a", "g", cp0 + 2, Duration::from_secs(30)).await;
    w.wait_acked(5, Duration::from_secs(30)).unwrap();
    Some((lab, w, info.boot_id))
}

/// Split the protected pair with `cut`: `survivor` must keep the domain and
/// `loser` be fenced; `takeover` says whether the survivor is the secondary. Then
/// heal and check the pair is protected again with the loser as secondary.
async fn split_and_heal(cut: Cut, survivor: &str, loser: &str, takeover: bool) {
    let Some((lab, w, boot)) = protected_pair().await else {
        return;
    };
    let uris = [lab.host("a").unwrap().uri(), lab.host("b").unwrap().uri()];
    let watcher = Watcher::start(uris, "g");
    let acked_before = w.stats().acked;

    let (t_cut, wall_cut) = (Instant::now(), SystemTime::now());
    cut.apply(&lab, true);
    eprintln!("{cut:?}: cut at {wall_cut:?}");
    let s = wait_state(&lab, survivor, "g", "degraded", LONG).await;
    let t_survivor = t_cut.elapsed();
    assert!(s.last_failover.contains("kept quorum"), "{s:?}");
    // The client goes on, on the same connection, served by the survivor.
    w.wait_acked(5, Duration::from_secs(60)).unwrap();
    let l = wait_state(&lab, loser, "g", "fenced", LONG).await;
    let t_fenced = t_cut.elapsed();
    assert!(l.last_failover.starts_with("fenced"), "{l:?}");
    let (first, gap) = {
        let s = w.stats();
        let first = s.first_reply_sent_after(t_cut).unwrap().done - t_cut;
        (first, s.longest_gap(t_cut, Instant::now()))
    };
    eprintln!(
        "survivor {survivor} degraded after {t_survivor:?}, loser {loser} fenced after \
         {t_fenced:?}; the client's first reply to a request sent after the cut came \
         {first:?} after it, longest gap {gap:?}"
    );

    // The order, from the hosts' own logs (one clock): the loser's guest was cut off
    // (or it was a secondary, which never serves) before the survivor acted.
    let (sl, ll) = (
        lab.host(survivor).unwrap().ftd_log(),
        lab.host(loser).unwrap().ftd_log(),
    );
    let verdict = |p, v: &str| log_time(p, &["arbiter: verdict", &format!("verdict={v}")]);
    let proceed = verdict(&sl, "Proceed").expect("the survivor's Proceed in its log");
    let stop = verdict(&ll, "Stop").expect("the loser's Stop in its log");
    eprintln!(
        "arbiter: loser's Stop {} ms, survivor's Proceed {} ms after the cut",
        ms_between(wall_cut, stop),
        ms_between(wall_cut, proceed)
    );
    if takeover {
        let frozen =
            log_time(&ll, &["step done", "step=Freeze"]).expect("the loser cut its guest off");
        let took = log_time(&sl, &["step started", "step=TakeOver"]).expect("takeover");
        let done = log_time(&sl, &["step done", "step=TakeOver"]).expect("takeover done");
        eprintln!(
            "loser's guest cut off {} ms, survivor's takeover started {} ms, done {} ms \
             after the cut",
            ms_between(wall_cut, frozen),
            ms_between(wall_cut, took),
            ms_between(wall_cut, done)
        );
        assert!(
            frozen < took,
            "the survivor took over before the loser had cut its guest off"
        );
    } else {
        assert!(
            log_time(&ll, &["step started", "step=TakeOver"]).is_none(),
            "the cut-off secondary took over"
        );
    }

    // Heal: the loser rejoins as the secondary.
    let t_heal = Instant::now();
    cut.apply(&lab, false);
    wait_state(&lab, survivor, "g", "protected", LONG).await;
    wait_state(&lab, loser, "g", "secondary", LONG).await;
    eprintln!("protected again {:?} after the heal", t_heal.elapsed());
    if log_time(&ll, &["COLO_EXIT of a copy in another role ignored"]).is_some() {
        eprintln!("the loser's fenced QEMU reported COLO's end after the heal (ignored)");
    }
    assert_secondary_console_clean(&lab, loser, "g");
    w.wait_acked(10, Duration::from_secs(60)).unwrap();
    watcher.stop_and_check();
    // Same boot, every acknowledged write on the disk and nothing more, and the
    // guest counted every request of this connection: one connection all along.
    let v = verify_writes(&w, &boot, "the split and the heal", &[acked_before]).unwrap();
    eprintln!("after the heal: {v}");
    assert_eq!(v.last, v.acked, "the disk holds a write never acknowledged");
    assert!(v.acked > acked_before + 15, "{v:?}");
    w.stop();
    lab.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn primary_cut_off_is_fenced_and_the_secondary_takes_over() {
    split_and_heal(Cut::Port("a"), "b", "a", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn secondary_cut_off_never_takes_over() {
    split_and_heal(Cut::Port("b"), "a", "b", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_path_between_the_pair_cut_keeps_one_side() {
    split_and_heal(Cut::Path, "a", "b", false).await;
}
