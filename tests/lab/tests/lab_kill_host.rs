//! "Kill a host": a power cut takes every process of the host (libvirtd, virtlogd,
//! the guest's QEMU) and its links at once, leaves the other hosts alone, and a
//! restart brings the host back with its persistent libvirt configuration.

use ftvirt_lab::{netns, GuestSpec, Lab, LabConfig};
use std::time::Duration;

#[test]
fn kill_host_is_a_power_cut_and_restart_brings_it_back() {
    let Some(mut lab) = Lab::for_test(LabConfig::hosts(&["a", "b"])) else {
        return;
    };
    let g = lab
        .boot_guest("a", &GuestSpec::standard("victim", 0))
        .expect("boot");
    let mut c = lab.connect(&g).unwrap();
    assert_eq!(c.seq(1).unwrap(), 1);

    let a_ns = lab.host("a").unwrap().ns.clone();
    let b_before = lab.host("b").unwrap().ns.pids().unwrap();
    let comms = |pids: &[i32]| -> Vec<String> {
        pids.iter()
            .map(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            })
            .collect()
    };
    let names = comms(&a_ns.pids().unwrap());
    for expected in ["libvirtd", "virtlogd"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not running on a: {names:?}"
        );
    }
    assert!(
        names.iter().any(|n| n.starts_with("qemu")),
        "no QEMU on a: {names:?}"
    );

    let killed = lab.kill_host("a").unwrap();
    assert!(killed >= 4, "killed only {killed} processes");
    assert!(
        a_ns.pids().unwrap().is_empty(),
        "processes survived the power cut"
    );
    assert!(!lab.host("a").unwrap().is_up());
    // The guest is gone with its host: the client's request gets no answer.
    c.set_timeout(Duration::from_secs(2));
    assert!(c.seq(2).is_err(), "a dead host's guest answered");
    // Host b did not notice anything.
    assert_eq!(lab.host("b").unwrap().ns.pids().unwrap(), b_before);
    assert!(lab.host("b").unwrap().virsh(&["version"]).is_ok());

    // Power on again: libvirtd answers, the domain is still defined, shut off.
    lab.restart_host("a").unwrap();
    let a = lab.host("a").unwrap();
    assert_eq!(a.domains(true).unwrap(), ["victim"]);
    assert!(a
        .virsh(&["domstate", "victim"])
        .unwrap()
        .contains("shut off"));
    // And it boots again on the same disk.
    a.virsh(&["start", "victim"]).unwrap();
    let inodes = lab.netns_inodes().to_vec();
    lab.shutdown().unwrap();
    assert!(netns::pids_in(&inodes).is_empty());
}
