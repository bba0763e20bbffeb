//! The etcd witness with each host's own ftd (issue 13): `arbiter: {kind: etcd}`,
//! one etcd member on the witness host w, reached over the replication network
//! with each host's own certificate. A protected 2-vCPU guest, ONE client
//! connection writing numbered durable records throughout, and a watcher
//! sampling both copies from outside. Every test proves: exactly one copy goes
//! on serving, and only after it won the domain's record on the witness; the
//! client never sees two servers; no acknowledged write is lost; the record
//! names the host that serves.
//!
//! - the primary's host dies: the secondary claims the record and takes over
//!   (the failover time is printed: the target is under a second);
//! - the primary's replication port is cut (it reaches neither the peer nor the
//!   witness): its guest is cut off the network while it waits, the secondary
//!   wins the record and takes over; healed, the old primary learns it lost, is
//!   fenced and comes back as the secondary;
//! - the secondary's port is cut: the primary wins and runs on; the secondary
//!   never takes over, and comes back as the secondary;
//! - only the a<->b path is cut, both reach the witness: the primary claims
//!   first and keeps the domain, the secondary loses its claim and is fenced;
//! - the witness is down: protection goes on; then the primary's host dies:
//!   nobody goes live (the
//!   secondary says why) until the witness answers again, then the secondary
//!   takes over with every acknowledged write;
//! - a witness of three members loses its leader when the primary's host dies:
//!   the secondary's claim goes through the two members left;
//! - both hosts' cores busy for minutes (`#[ignore]`d, the matrix's cpu-load):
//!   needless switch-overs counted, never two serving copies.

mod common;
#[path = "common/split.rs"]
mod split;

use common::*;
use ftd::witness::Record;
use ftvirt_lab::ftd::lab_yaml;
use ftvirt_lab::ftdlog::ms_between;
use ftvirt_lab::writer::{verify_writes, Writer};
use ftvirt_lab::{GuestSpec, Lab, LabConfig};
use split::{log_time, Cut, Watcher};
use std::time::{Duration, Instant, SystemTime};

const LONG: Duration = Duration::from_secs(120);
const KEY: &str = "/ftvirt/v1/domains/g";

/// The witness's record of `g`, read with etcdctl from the witness host.
fn record(lab: &Lab) -> Record {
    let v = lab
        .etcd_get(KEY)
        .unwrap()
        .unwrap_or_else(|| panic!("no record at {KEY}"));
    Record::parse("g", v.as_bytes()).unwrap_or_else(|e| panic!("{v}: {e}"))
}

/// A lab with the etcd witness, the guest protected on a (secondary on b), the
/// client writing and two checkpoints taken with it connected; `None` when lab
/// tests are skipped.
async fn witnessed_pair() -> Option<(Lab, Writer, String)> {
    witnessed_pair_of(1).await
}

