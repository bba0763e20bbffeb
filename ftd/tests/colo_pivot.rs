//! The first COLO step on real QEMU under libvirt: the running guest's disk moves
//! under a fresh quorum node with no restart and no lost write, and the clean-up
//! plan runs harmlessly on a domain that never entered COLO.

use ftd::colo::plan::{self, Ports, Wiring};
use ftd::libvirt::Libvirt;
use ftd::runner;
use ftvirt_lab::{GuestSpec, Lab, LabConfig};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn pivot_to_quorum_keeps_the_guest_and_its_writes() {
    let Some(lab) = Lab::for_test(LabConfig::hosts(&["a"])) else {
        return;
    };
    let g = lab
        .boot_guest("a", &GuestSpec::standard("piv", 0))
        .expect("boot");
    let host = lab.host("a").unwrap();
    let lv = Libvirt::new(&host.uri(), Duration::from_secs(10));
    let mut c = lab.connect(&g).unwrap();
    let boot = c.info().unwrap().boot_id;
    for n in 1..=5 {
        c.put(n, &format!("before-{n}")).unwrap();
    }

    let base = host.images().join("piv.ftvirt1.qcow2");
    host.qemu_image(&base, 1 << 30).await.unwrap();
    let w = Wiring {
        device_node: "libvirt-1-format".into(),
        gen: 1,
        base_image: base,
        netdev: "hostnet0".into(),
        primary_addr: host.rep_ip.to_string(),
        secondary_addr: "10.200.0.12".into(),
        ports: Ports::slot(0),
        checkpoint_ms: 2000,
        compare_timeout_ms: 3000,
        sync_timeout: Duration::from_secs(60),
        // The pivot talks to no peer.
        tls: None,
    };
    let rep = runner::run(&lv, "piv", &plan::pivot(&w))
        .await
        .expect("pivot");
    eprintln!("pivot: {} commands in {:?}", rep.commands, rep.elapsed);

    // The device now writes through the quorum.
    let blocks = lv
        .qmp(
            "piv",
            &json!({"execute": "query-block"}),
            runner::QMP_DEADLINE,
        )
        .await
        .unwrap();
    let dev = blocks
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["qdev"].as_str().unwrap_or("").contains("virtio-disk0"))
        .unwrap();
    assert_eq!(dev["inserted"]["node-name"], "ftvirt-quorum1", "{dev:#}");
    assert_eq!(dev["inserted"]["drv"], "quorum");

    // Same guest, old records still there, new ones durable.
    assert_eq!(c.info().unwrap().boot_id, boot);
    assert_eq!(c.last().unwrap(), 5);
    for n in 6..=10 {
        c.put(n, &format!("after-{n}")).unwrap();
    }
    assert_eq!(c.last().unwrap(), 10);
    assert_eq!(c.request("GET 3").unwrap(), "REC 3 before-3");

    // leave_colo on a domain that never entered COLO: everything tolerated, guest runs.
    let rep = runner::run(&lv, "piv", &plan::leave_colo(&w))
        .await
        .expect("leave_colo tolerates absence");
    assert_eq!(
        rep.tolerated.len(),
        rep.commands - 1,
        "all but `cont` find nothing to remove: {:?}",
        rep.tolerated
    );
    assert_eq!(c.seq(1).unwrap(), 16, "same connection, 16th request");
    lab.shutdown().unwrap();
}
