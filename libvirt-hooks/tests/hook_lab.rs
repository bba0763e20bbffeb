//! End to end on the lab: the hook installed in both hosts' libvirtd, ftd running on
//! both. An unmarked guest boots as before and ftd never hears of it; the same guest
//! defined with the annotation (`peer="b"`) and started is protected with no call
//! by anyone: libvirtd runs the hook, the hook tells ftd, ftd protects it.
//!
//! With the witness (etcd): after a failover, the old primary's host comes back
//! with its stale copy defined, marked and set to autostart. libvirt's autostart
//! (ftd not yet running) and then an admin's `virsh start` (ftd running, the
//! witness's record naming the survivor) are both refused by the hook, with the
//! reason in libvirt's error; the copy never runs, and the survivor makes that
//! host its secondary once they reach each other.

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

/// Redefine the stopped domain `g` of `host` with the annotation (`peer="b"`).
fn define_marked(host: &Host) {
    let xml = host.virsh(&["dumpxml", "--inactive", "g"]).unwrap();
    assert_eq!(from_domain_xml(&xml).unwrap(), None);
    let at = xml.find("  <memory").expect("<memory> in the domain XML");
    let marked = format!(
        "{}  <metadata>\n    {}\n  </metadata>\n{}",
        &xml[..at],
        to_metadata_child(&Protection::new("b")),
        &xml[at..]
    );
    let path = host.images().join("g-marked.xml");
    std::fs::write(&path, &marked).unwrap();
    host.virsh(&["define", &path.to_string_lossy()]).unwrap();
    let defined = host.virsh(&["dumpxml", "--inactive", "g"]).unwrap();
    assert_eq!(
        from_domain_xml(&defined).unwrap(),
        Some(Protection::new("b"))
    );
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
    define_marked(a);

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

/// Start the system bus and ftd (`yaml`) on host `me`.
fn start_ftd(lab: &mut Lab, ftd: &std::path::Path, me: &str, yaml: &str) {
    let h = lab.host_mut(me).unwrap();
    h.start_dbus().expect("system bus");
    h.start_ftd(ftd, yaml, BUS_NAME).expect("ftd");
}

/// libvirt's state of `g` on `host` ("running", "shut off", ...).
fn domstate(lab: &Lab, host: &str) -> String {
    lab.host(host)
        .unwrap()
        .virsh(&["domstate", "g"])
        .unwrap()
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_copy_never_starts_next_to_the_survivor() {
    let Some(mut lab) = Lab::for_test(LabConfig::hosts(&["a", "b"]).with_etcd(1)) else {
        return;
    };
    let ftd = ftd::binary(env!("CARGO_MANIFEST_DIR"));
    for h in ["a", "b"] {
        install_hook(lab.host(h).unwrap());
    }
    let yaml = |lab: &Lab, me: &str, peer: &str| {
        ftd::lab_yaml(lab, lab.host(me).unwrap(), lab.host(peer).unwrap(), 2000)
    };
    for (me, peer) in [("a", "b"), ("b", "a")] {
        let y = yaml(&lab, me, peer);
        assert!(y.contains("kind: etcd"), "{y}");
        start_ftd(&mut lab, &ftd, me, &y);
    }
    lab.boot_guest("a", &GuestSpec::standard("g", 0))
        .expect("boot");
    let a = lab.host("a").unwrap();
    a.virsh(&["destroy", "g"]).unwrap();
    define_marked(a);
    a.virsh(&["autostart", "g"]).unwrap();
    a.virsh(&["start", "g"]).unwrap();
    ftd::wait_state(&lab, "a", "g", "protected", Duration::from_secs(120)).await;
    ftd::wait_state(&lab, "b", "g", "secondary", Duration::from_secs(30)).await;

    // a's host dies; b wins the record and serves.
    lab.kill_host("a").unwrap();
    let s = ftd::wait_state(&lab, "b", "g", "degraded", Duration::from_secs(60)).await;
    assert!(
        s.last_failover.contains("won the witness's record"),
        "{s:?}"
    );

    // a's host comes back: libvirtd autostarts g before any ftd runs there. The
    // hook finds ftd's configuration naming the witness and refuses.
    lab.restart_host("a").unwrap();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        assert_ne!(
            domstate(&lab, "a"),
            "running",
            "the stale copy was autostarted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let e = lab
        .host("a")
        .unwrap()
        .virsh(&["start", "g"])
        .expect_err("virsh start of the stale copy with ftd down");
    assert!(
        e.to_string().contains("must not start yet") && e.to_string().contains("Start ftd"),
        "{e}"
    );

    // ftd runs on a, but a cannot reach b yet: ftd reads the record and refuses.
    lab.cut_path("a", "b").unwrap();
    let y = yaml(&lab, "a", "b");
    start_ftd(&mut lab, &ftd, "a", &y);
    let e = lab
        .host("a")
        .unwrap()
        .virsh(&["start", "g"])
        .expect_err("virsh start of the stale copy with ftd up");
    let e = e.to_string();
    eprintln!("virsh start on a: {e}");
    assert!(
        e.contains("must not start on this host")
            && e.contains("the witness's record says b holds g"),
        "{e}"
    );
    assert_ne!(domstate(&lab, "a"), "running");
    assert_eq!(ftd::status(&lab, "b", "g").await.unwrap().state, "degraded");

    // The link back: b makes a its secondary.
    lab.heal_path("a", "b").unwrap();
    ftd::wait_state(&lab, "b", "g", "protected", Duration::from_secs(120)).await;
    ftd::wait_state(&lab, "a", "g", "secondary", Duration::from_secs(30)).await;
    lab.shutdown().unwrap();
}
