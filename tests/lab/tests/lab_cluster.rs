//! The partition arbiter's cluster on the lab: corosync on a and b, the quorum
//! device's witness on w (a host without libvirtd). Cutting a's replication port
//! leaves a without quorum and b with it; cutting only the a<->b path (both still
//! reach w) gives quorum to exactly one of them; healing brings both back. Every
//! cluster process dies with the lab.

use ftvirt_lab::cluster::ClusterTiming;
use ftvirt_lab::{netns, wait_until, Lab, LabConfig, Look};
use std::time::{Duration, Instant};

fn quorate(lab: &Lab, host: &str) -> Option<bool> {
    let s = lab.host(host).unwrap().quorum_status().ok()?;
    Some(s.contains("Quorate:          Yes"))
}

/// Wait until (quorate a, quorate b) is `want`; the time it took.
fn wait_quorum(lab: &Lab, want: (bool, bool)) -> Duration {
    let t0 = Instant::now();
    let r = wait_until(
        &format!("quorum (a, b) to become {want:?}"),
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let got = (quorate(lab, "a"), quorate(lab, "b"));
            Look::holds(got == (Some(want.0), Some(want.1)), || format!("{got:?}"))
        },
    );
    if let Err(e) = r {
        panic!(
            "{e}\na:\n{}\nb:\n{}",
            lab.host("a").unwrap().quorum_status().unwrap_or_default(),
            lab.host("b").unwrap().quorum_status().unwrap_or_default()
        );
    }
    t0.elapsed()
}

#[test]
fn the_witness_gives_quorum_to_one_side_of_a_cut() {
    let Some(mut lab) = Lab::for_test(LabConfig::hosts(&["a", "b"]).with_witness()) else {
        return;
    };
    let w = lab.witness().expect("witness");
    assert!(
        lab.host("a").unwrap().virsh(&["version"]).is_ok()
            && !w.dir.join("run/libvirt-sock").exists(),
        "the witness runs no libvirtd"
    );
    let took = lab.start_cluster(&["a", "b"], ClusterTiming::LAB).unwrap();
    eprintln!("cluster quorate in {took:?}");

    // a's replication port down: a alone, without quorum; b keeps it.
    lab.set_rep_link("a", false).unwrap();
    eprintln!(
        "a cut off: settled in {:?}",
        wait_quorum(&lab, (false, true))
    );
    lab.set_rep_link("a", true).unwrap();
    eprintln!("healed in {:?}", wait_quorum(&lab, (true, true)));

    // Only a<->b cut: both reach the witness, which gives its vote to one side
    // (ffsplit's tie-breaker: the lowest node id, a).
    lab.cut_path("a", "b").unwrap();
    eprintln!(
        "a<->b cut: settled in {:?}",
        wait_quorum(&lab, (true, false))
    );
    lab.heal_path("a", "b").unwrap();
    eprintln!("healed in {:?}", wait_quorum(&lab, (true, true)));
    assert!(lab.heal_path("a", "b").is_err(), "nothing left to heal");

    let inodes = lab.netns_inodes().to_vec();
    let mine: Vec<i32> = netns::pids_in(&inodes);
    assert!(!mine.is_empty());
    lab.shutdown().unwrap();
    assert!(
        netns::pids_in(&inodes).is_empty(),
        "processes of the lab survived its tear-down"
    );
}
