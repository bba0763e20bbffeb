//! Bad requests on the lab: two callers enabling the same domain at once
//! (exactly one starts protection, the other is told why); a domain with a device
//! COLO cannot replicate is refused before anything changes, the device named.
//! (libvirtd restarted on either host while protected is a row of the fault
//! matrix, `tests/matrix`: `libvirtd-restart`.)

mod common;

use common::*;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_enables_start_protection_once_and_odd_devices_are_refused() {
    let Some((lab, _g)) = lab_with_guest() else {
        return;
    };

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
