//! The split-brain watch: a thread that asks every host's QEMU, through the host's
//! libvirtd, how each watched domain's copy runs, every [`PERIOD`], for the whole
//! scenario. A copy runs *free* when QEMU says `running` (`query-status`), is in
//! no COLO mode (`query-colo-status` mode `none`) and its network output reaches
//! the LAN (no secondary's `f2` redirector sending it to the primary instead):
//! it answers clients on its own.
//! Two free copies of one domain in two consecutive polls are a split brain (one
//! poll alone could straddle a takeover's last moment; a real split brain lasts).
//!
//! A dead host, a missing domain or a QEMU that does not answer counts as not
//! free. The polls go through ftd's own libvirt driver (in-process, no `virsh`
//! per poll), each with a short deadline.

use ftd::libvirt::Libvirt;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often both hosts are asked.
pub const PERIOD: Duration = Duration::from_millis(200);
const CALL: Duration = Duration::from_secs(2);

/// What the watch saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Each split brain: which domain, where, when (seconds into the watch).
    pub split: Vec<String>,
    /// Polls made.
    pub polls: u64,
    /// Single polls with two free copies that did not last (for the notes).
    pub blips: Vec<String>,
}

/// Handle on the watch thread.
#[derive(Debug)]
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Seen>>,
}

impl Watch {
    /// Watch `domains` on `hosts` (name, libvirt URI).
    pub fn start(hosts: Vec<(String, String)>, domains: Vec<String>) -> std::io::Result<Watch> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("split-brain-watch".into())
            .spawn(move || watch(&hosts, &domains, &flag))?;
        Ok(Watch {
            stop,
            thread: Some(thread),
        })
    }

    /// Stop and return what was seen.
    pub fn stop(mut self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn watch(hosts: &[(String, String)], domains: &[String], stop: &AtomicBool) -> Seen {
    // libvirt prints every error (a dead host's socket, a missing domain) to
    // stderr by default; here they are expected answers.
    virt::error::clear_error_callback();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return Seen {
                split: vec![format!("the watch could not start: {e}")],
                ..Seen::default()
            }
        }
    };
    let lvs: Vec<(String, Libvirt)> = hosts
        .iter()
        .map(|(n, uri)| (n.clone(), Libvirt::new(uri, CALL)))
        .collect();
    let t0 = Instant::now();
    let mut seen = Seen::default();
    let mut streak: HashMap<&str, u32> = HashMap::new();
    while !stop.load(Ordering::SeqCst) {
        let tick = Instant::now();
        for d in domains {
            let free: Vec<&str> = lvs
                .iter()
                .filter(|(_, lv)| rt.block_on(runs_free(lv, d)))
                .map(|(n, _)| n.as_str())
                .collect();
            let s = streak.entry(d.as_str()).or_default();
            let at = t0.elapsed().as_secs_f64();
            if free.len() >= 2 {
                *s += 1;
                if *s == 2 {
                    seen.split.push(format!(
                        "{d} ran out of COLO on {} at once ({at:.1}s into the scenario)",
                        free.join(" and ")
                    ));
                }
            } else {
                if *s == 1 {
                    seen.blips.push(format!(
                        "{d}: one poll saw two free copies at {at:.1}s (not in the next)"
                    ));
                }
                *s = 0;
            }
        }
        seen.polls += 1;
        let left = PERIOD.saturating_sub(tick.elapsed());
        std::thread::sleep(left);
    }
    seen
}

/// Does this host's copy of `domain` run free (running, not in COLO)?
async fn runs_free(lv: &Libvirt, domain: &str) -> bool {
    let Ok(st) = lv
        .qmp(domain, &json!({"execute": "query-status"}), CALL)
        .await
    else {
        return false;
    };
    if st["status"] != "running" {
        return false;
    }
    // Running, and no answer about COLO or the filters: count it as free (the
    // safe side).
    if let Ok(c) = lv
        .qmp(domain, &json!({"execute": "query-colo-status"}), CALL)
        .await
    {
        if c["mode"] != "none" {
            return false;
        }
    }
    let objects = json!({"execute": "qom-list", "arguments": {"path": "/objects"}});
    match lv.qmp(domain, &objects, CALL).await {
        Ok(v) => !v
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o["name"] == "f2"),
        Err(_) => true,
    }
}
