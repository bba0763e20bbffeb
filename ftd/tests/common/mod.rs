//! Helpers for tests that run each lab host's own ftd.

#![allow(dead_code)]

use ftd::api::FtdProxy;
use ftvirt_lab::{Host, Lab};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BUS_NAME: &str = "org.ftvirt.Ftd1";

/// ftd's configuration for `me`, paired with `peer` (the lab's standard one).
pub fn ftd_yaml(me: &Host, peer: &Host, checkpoint_ms: u64) -> String {
    ftvirt_lab::ftd::yaml(me, peer, checkpoint_ms)
}

/// Start the system bus and ftd on host `name` of the lab.
pub fn start_ftd(lab: &mut Lab, name: &str, peer: &str) {
    let yaml = {
        let (me, p) = (lab.host(name).unwrap(), lab.host(peer).unwrap());
        ftd_yaml(me, p, 2000)
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
pub use ftvirt_lab::ftd::wait_state;

/// The start of most lab tests: hosts a and b, guest `g` (2 vCPUs) running on
/// a, and each host's ftd up, paired with the other (2 s checkpoints).
pub fn lab_with_guest() -> (Lab, ftvirt_lab::Guest) {
    let mut lab = Lab::start(ftvirt_lab::LabConfig::hosts(&["a", "b"])).expect("lab");
    let g = lab
        .boot_guest("a", &ftvirt_lab::GuestSpec::standard("g", 0))
        .expect("boot");
    start_ftd(&mut lab, "a", "b");
    start_ftd(&mut lab, "b", "a");
    (lab, g)
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

/// Fail if the secondary's serial console on `host` shows a guest kernel crash
/// (a secondary that diverged from the primary dies this way under COLO).
pub fn assert_secondary_console_clean(lab: &Lab, host: &str, domain: &str) {
    let p = lab
        .host(host)
        .unwrap()
        .dir
        .join(format!("overlays/{domain}/secondary/serial.log"));
    let log = std::fs::read_to_string(&p).unwrap_or_default();
    for bad in ["Kernel panic", "BUG:", "kernel BUG", "not a head", "Oops"] {
        assert!(
            !log.contains(bad),
            "the secondary on {host} crashed ({bad:?}); console {}:\n{log}",
            p.display()
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

/// A client thread that writes (`PUT n`) back to back on one connection and
/// records when each reply came and when its request was sent.
pub struct BusyWriter {
    stop: Arc<AtomicBool>,
    /// (sent, replied) of every acknowledged write.
    done: Arc<Mutex<Vec<(Instant, Instant)>>>,
    /// When the request now waiting for its reply was sent.
    pending: Arc<Mutex<Option<Instant>>>,
    thread: std::thread::JoinHandle<(ftvirt_lab::GuestConn, u64, Option<String>)>,
}

impl BusyWriter {
    pub fn start(mut c: ftvirt_lab::GuestConn, first: u64) -> BusyWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(Mutex::new(Vec::new()));
        let pending = Arc::new(Mutex::new(None));
        let (st, dn, pd) = (stop.clone(), done.clone(), pending.clone());
        c.set_timeout(Duration::from_secs(30));
        let thread = std::thread::spawn(move || {
            let mut n = first;
            let mut err = None;
            while !st.load(Ordering::Relaxed) {
                let sent = Instant::now();
                *pd.lock().unwrap() = Some(sent);
                let r = c.put(n, "busy");
                *pd.lock().unwrap() = None;
                match r {
                    Ok(()) => dn.lock().unwrap().push((sent, Instant::now())),
                    Err(e) => {
                        err = Some(e.to_string());
                        break;
                    }
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(30));
            }
            (c, n - 1, err)
        });
        BusyWriter {
            stop,
            done,
            pending,
            thread,
        }
    }

    /// How long the request now in flight has waited for its reply.
    pub fn waiting(&self) -> Duration {
        self.pending
            .lock()
            .unwrap()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }

    /// When the first write sent after `t` was acknowledged, if within `timeout`.
    pub fn wait_reply_sent_after(&self, t: Instant, timeout: Duration) -> Option<Instant> {
        while t.elapsed() < timeout {
            if let Some(&(_, r)) = self.done.lock().unwrap().iter().find(|(s, _)| *s > t) {
                return Some(r);
            }
            if self.thread.is_finished() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Stop; the connection, the last acknowledged write and the error if any.
    pub fn stop(self) -> (ftvirt_lab::GuestConn, u64, Option<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("writer thread")
    }
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
        if let Ok(c) = std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "tcpdump", "-U", "-n", "-i", dev, "-w"])
            .arg(&out)
            .arg("tcp port 7000 or arp")
            .spawn()
        {
            v.push(c);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
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
