//! Quick scenarios of the fault matrix, each on a protected 2-vCPU guest with the
//! client writing: libvirtd restarted on either host while protected (protection
//! and checkpoint counting go on); two callers enabling the same domain at once
//! (exactly one starts protection, the other is told why); a domain with a device
//! COLO cannot replicate is refused before anything changes, the device named.

mod common;

use common::*;
use ftvirt_lab::{GuestSpec, Lab, LabConfig};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

async fn checkpoints(lab: &Lab, host: &str) -> u64 {
    client(lab, host)
        .await
        .status("g")
        .await
        .unwrap()
        .checkpoints
}

/// Wait until `host` has counted more than `than` checkpoints.
async fn checkpoint_after(lab: &Lab, host: &str, than: u64) -> u64 {
    let t0 = std::time::Instant::now();
    loop {
        let n = checkpoints(lab, host).await;
        if n > than {
            return n;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{host}: no checkpoint after {than} in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn libvirtd_restarts_on_either_host_do_not_end_protection() {
    let mut lab = Lab::start(LabConfig::hosts(&["a", "b"])).expect("lab");
    let g = lab
        .boot_guest("a", &GuestSpec::standard("g", 0))
        .expect("boot");
    start_ftd(&mut lab, "a", "b");
    start_ftd(&mut lab, "b", "a");
    let mut c = lab.connect(&g).unwrap();
    c.set_timeout(Duration::from_secs(30));
    let boot = c.info().unwrap().boot_id;
    client(&lab, "a")
        .await
        .enable("g", ftd_proxy::no_options())
        .await
        .unwrap();
    wait_state(&lab, "a", "g", "protected", LONG).await;
    wait_state(&lab, "b", "g", "secondary", LONG).await;
    let mut n = 0;
    let mut cp = checkpoint_after(&lab, "a", 0).await;

    for host in ["a", "b"] {
        let took = lab.host(host).unwrap().restart_libvirtd().unwrap();
        eprintln!("libvirtd of {host} restarted in {took:?}");
        for _ in 0..5 {
            n += 1;
            c.put(n, "after-libvirtd-restart").unwrap();
        }
        // Checkpoints keep coming, and ftd keeps counting them (its event
        // connection to libvirtd came back by itself).
        cp = checkpoint_after(&lab, "a", cp).await;
        let a = client(&lab, "a").await.status("g").await.unwrap();
        let b = client(&lab, "b").await.status("g").await.unwrap();
        assert_eq!(
            (a.state.as_str(), b.state.as_str()),
            ("protected", "secondary"),
            "after restarting libvirtd on {host}: {a:?} {b:?}"
        );
        assert_eq!(
            lab.host(host)
                .unwrap()
                .virsh(&["domstate", "g"])
                .unwrap()
                .trim(),
            "running",
            "libvirtd of {host} sees the domain again"
        );
    }
    assert_eq!(c.info().unwrap().boot_id, boot);
    assert_eq!(c.last().unwrap(), n);
    assert_secondary_console_clean(&lab, "b", "g");
    lab.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_enables_start_protection_once_and_odd_devices_are_refused() {
    let mut lab = Lab::start(LabConfig::hosts(&["a", "b"])).expect("lab");
    lab.boot_guest("a", &GuestSpec::standard("g", 0))
        .expect("boot");
    start_ftd(&mut lab, "a", "b");
    start_ftd(&mut lab, "b", "a");

    // A second disk: COLO here replicates one. Refused at once, device named,
    // nothing changed.
    let h = lab.host("a").unwrap();
    let extra = h.images().join("extra.qcow2");
    std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&extra)
        .arg("16M")
        .status()
        .unwrap();
    h.virsh(&[
        "attach-disk",
        "g",
        extra.to_str().unwrap(),
        "vdb",
        "--driver",
        "qemu",
        "--subdriver",
        "qcow2",
        "--targetbus",
        "virtio",
        "--live",
    ])
    .unwrap();
    let e = client(&lab, "a")
        .await
        .enable("g", ftd_proxy::no_options())
        .await
        .unwrap_err();
    let msg = e.to_string();
    eprintln!("two disks: {msg}");
    assert!(
        msg.contains("InvalidArgument") && msg.contains("disk vdb") && msg.contains("detach"),
        "{msg}"
    );
    let s = client(&lab, "a").await.status("g").await.unwrap();
    assert_eq!((s.state.as_str(), s.wanted), ("unprotected", false));
    assert!(lab.host("b").unwrap().domains(true).unwrap().is_empty());
    assert!(
        h.virsh(&["metadata", "g", ftd::annotation::NAMESPACE])
            .map(|m| m.trim().is_empty())
            .unwrap_or(true),
        "not marked"
    );
    h.virsh(&["detach-disk", "g", "vdb", "--live"]).unwrap();

    // Two callers at once: one starts protection, the other is refused, clearly.
    let (c1, c2) = (client(&lab, "a").await, client(&lab, "a").await);
    let (r1, r2) = tokio::join!(
        c1.enable("g", ftd_proxy::no_options()),
        c2.enable("g", ftd_proxy::no_options())
    );
    eprintln!("concurrent Enable: {r1:?} / {r2:?}");
    let (won, lost) = match (r1, r2) {
        (Ok(s), Err(e)) | (Err(e), Ok(s)) => (s, e.to_string()),
        other => panic!("exactly one Enable must win: {other:?}"),
    };
    assert_eq!(won, "preparing");
    assert!(
        lost.contains("Refused") && lost.contains("already being set up"),
        "{lost}"
    );
    wait_state(&lab, "a", "g", "protected", LONG).await;
    // Enabling a protected domain says so.
    let again = client(&lab, "a")
        .await
        .enable("g", ftd_proxy::no_options())
        .await
        .unwrap_err()
        .to_string();
    assert!(again.contains("already protected"), "{again}");
    lab.shutdown().unwrap();
}
