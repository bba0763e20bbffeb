//! The COLO plans end to end on the lab, driven step by step (no daemon): a
//! libvirt primary on host a and a libvirt secondary on host b generated from its
//! live XML reach COLO; host a is then killed and b takes over. The client's TCP
//! connection opened before the kill keeps working, no acknowledged write is
//! lost, and the guest did not reboot.

use ftd::colo::layout::DomainLayout;
use ftd::colo::plan::{self, Ports, Wiring};
use ftd::colo::secondary::{secondary_xml, SecondaryParams};
use ftd::colo::tls::ColoTls;
use ftd::inspect;
use ftd::libvirt::{DomState, Libvirt};
use ftd::runner::{self, QMP_DEADLINE};
use ftvirt_lab::{GuestSpec, Lab, LabConfig};
use serde_json::json;
use std::time::{Duration, Instant};

/// Checkpoints the pair makes before the primary's host is killed.
const CHECKPOINTS: u32 = 3;

#[tokio::test(flavor = "multi_thread")]
async fn plans_protect_and_survive_primary_loss() {
    let Some(mut lab) = Lab::for_test(LabConfig::hosts(&["a", "b"])) else {
        return;
    };
    let g = lab
        .boot_guest("a", &GuestSpec::standard("g", 0))
        .expect("boot");
    let (a, b) = (lab.host("a").unwrap(), lab.host("b").unwrap());
    let (lva, lvb) = (
        Libvirt::new(&a.uri(), Duration::from_secs(10)),
        Libvirt::new(&b.uri(), Duration::from_secs(10)),
    );
    let mut c = lab.connect(&g).unwrap();
    let boot = c.info().unwrap().boot_id;
    let mut acked = 0;
    for n in 1..=5 {
        c.put(n, "before-protection").unwrap();
        acked = n;
    }

    // What the primary looks like.
    let live = lva.xml("g", false).await.unwrap();
    let layout = DomainLayout::parse(&live).unwrap();
    layout.check_replicable(&live).unwrap();
    let disk = &layout.disks[0];
    let (node, size) = inspect::disk_node(&lva, "g", disk).await.unwrap();
    let dev = inspect::disk_device(&lva, "g", disk).await.unwrap();
    eprintln!("primary disk: node {node}, {size} bytes, device {dev:?}");

    // COLO's TLS: each host's COLO certificate (naming its replication address)
    // from the COLO CA, in QEMU's layout, as ftd writes it at start.
    let certs = lab.dir.join("colo-plans-tls");
    ftd::certs::make(
        &certs,
        &[format!("a={}", a.rep_ip), format!("b={}", b.rep_ip)],
        1,
        true,
    )
    .expect("certificates");
    let qemu_tls = |h: &str| {
        let d = lab.dir.join(format!("qemu-tls-{h}"));
        let f = certs.join(h);
        ftd::colo::tls::write_dir(
            &d,
            &f.join("colo-ca.crt"),
            &f.join("colo.crt"),
            &f.join("colo.key"),
            &lab.host(h).unwrap().qemu_user().unwrap(),
        )
        .expect("QEMU's TLS files");
        d
    };
    let tls_b = ColoTls {
        dir: qemu_tls("b"),
        peer: "a".into(),
    };
    let tls_a = ColoTls {
        dir: qemu_tls("a"),
        peer: "b".into(),
    };

    // Secondary on b.
    let t0 = Instant::now();
    let ports = Ports::slot(0);
    let sp = SecondaryParams {
        primary_addr: a.rep_ip.to_string(),
        mirror_port: ports.mirror,
        compare_port: ports.compare,
        parent: b.images().join("g.parent0.qcow2"),
        active: b.images().join("g.active.qcow2"),
        hidden: b.images().join("g.hidden.qcow2"),
        serial_log: b.images().join("g.serial.log"),
        tls: Some(tls_b.clone()),
        trusted_dirs: vec!["/usr/bin".into(), ftvirt_lab::artifacts::cache_dir()],
    };
    for p in [&sp.parent, &sp.active, &sp.hidden] {
        b.qemu_image(p, size).await.unwrap();
    }
    let sx = secondary_xml(&live, "g", &dev, &sp).unwrap();
    lvb.create(&sx.xml).await.unwrap();
    assert_eq!(
        lvb.qmp("g", &json!({"execute": "query-status"}), QMP_DEADLINE)
            .await
            .unwrap()["status"],
        "inmigrate"
    );
    runner::run(
        &lvb,
        "g",
        &plan::secondary_export(&ports, &b.rep_ip.to_string(), Some(&tls_b)),
    )
    .await
    .expect("nbd export");
    // b waits for the primary's state and disk on its replication address only.
    let listening = b.exec(&["ss", "-Hltn"]).unwrap();
    for p in [ports.nbd, ports.migration] {
        let on: Vec<&str> = listening
            .lines()
            .filter_map(|l| l.split_whitespace().nth(3))
            .filter(|l| l.ends_with(&format!(":{p}")))
            .collect();
        assert_eq!(on, [format!("{}:{p}", b.rep_ip)], "{listening}");
    }

    // Primary on a: pivot, sync, start COLO.
    let w = Wiring {
        device_node: node,
        gen: 1,
        base_image: a.images().join("g.ftvirt1.qcow2"),
        netdev: layout.nics[0].netdev_id().unwrap(),
        primary_addr: a.rep_ip.to_string(),
        secondary_addr: b.rep_ip.to_string(),
        ports,
        checkpoint_ms: 2000,
        compare_timeout_ms: 3000,
        sync_timeout: Duration::from_secs(120),
        tls: Some(tls_a),
    };
    a.qemu_image(&w.base_image, size).await.unwrap();
    for (name, p) in [
        ("pivot", plan::pivot(&w)),
        ("sync", plan::sync(&w)),
        ("start_colo", plan::start_colo(&w)),
    ] {
        let r = runner::run(&lva, "g", &p)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!("{name}: {} commands in {:?}", r.commands, r.elapsed);
    }
    eprintln!("protected after {:?}", t0.elapsed());
    let st_a = lva
        .qmp("g", &json!({"execute": "query-colo-status"}), QMP_DEADLINE)
        .await
        .unwrap();
    assert_eq!(st_a["mode"], "primary");
    // The secondary flips to COLO once it has loaded the first state.
    runner::run(
        &lvb,
        "g",
        &[plan::Op::WaitColoMode {
            mode: "secondary",
            timeout: Duration::from_secs(60),
        }],
    )
    .await
    .expect("secondary in COLO");
    eprintln!("both sides in COLO after {:?}", t0.elapsed());
    assert_eq!(lva.state("g").await.unwrap(), DomState::Running);

    // Protected: the client works, with replies comparing equal (no checkpoint wait).
    let mut worst = Duration::ZERO;
    for n in 6..=25 {
        let (r, rtt) = c.request_timed(&format!("PUT {n} protected")).unwrap();
        assert_eq!(r, format!("DURABLE {n}"));
        acked = n;
        worst = worst.max(rtt);
    }
    eprintln!("worst RTT while protected: {worst:?}");
    // Several checkpoints: a secondary that diverges shows it only after a few.
    // Each checkpoint stops and resumes the primary: count its RESUME events.
    let t = Instant::now();
    let (_watch, mut events) = ftd::qmp_events::watch(&a.uri());
    let counted = tokio::time::timeout(Duration::from_secs(60), async {
        let mut n = 0;
        while n < CHECKPOINTS {
            match events.recv().await {
                Some(e) if e.domain == "g" && e.event == "RESUME" => n += 1,
                Some(_) => {}
                None => panic!("the QEMU event watch of host a ended"),
            }
        }
    })
    .await;
    assert!(
        counted.is_ok(),
        "fewer than {CHECKPOINTS} checkpoints (RESUME events of the primary) in 60 s"
    );
    eprintln!("{CHECKPOINTS} checkpoints in {:?}", t.elapsed());
    // It exists from the secondary's start; it stays empty unless the guest,
    // running from the primary's state, prints something (a crash does).
    let console = std::fs::read_to_string(&sp.serial_log).unwrap_or_else(|e| {
        panic!(
            "reading the secondary's console {}: {e}",
            sp.serial_log.display()
        )
    });
    for bad in ["Kernel panic", "not a head", "BUG", "general protection"] {
        assert!(
            !console.contains(bad),
            "the secondary guest crashed ({bad}):\n{console}"
        );
    }

    // Host a dies; b takes over.
    lab.kill_host("a").unwrap();
    let t_kill = Instant::now();
    let r = runner::run(&lvb, "g", &plan::take_over())
        .await
        .expect("take over");
    eprintln!("takeover: {} commands in {:?}", r.commands, r.elapsed);
    c.set_timeout(Duration::from_secs(20));
    let k = c
        .seq(1000)
        .expect("the same connection answers after failover");
    eprintln!(
        "first reply {:?} after the kill (conn request {k})",
        t_kill.elapsed()
    );
    assert_eq!(c.info().unwrap().boot_id, boot, "the guest must not reboot");
    assert!(c.last().unwrap() >= acked, "acknowledged writes lost");
    c.put(acked + 1, "after-failover").unwrap();
    assert_eq!(lvb.state("g").await.unwrap(), DomState::Running);
    lab.shutdown().unwrap();
}
