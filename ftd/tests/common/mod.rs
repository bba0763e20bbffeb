//! Helpers for tests that run each lab host's own ftd: starting it, the usual
//! protected pair, the secondary's console, a stopped domain, and packet
//! captures for a post-mortem. The client, its writes and the waits are
//! `ftvirt_lab`'s.

#![allow(dead_code)]

pub mod callers;

use ftd::api::FtdProxy;
use ftvirt_lab::{wait_until, Host, Lab, Look};
use std::time::{Duration, Instant};

pub const BUS_NAME: &str = "org.ftvirt.Ftd1";

/// ftd's configuration for `me`, paired with `peer` (the lab's standard one).
pub fn ftd_yaml(me: &Host, peer: &Host, checkpoint_ms: u64) -> String {
    ftvirt_lab::ftd::yaml(me, peer, checkpoint_ms)
}

/// Start the system bus and ftd on host `name` of the lab, with the lab's etcd
/// witness as its arbiter when the lab has one.
pub fn start_ftd(lab: &mut Lab, name: &str, peer: &str) {
    let yaml = {
        let (me, p) = (lab.host(name).unwrap(), lab.host(peer).unwrap());
        ftvirt_lab::ftd::lab_yaml(lab, me, p, 2000)
    };
    start_ftd_with(lab, name, &yaml);
}

/// Start the system bus and ftd on host `name` with this configuration.
pub fn start_ftd_with(lab: &mut Lab, name: &str, yaml: &str) {
    let h = lab.host_mut(name).unwrap();
    h.start_dbus().expect("system bus");
    h.start_ftd(
        std::path::Path::new(env!("CARGO_BIN_EXE_ftd")),
        yaml,
        BUS_NAME,
    )
    .expect("ftd");
}

/// A client of host `name`'s ftd over its bus.
pub async fn client(lab: &Lab, name: &str) -> FtdProxy<'static> {
    ftvirt_lab::ftd::client(lab, name).await.unwrap()
}

#[allow(unused_imports)]
pub use ftvirt_lab::ftd::{wait_checkpoints, wait_state};

/// The start of most lab tests: hosts a and b, the etcd witness w (one member:
/// the arbiter ftd's default set-up runs with), guest `g` (2 vCPUs) running on
/// a, and each host's ftd up, paired with the other (2 s checkpoints). `None`
/// when lab tests are skipped (`FTVIRT_SKIP_LAB=1`): the test returns.
pub fn lab_with_guest() -> Option<(Lab, ftvirt_lab::Guest)> {
    let mut lab = Lab::for_test(ftvirt_lab::LabConfig::hosts(&["a", "b"]).with_etcd(1))?;
    let g = lab
        .boot_guest("a", &ftvirt_lab::GuestSpec::standard("g", 0))
        .expect("boot");
    start_ftd(&mut lab, "a", "b");
    start_ftd(&mut lab, "b", "a");
    Some((lab, g))
}

/// `Enable(g)` on a with no options, then wait until a is protected and b holds
/// the secondary; returns how long the primary took to be protected.
pub async fn protect_g(lab: &Lab) -> Duration {
    let t0 = Instant::now();
    let st = client(lab, "a")
        .await
        .enable("g", ftd_proxy::no_options())
        .await
        .expect("enable");
    assert_eq!(st, "preparing");
    wait_state(lab, "a", "g", "protected", Duration::from_secs(120)).await;
    let took = t0.elapsed();
    wait_state(lab, "b", "g", "secondary", Duration::from_secs(30)).await;
    took
}

/// Wait until the primary's QEMU on `host` checkpoints every `ms` (COLO starts
/// with a 200 ms first checkpoint; ftd sets the domain's interval on its next
/// monitor tick after that checkpoint).
pub fn wait_checkpoint_delay(lab: &Lab, host: &str, ms: u64) {
    let want = format!("\"x-checkpoint-delay\":{ms}");
    wait_until(
        &format!("{host}'s QEMU to checkpoint every {ms} ms"),
        Duration::from_secs(5),
        Duration::from_millis(100),
        || {
            let params = lab.host(host).unwrap().virsh(&[
                "qemu-monitor-command",
                "g",
                r#"{"execute":"query-migrate-parameters"}"#,
            ]);
            match params {
                Ok(p) => Look::holds(p.contains(&want), || p),
                Err(e) => Look::Seen(e.to_string()),
            }
        },
    )
    .unwrap();
}

/// Fail if the secondary's serial console on `host` shows a guest kernel crash
/// (a secondary that diverged from the primary dies this way under COLO), or if
/// there is no console to read.
pub fn assert_secondary_console_clean(lab: &Lab, host: &str, domain: &str) {
    let p = lab
        .host(host)
        .unwrap()
        .dir
        .join(format!("overlays/{domain}/secondary/serial.log"));
    assert_console_clean(&p);
}