/// [`witnessed_pair`] with a witness of `members` etcd members.
async fn witnessed_pair_of(members: usize) -> Option<(Lab, Writer, String)> {
    let mut lab = Lab::for_test(LabConfig::hosts(&["a", "b"]).with_etcd(members))?;
    let g = lab
        .boot_guest("a", &GuestSpec::standard("g", 0))
        .expect("boot");
    for (me, peer) in [("a", "b"), ("b", "a")] {
        let yaml = lab_yaml(&lab, lab.host(me).unwrap(), lab.host(peer).unwrap(), 2000);
        assert!(yaml.contains("kind: etcd"), "{yaml}");
        start_ftd_with(&mut lab, me, &yaml);
    }
    let mut c = lab.connect(&g).unwrap();
    c.set_timeout(Duration::from_secs(90));
    let info = c.info().unwrap();
    protect_g(&lab).await;
    // Protection paired the record: a holds the domain, b is its partner.
    let r = record(&lab);
    assert_eq!(
        (r.holder.as_str(), r.partner.as_deref()),
        ("a", Some("b")),
        "{r:?}"
    );
    let w = Writer::start(c, 1, info.last).unwrap();
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

/// The watcher saw no instant with both copies serving; the disk holds every
/// acknowledged write and nothing more, from the same boot, on one connection.
fn check_one_server_and_writes(w: Writer, watcher: Watcher, boot: &str, acked_before: u64) {
    watcher.stop_and_check();
    let v = verify_writes(&w, boot, "the witness scenario", &[acked_before]).unwrap();
    eprintln!("writes: {v}");
    assert_eq!(v.last, v.acked, "the disk holds a write never acknowledged");
    assert!(v.acked >= acked_before + 5, "{v:?}");
    w.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn primary_host_lost_the_secondary_claims_the_record_and_takes_over() {
    let Some((mut lab, w, boot)) = witnessed_pair().await else {
        return;
    };
    let uris = [lab.host("a").unwrap().uri(), lab.host("b").unwrap().uri()];
    let watcher = Watcher::start(uris, "g");
    let acked_before = w.stats().acked;
    let before = record(&lab);

    let (t_kill, wall_kill) = (Instant::now(), SystemTime::now());
    lab.kill_host("a").unwrap();
    let s = wait_state(&lab, "b", "g", "degraded", LONG).await;
    assert!(
        s.last_failover.contains("won the witness's record"),
        "{s:?}"
    );
    w.wait_acked(5, Duration::from_secs(60)).unwrap();
    let first = w.stats().first_reply_sent_after(t_kill).unwrap().done - t_kill;

    let bl = lab.host("b").unwrap().ftd_log();
    let won = log_time(&bl, &["claim", "won"]);
    let took = log_time(&bl, &["step done", "step=TakeOver"]).expect("takeover done");
    eprintln!(
        "failover with the witness: claim won {} ms, takeover done {} ms after the kill; \
         the client's first reply to a request sent after the kill {first:?}",
        won.map(|t| ms_between(wall_kill, t).to_string())
            .unwrap_or_else(|| "?".into()),
        ms_between(wall_kill, took)
    );
    let after = record(&lab);
    assert_eq!(after.holder, "b", "{after:?}");
    assert_eq!(after.epoch, before.epoch + 1, "{before:?} -> {after:?}");
    assert!(after.running, "{after:?}");
    check_one_server_and_writes(w, watcher, &boot, acked_before);
    lab.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn three_member_witness_loses_its_leader_with_the_primary_host() {
    // A witness of three etcd members: its leader and the primary's host die at
    // the same instant. The two members left elect a leader and b's claim goes
    // through them.
    let Some((mut lab, w, boot)) = witnessed_pair_of(3).await else {
        return;
    };
    let uris = [lab.host("a").unwrap().uri(), lab.host("b").unwrap().uri()];
    let watcher = Watcher::start(uris, "g");
    let acked_before = w.stats().acked;
    let before = record(&lab);
    let leader = lab.etcd_leader().unwrap();

    let (t_kill, wall_kill) = (Instant::now(), SystemTime::now());
    lab.etcd_stop_member(leader).unwrap();
    lab.kill_host("a").unwrap();
    let s = wait_state(&lab, "b", "g", "degraded", LONG).await;
    assert!(
        s.last_failover.contains("won the witness's record"),
        "{s:?}"
    );
    w.wait_acked(5, Duration::from_secs(60)).unwrap();
    let first = w.stats().first_reply_sent_after(t_kill).unwrap().done - t_kill;
    let took = log_time(
        &lab.host("b").unwrap().ftd_log(),
        &["step done", "step=TakeOver"],
    )
    .expect("takeover done");
    eprintln!(
        "failover with the witness of 3, its leader (member {leader}) down too: takeover \
         done {} ms after the kill; the client's first reply to a request sent after the \
         kill {first:?}",
        ms_between(wall_kill, took)
    );
    let after = record(&lab);
    assert_eq!(
        (after.holder.as_str(), after.epoch),
        ("b", before.epoch + 1),
        "{after:?}"
    );
    check_one_server_and_writes(w, watcher, &boot, acked_before);
    lab.shutdown().unwrap();
}

/// Split the protected pair with `cut`: `survivor` must win the record and keep
/// the domain; `loser` must never serve, wait (cut off from the witness) or be
/// fenced at once (reaching it), and be fenced by the heal at the latest; then
/// it comes back as the secondary.
async fn split_and_heal(cut: Cut, survivor: &str, loser: &str) {
    let Some((lab, w, boot)) = witnessed_pair().await else {
        return;
    };
    let uris = [lab.host("a").unwrap().uri(), lab.host("b").unwrap().uri()];
    let watcher = Watcher::start(uris, "g");
    let acked_before = w.stats().acked;
    let before = record(&lab);

    let (t_cut, wall_cut) = (Instant::now(), SystemTime::now());
    cut.apply(&lab, true);
    let s = wait_state(&lab, survivor, "g", "degraded", LONG).await;
    let t_survivor = t_cut.elapsed();
    assert!(
        s.last_failover.contains("won the witness's record"),
        "{s:?}"
    );
    w.wait_acked(5, Duration::from_secs(60)).unwrap();
    let r = record(&lab);
    assert_eq!(r.holder, survivor, "{r:?}");
    assert_eq!(r.epoch, before.epoch + 1, "{before:?} -> {r:?}");

    // The loser: fenced if it reaches the witness, else waiting for it with its
    // copy out of service, saying why (once its claim went unanswered).
    let l = match cut {
        Cut::Port(_) => {
            let unanswered = |s: &ftd_proxy::DomainStatus| {
                s.last_error.contains("witness (etcd) does not answer")
            };
            let l = ftvirt_lab::ftd::wait_status(&lab, loser, "g", "waits", LONG, unanswered).await;
            assert!(l.state.ends_with("arbitrating"), "{l:?}");
            l
        }
        Cut::Path => {
            let l = wait_state(&lab, loser, "g", "fenced", LONG).await;
            assert!(l.last_failover.starts_with("fenced"), "{l:?}");
            l
        }
    };
    eprintln!(
        "{cut:?}: survivor {survivor} degraded {t_survivor:?} after the cut; loser {loser} \
         {} ({}) {:?} after it",
        l.state,
        l.last_error,
        t_cut.elapsed()
    );
    let ll = lab.host(loser).unwrap().ftd_log();
    assert!(
        log_time(&ll, &["step started", "step=TakeOver"]).is_none(),
        "the loser took over"
    );
    if survivor == "b" {
        // The old primary cut its guest off before the survivor went live.
        let frozen = log_time(&ll, &["step done", "step=Freeze"]).expect("guest cut off");
        let took = log_time(
            &lab.host(survivor).unwrap().ftd_log(),
            &["step started", "step=TakeOver"],
        )
        .expect("takeover");
        eprintln!(
            "loser's guest cut off {} ms, survivor's takeover {} ms after the cut",
            ms_between(wall_cut, frozen),
            ms_between(wall_cut, took)
        );
        assert!(
            frozen < took,
            "the survivor went live before the loser was cut off"
        );
    }

    // Heal: the loser learns it lost, and rejoins as the secondary.
    let t_heal = Instant::now();
    cut.apply(&lab, false);
    wait_state(&lab, survivor, "g", "protected", LONG).await;
    wait_state(&lab, loser, "g", "secondary", LONG).await;
    eprintln!("protected again {:?} after the heal", t_heal.elapsed());
    let r = record(&lab);
    assert_eq!(
        (r.holder.as_str(), r.partner.as_deref()),
        (survivor, Some(loser)),
        "{r:?}"
    );
    assert_secondary_console_clean(&lab, loser, "g");
    w.wait_acked(10, Duration::from_secs(60)).unwrap();
    check_one_server_and_writes(w, watcher, &boot, acked_before);
    lab.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn primary_cut_off_waits_cut_off_and_the_secondary_wins_the_record() {
    split_and_heal(Cut::Port("a"), "b", "a").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn secondary_cut_off_never_takes_over() {
    split_and_heal(Cut::Port("b"), "a", "b").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_path_between_the_pair_cut_the_primary_keeps_the_record() {
    split_and_heal(Cut::Path, "a", "b").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn witness_down_when_the_primary_dies_nobody_serves_until_it_answers() {
    let Some((mut lab, w, boot)) = witnessed_pair().await else {
        return;
    };
    let uris = [lab.host("a").unwrap().uri(), lab.host("b").unwrap().uri()];
    let watcher = Watcher::start(uris, "g");
    let acked_before = w.stats().acked;

    // Witness down with no fault: protection goes on (checkpoints, writes).
    lab.etcd_stop_member(0).unwrap();
    let cp = ftvirt_lab::ftd::status(&lab, "a", "g")
        .await
        .unwrap()
        .checkpoints;
    wait_checkpoints(&lab, "a", "g", cp + 2, Duration::from_secs(30)).await;
    w.wait_acked(5, Duration::from_secs(30)).unwrap();
    for h in ["a", "b"] {
        let s = ftvirt_lab::ftd::status(&lab, h, "g").await.unwrap();
        let want = if h == "a" { "protected" } else { "secondary" };
        assert_eq!(s.state, want, "witness down, no fault: {s:?}");
    }

    lab.kill_host("a").unwrap();
    let s = wait_state(&lab, "b", "g", "secondary-arbitrating", LONG).await;
    // It stays so, saying why, while the witness is down.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s2 = ftvirt_lab::ftd::status(&lab, "b", "g").await.unwrap();
    assert_eq!(s2.state, "secondary-arbitrating", "{s:?} then {s2:?}");
    assert!(
        s2.last_error.contains("witness (etcd) does not answer"),
        "{s2:?}"
    );
    assert!(
        log_time(
            &lab.host("b").unwrap().ftd_log(),
            &["step started", "step=TakeOver"]
        )
        .is_none(),
        "b took over without the witness"
    );

    let t = Instant::now();
    let up = lab.etcd_start_member(0).unwrap();
    let s = wait_state(&lab, "b", "g", "degraded", LONG).await;
    eprintln!(
        "witness back (etcd ready in {up:?}): b took over {:?} after it was started",
        t.elapsed()
    );
    assert!(
        s.last_failover.contains("won the witness's record"),
        "{s:?}"
    );
    w.wait_acked(5, Duration::from_secs(60)).unwrap();
    assert_eq!(record(&lab).holder, "b");
    check_one_server_and_writes(w, watcher, &boot, acked_before);
    lab.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_full_cycle_with_the_witness_reprotects_both_ways() {
    // Takeover, re-protection onto the returned host, a planned failover back,
    // and re-protection onto the first survivor. Its disk left the scratch
    // directory at the takeover, and the protection's new base image went
    // beside it: its secondary is later built in the scratch directory again,
    // over nothing its definition uses.
    let Some((mut lab, w, boot)) = witnessed_pair().await else {
        return;
    };
    let acked_before = w.stats().acked;
    lab.kill_host("a").unwrap();
    wait_state(&lab, "b", "g", "degraded", LONG).await;
    lab.restart_host("a").unwrap();
    let yaml = lab_yaml(&lab, lab.host("a").unwrap(), lab.host("b").unwrap(), 2000);
    start_ftd_with(&mut lab, "a", &yaml);
    wait_state(&lab, "b", "g", "protected", LONG).await;
    wait_state(&lab, "a", "g", "secondary", LONG).await;
    let r = record(&lab);
    assert_eq!(
        (r.holder.as_str(), r.partner.as_deref()),
        ("b", Some("a")),
        "{r:?}"
    );
    let def = lab
        .host("b")
        .unwrap()
        .virsh(&["dumpxml", "--inactive", "g"])
        .unwrap();
    assert!(def.contains("/overlays/g/disk/g.ftvirt"), "{def}");
    assert!(!def.contains("/secondary/"), "{def}");

    let st = client(&lab, "b").await.failover("g").await.unwrap();
    assert_eq!(st, "switching-over");
    wait_state(&lab, "a", "g", "protected", LONG).await;
    wait_state(&lab, "b", "g", "secondary", LONG).await;
    let r = record(&lab);
    assert_eq!(
        (r.holder.as_str(), r.partner.as_deref()),
        ("a", Some("b")),
        "{r:?}"
    );
    let log = std::fs::read_to_string(lab.host("b").unwrap().ftd_log()).unwrap();
    assert!(
        log.contains("the survivor's disk moved out of the scratch directory")
            && log.contains("removed the survivor's disk the new base image replaces"),
        "{log}"
    );
    assert!(!log.contains("overlays kept"), "{log}");
    w.wait_acked(5, Duration::from_secs(60)).unwrap();
    let v = verify_writes(&w, &boot, "the full cycle", &[acked_before]).unwrap();
    eprintln!("writes: {v}");
    assert_eq!(v.last, v.acked);
    w.stop();
    lab.shutdown().unwrap();
}

/// Both hosts' cores kept busy for minutes (issue 13, item 6): with the witness a
/// false alarm may cost a needless switch-over or a spell unprotected, never two
/// serving copies or a lost write. How many there were is reported (a
/// measurement, not asserted). `FTVIRT_LOAD_SECS` long (default 180): the
/// matrix's `cpu-load` row runs it.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "minutes of full CPU load: run by the fault matrix (cpu-load)"]
async fn full_cpu_load_on_both_hosts_never_serves_two_copies() {
    let Some((lab, w, boot)) = witnessed_pair().await else {
        return;
    };
    let secs: u64 = std::env::var("FTVIRT_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    let uris = [lab.host("a").unwrap().uri(), lab.host("b").unwrap().uri()];
    let watcher = Watcher::start(uris, "g");
    let acked_before = w.stats().acked;
    let before = record(&lab);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // As many busy loops as cores in each host: every core has three times as
    // much to run as it can.
    let mut burners = Vec::new();
    for h in ["a", "b"] {
        let host = lab.host(h).unwrap();
        let log = host.log_dir().join("burn.log");
        for _ in 0..cores {
            burners.push(
                host.spawn_to_log(&["sh", "-c", "while :; do :; done"], &log)
                    .unwrap(),
            );
        }
    }
    eprintln!(
        "cpu load: {} busy loops on {cores} cores for {secs} s",
        burners.len()
    );
    let state = |h: &'static str| {
        let lab = &lab;
        async move {
            match client(lab, h).await.status("g").await {
                Ok(s) => s.state,
                Err(_) => "?".to_string(),
            }
        }
    };
    let paired = |a: &str, b: &str| {
        matches!(
            (a, b),
            ("protected", "secondary") | ("secondary", "protected")
        )
    };
    let (mut spells, mut out, mut holders) = (0u32, None::<Instant>, vec![before.holder.clone()]);
    let mut unprotected = Duration::ZERO;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (sa, sb) = (state("a").await, state("b").await);
        match (paired(&sa, &sb), out) {
            (false, None) => {
                spells += 1;
                out = Some(Instant::now());
                eprintln!(
                    "cpu load: out of protection at {:?}: a {sa}, b {sb}",
                    t0.elapsed()
                );
            }
            (true, Some(since)) => {
                unprotected += since.elapsed();
                out = None;
                eprintln!("cpu load: protected again at {:?}", t0.elapsed());
            }
            _ => {}
        }
        if let Ok(Some(v)) = lab.etcd_get(KEY) {
            if let Ok(r) = Record::parse("g", v.as_bytes()) {
                if holders.last() != Some(&r.holder) {
                    eprintln!(
                        "cpu load: the record moved to {} at {:?}",
                        r.holder,
                        t0.elapsed()
                    );
                    holders.push(r.holder);
                }
            }
        }
    }
    for mut b in burners {
        let _ = b.kill();
        let _ = b.wait();
    }
    // Whatever happened, protection comes back by itself once the load is gone.
    let t_end = Instant::now();
    loop {
        let (sa, sb) = (state("a").await, state("b").await);
        if paired(&sa, &sb) {
            break;
        }
        assert!(
            t_end.elapsed() < LONG,
            "not protected again: a {sa}, b {sb}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Some(since) = out {
        unprotected += since.elapsed();
    }
    let after = record(&lab);
    eprintln!(
        "cpu load result: {secs} s, {} busy loops on {cores} cores: {spells} spells out of \
         protection ({} ms in all), {} needless switch-overs (record holders {}), epoch {} -> {}",
        cores * 2,
        unprotected.as_millis(),
        holders.len() - 1,
        holders.join(" -> "),
        before.epoch,
        after.epoch
    );
    w.wait_acked(5, Duration::from_secs(60)).unwrap();
    check_one_server_and_writes(w, watcher, &boot, acked_before);
    lab.shutdown().unwrap();
}
