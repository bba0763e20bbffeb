//! The libvirt driver against a real libvirtd and QEMU in the lab: states, XML,
//! QMP pass-through (replies and errors), destroy, and reconnection after a
//! libvirtd restart while the domain keeps running; libvirt's hypervisor CPU
//! comparison (the KVM pair check) on TCG, the one hypervisor the lab has.

use ftd::libvirt::{CpuFit, DomState, GuestCpu, Libvirt, LibvirtError};
use ftvirt_lab::{GuestSpec, Lab, LabConfig};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn driver_talks_to_a_real_libvirtd() {
    let Some(lab) = Lab::for_test(LabConfig::hosts(&["a"])) else {
        return;
    };
    let g = lab
        .boot_guest("a", &GuestSpec::standard("drv", 0))
        .expect("boot");
    let host = lab.host("a").unwrap();
    let lv = Libvirt::new(&host.uri(), Duration::from_secs(10));

    assert_eq!(lv.state("drv").await.unwrap(), DomState::Running);
    assert!(lv
        .list()
        .await
        .unwrap()
        .contains(&("drv".to_string(), DomState::Running)));
    let xml = lv.xml("drv", false).await.unwrap();
    assert!(
        xml.contains("<name>drv</name>") && xml.contains("<vcpu placement='static'>2</vcpu>"),
        "{xml}"
    );

    let q = Duration::from_secs(5);
    let st = lv
        .qmp("drv", &json!({"execute": "query-status"}), q)
        .await
        .unwrap();
    assert_eq!(st["status"], "running");
    let e = lv.qmp("drv", &json!({"execute": "x-blockdev-change", "arguments": {"parent": "nope", "child": "children.1"}}), q).await.unwrap_err();
    assert!(
        matches!(e, LibvirtError::Qmp { ref class, .. } if class == "GenericError"),
        "{e}"
    );
    // The comparison ftd makes for a KVM pair, through the same call, with TCG:
    // a model TCG gives is run, one that needs a feature TCG lacks is refused
    // with the feature named.
    let emulator = xml
        .split("<emulator>")
        .nth(1)
        .and_then(|r| r.split("</emulator>").next())
        .expect("the guest's emulator")
        .to_string();
    let cpu = |xml: &str| GuestCpu {
        xml: xml.to_string(),
        arch: "x86_64".into(),
        machine: String::new(),
        virt_type: "qemu".into(),
        emulator: Some(emulator.clone()),
    };
    let runs = lv
        .compare_cpu(
            "drv",
            &cpu("<cpu mode='custom' match='exact'><model>qemu64</model></cpu>"),
        )
        .await
        .unwrap();
    assert_eq!(runs, CpuFit::Runs);
    let no = lv
        .compare_cpu(
            "drv",
            &cpu("<cpu mode='custom' match='exact'><model>qemu64</model>\
                  <feature policy='require' name='avx512f'/></cpu>"),
        )
        .await
        .unwrap();
    assert!(
        matches!(&no, CpuFit::Incompatible(m) if m.contains("avx512f")),
        "{no:?}"
    );

    let missing = lv.state("no-such-domain").await.unwrap_err();
    assert!(
        missing.to_string().contains("not defined on this host"),
        "{missing}"
    );

    // libvirtd restarts under us: the handle reconnects, the guest never noticed.
    let mut c = lab.connect(&g).unwrap();
    let boot = c.info().unwrap().boot_id;
    host.restart_libvirtd().unwrap();
    assert_eq!(lv.state("drv").await.unwrap(), DomState::Running);
    assert_eq!(
        lv.qmp("drv", &json!({"execute": "query-status"}), q)
            .await
            .unwrap()["status"],
        "running"
    );
    assert_eq!(c.info().unwrap().boot_id, boot);

    lv.destroy("drv").await.unwrap();
    assert_eq!(lv.state("drv").await.unwrap(), DomState::ShutOff);
    lv.destroy("drv").await.unwrap(); // idempotent
    lv.undefine("drv").await.unwrap();
    assert!(matches!(
        lv.state("drv").await,
        Err(LibvirtError::NoDomain(_))
    ));
    lab.shutdown().unwrap();
}