/// Fail if the guest console at `p` shows a kernel crash, or cannot be read (a
/// secondary's console exists from its start, and stays empty unless the guest
/// prints something after the primary's state was loaded: a crash does).
pub fn assert_console_clean(p: &std::path::Path) {
    let log = std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("reading the guest console {}: {e}", p.display()));
    let host = p.display();
    for bad in [
        "Kernel panic",
        "BUG:",
        "kernel BUG",
        "not a head",
        "Oops",
        "general protection",
    ] {
        assert!(
            !log.contains(bad),
            "the guest crashed ({bad:?}); console {host}:\n{log}"
        );
    }
}

/// Define (not start) a domain `name` on `host` whose devices ftd can protect (a
/// virtio qcow2 disk that need not exist, a virtio NIC): enough for ftd to track
/// it as `stopped`.
pub fn define_stopped(lab: &Lab, host: &str, name: &str) {
    let h = lab.host(host).unwrap();
    let xml = format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>\
         <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>\
         <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
         <source file='{img}/{name}.qcow2'/><target dev='vda' bus='virtio'/></disk>\
         <interface type='bridge'><source bridge='br0'/><model type='virtio'/></interface>\
         </devices></domain>",
        img = h.images().display()
    );
    let f = h.dir.join(format!("{name}.xml"));
    std::fs::write(&f, xml).unwrap();
    h.virsh(&["define", f.to_str().unwrap()]).unwrap();
}

/// With `FTVIRT_CAPTURE=DIR`, tcpdump on the client and on both hosts' bridges
/// (a post-mortem aid; nothing is captured otherwise).
pub fn capture_start(lab: &Lab, cycle: usize) -> Vec<std::process::Child> {
    let Some(dir) = std::env::var_os("FTVIRT_CAPTURE") else {
        return Vec::new();
    };
    let dir = std::path::PathBuf::from(dir);
    let _ = std::fs::create_dir_all(&dir);
    let mut v = Vec::new();
    let mut spots = vec![(lab.client_ns().name.clone(), "eth0", "client")];
    for h in lab.hosts() {
        spots.push((h.ns.name.clone(), "br0", h.name.as_str()));
    }
    for (ns, dev, tag) in spots {
        let out = dir.join(format!("{tag}-{cycle}.pcap"));
        let _ = std::fs::remove_file(&out);
        let Ok(mut c) = std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "tcpdump", "-U", "-n", "-i", dev, "-w"])
            .arg(&out)
            .arg("tcp port 7000 or arp")
            .spawn()
        else {
            eprintln!("capture on {tag}: tcpdump did not start");
            continue;
        };
        // tcpdump creates its file once the capture is open.
        let started = wait_until(
            &format!("tcpdump on {tag} to open {}", out.display()),
            Duration::from_secs(10),
            Duration::from_millis(20),
            || match c.try_wait() {
                Ok(Some(st)) => Look::Failed(format!("tcpdump exited ({st})")),
                _ => Look::holds(out.exists(), || "no capture file yet".into()),
            },
        );
        if let Err(e) = started {
            eprintln!("capture on {tag}: {e}");
        }
        v.push(c);
    }
    v
}

pub fn capture_stop(v: Vec<std::process::Child>) {
    for mut c in v {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &c.id().to_string()])
            .status();
        let _ = c.wait();
    }
}

/// libvirt's normal posture on `host` ([`ftvirt_lab::posture`]): its QEMU runs
/// (at least one process) as the `qemu.conf` user, every file ftd made for
/// QEMU is that user's and not readable by others, and among the files checked
/// is one whose path contains each of `expect` (so the check saw what this
/// point of the test must have made), and ftd runs under its unit's sandbox.
pub fn assert_posture(lab: &Lab, host: &str, expect: &[&str]) {
    let p = lab.host(host).unwrap().check_posture().unwrap();
    assert!(!p.qemu.is_empty(), "host {host}: no QEMU process found");
    if let Err(problems) = p.ok() {
        panic!("host {host}: libvirt's posture broken:\n{problems}");
    }
    for e in expect {
        assert!(p.saw(e), "host {host}: no {e} among {:?}", p.files);
    }
    let sandbox_off = std::env::var("FTVIRT_LAB_SANDBOX").is_ok_and(|v| v == "off");
    assert!(
        p.ftd_sandboxed || sandbox_off,
        "host {host}: ftd's process was not checked under its unit's sandbox"
    );
    eprintln!(
        "host {host}: QEMU runs as {:?}; {} files of ftd's private to QEMU's user; ftd {}",
        p.qemu,
        p.files.len(),
        if p.ftd_sandboxed {
            "under dbus/ftd.service's sandbox"
        } else {
            "WITHOUT its sandbox (FTVIRT_LAB_SANDBOX=off)"
        }
    );
}
