//! End to end on the lab: the hook installed in both hosts' libvirtd, ftd running on
//! both. An unmarked guest boots as before and ftd never hears of it; the same guest
//! defined with the annotation (`peer="b"`) and started is protected with no call
//! by anyone: libvirtd runs the hook, the hook tells ftd, ftd protects it.

use ftd_annotation::{from_domain_xml, to_metadata_child, Protection};
use ftd_proxy::BUS_NAME;
use ftvirt_lab::ftd;
use ftvirt_lab::{GuestSpec, Host, Lab, LabConfig};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

const HOOK: &str = env!("CARGO_BIN_EXE_ftvirt-hook");

/// Install the hook as `/etc/libvirt/hooks/qemu.d/ftvirt` of `host`; libvirtd
/// looks for hooks when it starts, so restart it.
fn install_hook(host: &Host) {
    let dir = host.dir.join("etc/hooks/qemu.d");
    std::fs::create_dir_all(&dir).unwrap();
    let dst = dir.join("ftvirt");
    std::fs::copy(HOOK, &dst).unwrap();
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
    host.restart_libvirtd().expect("restart libvirtd");
}

#[tokio::test(flavor = "multi_thread")]
async fn starting_a_marked_domain_protects_it() {
    let Some(mut lab) = Lab::for_test(LabConfig::hosts(&["a", "b"])) else {
        return;
    };
    // ftd belongs to another package: built (or brought up to date) first.
    let ftd = ftd::binary(env!("CARGO_MANIFEST_DIR"));
    for h in ["a", "b"] {
        install_hook(lab.host(h).unwrap());
    }
    for (me, peer) in [("a", "b"), ("b", "a")] {
        let yaml = ftd::yaml(lab.host(me).unwrap(), lab.host(peer).unwrap(), 2000);
        let h = lab.host_mut(me).unwrap();
        h.start_dbus().expect("system bus");
        h.start_ftd(&ftd, &yaml, BUS_NAME).expect("ftd");
    }

    // Unmarked: boots as before (the hook ran for it), ftd knows nothing of it.
    let g = lab
        .boot_guest("a", &GuestSpec::standard("g", 0))
        .expect("boot");
    let ftd_a = ftd::client(&lab, "a").await.unwrap();
    let known = ftd_a.list().await.unwrap();
    assert!(known.iter().all(|s| s.domain != "g"), "{known:?}");
    match ftd_a.status("g").await {
        Ok(s) => assert!(s.state == "unprotected" && !s.wanted, "{s:?}"),
        Err(e) => assert!(e.to_string().contains("not protected"), "{e}"),
    }

    // Marked: define it with the annotation, start it, and only wait.
    let a = lab.host("a").unwrap();
    a.virsh(&["destroy", "g"]).unwrap();
    let xml = a.virsh(&["dumpxml", "--inactive", "g"]).unwrap();
    assert_eq!(from_domain_xml(&xml).unwrap(), None);
    let at = xml.find("  <memory").expect("<memory> in the domain XML");
    let marked = format!(
        "{}  <metadata>\n    {}\n  </metadata>\n{}",
        &xml[..at],
        to_metadata_child(&Protection::new("b")),
        &xml[at..]
    );
    let path = a.images().join("g-marked.xml");
    std::fs::write(&path, &marked).unwrap();
    a.virsh(&["define", &path.to_string_lossy()]).unwrap();
    let defined = a.virsh(&["dumpxml", "--inactive", "g"]).unwrap();
    assert_eq!(
        from_domain_xml(&defined).unwrap(),
        Some(Protection::new("b"))
    );

    let t0 = Instant::now();
    a.virsh(&["start", "g"]).unwrap();
    let start_ms = t0.elapsed().as_millis();
    let sa = ftd::wait_state(&lab, "a", "g", "protected", Duration::from_secs(120)).await;
    let protect_ms = t0.elapsed().as_millis();
    let sb = ftd::wait_state(&lab, "b", "g", "secondary", Duration::from_secs(30)).await;
    eprintln!(
        "virsh start returned in {start_ms} ms (hook included); protected {protect_ms} ms after \
         the start; a: {sa:?}; b: {sb:?}"
    );
    assert!(sa.wanted && sa.peer_up, "{sa:?}");
    assert_eq!(sa.peer, "b");
    let log = std::fs::read_to_string(lab.host("a").unwrap().ftd_log()).unwrap();
    assert!(
        log.contains("libvirt hook: started"),
        "{}",
        ftd::log_tail(&lab, "a", 25)
    );

    // The guest runs and works under protection.
    let mut c = lab.connect(&g).unwrap();
    c.info().unwrap();
    for n in 1..=3 {
        c.put(n, "protected-by-the-hook").unwrap();
    }
    assert_eq!(c.last().unwrap(), 3);
    lab.shutdown().unwrap();
}
