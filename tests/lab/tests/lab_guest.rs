//! End to end on real parts: the 2-vCPU guest boots under a lab host's own
//! libvirtd, and a client in the client namespace uses its service over TCP.

use ftvirt_lab::{GuestSpec, Lab, LabConfig};

#[test]
fn guest_boots_under_lab_libvirtd_and_serves_the_client() {
    let Some(lab) = Lab::for_test(LabConfig::hosts(&["a", "b"])) else {
        return;
    };
    eprintln!(
        "lab {}: QEMU {}; accelerator {}",
        lab.id, lab.qemu.label, lab.accel
    );
    let g = lab
        .boot_guest("a", &GuestSpec::standard("g1", 0))
        .expect("boot");
    eprintln!("guest READY after {} ms", g.boot_time.as_millis());

    // libvirt of host a sees it running with 2 vCPUs; host b sees nothing.
    let a = lab.host("a").unwrap();
    let info = a.virsh(&["dominfo", "g1"]).unwrap();
    assert!(
        info.lines()
            .any(|l| l.starts_with("State:") && l.contains("running")),
        "{info}"
    );
    assert!(
        info.lines()
            .any(|l| l.starts_with("CPU(s):") && l.trim_end().ends_with(" 2")),
        "{info}"
    );
    assert!(lab.host("b").unwrap().domains(true).unwrap().is_empty());

    let mut c = lab.connect(&g).expect("connect from the client namespace");
    let gi = c.info().unwrap();
    assert_eq!(gi.nproc, 2, "the guest must see both vCPUs");
    assert_eq!(gi.last, 0, "a fresh disk holds no record");

    // One long-lived connection: replies in order; `conn` counts every request on
    // this connection (INFO above was the first).
    for n in 1..=20 {
        assert_eq!(c.seq(n).unwrap(), n + 1);
    }
    let mut c2 = lab.connect(&g).unwrap();
    assert_eq!(
        c2.seq(1).unwrap(),
        1,
        "a second connection counts on its own"
    );
    assert_eq!(c.seq(21).unwrap(), 22, "the first connection carries on");

    // Durable writes: acknowledged only once on the virtual disk, read back from it.
    for n in 1..=10 {
        c.put(n, &format!("record-{n}")).unwrap();
    }
    assert_eq!(c.last().unwrap(), 10);
    let gap = c.request("PUT 12 skipped-one").unwrap();
    assert!(
        gap.starts_with("ERR expected 11"),
        "a gap must be refused: {gap}"
    );
    assert_eq!(
        c2.last().unwrap(),
        10,
        "nothing was written by the refused PUT"
    );
    let rec = c.request("GET 7").unwrap();
    assert_eq!(rec, "REC 7 record-7");

    // CPU work on both vCPUs.
    let run = c.cpu(5_000_000).unwrap();
    let mut on = run.ran_on.clone();
    on.sort_unstable();
    on.dedup();
    assert_eq!(run.cpus, 2);
    assert_eq!(on, vec![0, 1], "work must run on both vCPUs");

    // The guest's own uptime is consistent with a single boot.
    let later = c.info().unwrap();
    assert_eq!(later.boot_id, gi.boot_id);
    assert!(later.uptime_ms > gi.uptime_ms);
    lab.shutdown().expect("tear-down");
}

#[test]
fn two_hosts_libvirtds_do_not_see_each_other() {
    let Some(lab) = Lab::for_test(LabConfig::hosts(&["a", "b"])) else {
        return;
    };
    let (a, b) = (lab.host("a").unwrap(), lab.host("b").unwrap());
    // Define (not start) a domain on each host, with a shared name and a private one.
    for (h, names) in [(a, ["shared", "only-a"]), (b, ["shared", "only-b"])] {
        for n in names {
            let xml = GuestSpec::standard(n, 1).domain_xml(
                &lab.artifacts,
                &lab.qemu,
                &lab.accel,
                &h.images().join(format!("{n}.qcow2")),
                &h.images().join(format!("{n}.log")),
            );
            let p = h.images().join(format!("{n}.xml"));
            std::fs::write(&p, xml).unwrap();
            h.virsh(&["define", &p.to_string_lossy()]).unwrap();
        }
    }
    let mut on_a = a.domains(true).unwrap();
    let mut on_b = b.domains(true).unwrap();
    on_a.sort();
    on_b.sort();
    assert_eq!(on_a, ["only-a", "shared"]);
    assert_eq!(on_b, ["only-b", "shared"]);
    // Undefining on one host leaves the other's domain of the same name alone.
    a.virsh(&["undefine", "shared"]).unwrap();
    assert_eq!(a.domains(true).unwrap(), ["only-a"]);
    assert!(b.domains(true).unwrap().contains(&"shared".to_string()));
    // Each host is its own machine: own hostname, own libvirtd process.
    assert_eq!(a.exec(&["hostname"]).unwrap().trim(), "a");
    assert_eq!(b.exec(&["hostname"]).unwrap().trim(), "b");
    let pid =
        |h: &ftvirt_lab::Host| std::fs::read_to_string(h.dir.join("run/libvirtd.pid")).unwrap();
    assert_ne!(pid(a), pid(b));
    lab.shutdown().unwrap();
}
