//! How the partition tests split the pair ([`Cut`]), and what they watch besides
//! the client (the lab's writer): both
//! hosts' copies of the domain, sampled from outside through their libvirtd
//! ([`Watcher`]: a copy *serves* when it runs out of COLO). The order of events in
//! the hosts' ftd logs is read with `ftvirt_lab::ftdlog`.

use ftvirt_lab::ftdlog::FtdLog;
use ftvirt_lab::Lab;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::SystemTime;
use std::time::{Duration, Instant};

/// One sample of a host's copy: libvirt's state and, running, COLO's mode.
fn copy_state(uri: &str, domain: &str) -> String {
    let virsh = |args: &[&str]| {
        Command::new("virsh")
            .args(["-c", uri])
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(state) = virsh(&["domstate", domain]) else {
        return "absent".into();
    };
    if state != "running" {
        return state;
    }
    let mode = virsh(&[
        "qemu-monitor-command",
        domain,
        r#"{"execute":"query-colo-status"}"#,
    ])
    .and_then(|o| serde_json::from_str::<serde_json::Value>(&o).ok())
    .and_then(|v| v["return"]["mode"].as_str().map(String::from))
    .unwrap_or_else(|| "?".into());
    format!("running/{mode}")
}

/// Does a copy in this state answer clients? (Running out of COLO; a COLO primary's
/// output is held until the secondary's matches, a secondary's never leaves.)
pub fn serves(state: &str) -> bool {
    state == "running/none"
}

/// Both hosts' copies, sampled from outside until stopped.
#[derive(Debug)]
pub struct Watcher {
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<Watched>>,
}

/// What the watcher saw: every change of the pair's states, and every sample in
/// which both copies served.
#[derive(Debug, Default)]
pub struct Watched {
    pub samples: u64,
    pub changes: Vec<(Duration, String, String)>,
    pub both_serving: Vec<(Duration, String, String)>,
}

impl Watcher {
    /// Sample `domain` on the hosts at these libvirt URIs as fast as virsh allows.
    pub fn start(uris: [String; 2], domain: &str) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let domain = domain.to_string();
        let join = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut w = Watched::default();
            while !s.load(Ordering::Relaxed) {
                let a = copy_state(&uris[0], &domain);
                let b = copy_state(&uris[1], &domain);
                w.samples += 1;
                let t = t0.elapsed();
                if w.changes.last().map(|c| (&c.1, &c.2)) != Some((&a, &b)) {
                    w.changes.push((t, a.clone(), b.clone()));
                }
                if serves(&a) && serves(&b) {
                    w.both_serving.push((t, a, b));
                }
            }
            w
        });
        Watcher {
            stop,
            join: Some(join),
        }
    }

    pub fn stop(mut self) -> Watched {
        self.stop.store(true, Ordering::Relaxed);
        self.join.take().unwrap().join().expect("watcher thread")
    }
}

/// How the pair is split and healed.
#[derive(Debug, Clone, Copy)]
pub enum Cut {
    /// Host's replication port down (it reaches neither its peer nor the
    /// witness host).
    Port(&'static str),
    /// Only the path between a and b (both still reach the witness host).
    Path,
}

impl Cut {
    /// Cut (`cut`) or heal.
    pub fn apply(self, lab: &Lab, cut: bool) {
        match (self, cut) {
            (Cut::Port(h), _) => lab.set_rep_link(h, !cut).unwrap(),
            (Cut::Path, true) => lab.cut_path("a", "b").unwrap(),
            (Cut::Path, false) => lab.heal_path("a", "b").unwrap(),
        }
    }
}

/// When the first line of the ftd log at `path` containing every one of
/// `needles` was logged.
pub fn log_time(path: &Path, needles: &[&str]) -> Option<SystemTime> {
    FtdLog::read(path).unwrap().first(needles)
}

impl Watcher {
    /// Stop watching, print the pair's states over time, and assert that the
    /// two copies never served at once.
    pub fn stop_and_check(self) -> Watched {
        let watched = self.stop();
        eprintln!(
            "watcher: {} samples, pair states (a, b) over time:",
            watched.samples
        );
        for (t, a, b) in &watched.changes {
            eprintln!("  {t:>10.3?}  a {a:<16} b {b}");
        }
        assert!(
            watched.both_serving.is_empty(),
            "both copies served at once: {:?}",
            watched.both_serving
        );
        watched
    }
}
