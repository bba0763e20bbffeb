//! What the partition tests watch: the client's ONE connection writing numbered
//! durable records from its own thread ([`Writer`]), both hosts' copies of the
//! domain sampled from outside through their libvirtd ([`Watcher`]: a copy
//! *serves* when it runs out of COLO), and the order of events in the hosts' ftd
//! logs ([`log_time`]: the lab's hosts share one clock, so their microsecond
//! timestamps compare).

use ftvirt_lab::GuestConn;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The client's record of its writes.
#[derive(Debug, Default, Clone)]
pub struct Writes {
    /// Requests sent on the connection (for the guest's per-connection count).
    pub sent: u64,
    /// Highest record the guest acknowledged (`DURABLE n`; acknowledged in order).
    pub acked: u64,
    /// (record, when its reply came).
    pub replies: Vec<(u64, Instant)>,
    /// The first unexpected reply or broken connection: writes stop there.
    pub bad: Option<String>,
}

impl Writes {
    /// The first reply that came after `t`.
    pub fn first_reply_after(&self, t: Instant) -> Option<Instant> {
        self.replies.iter().map(|r| r.1).find(|d| *d > t)
    }

    /// The longest time without a reply between `from` and the last reply.
    pub fn longest_gap_after(&self, from: Instant) -> Duration {
        let mut prev = from;
        let mut worst = Duration::ZERO;
        for (_, d) in self.replies.iter().filter(|r| r.1 > from) {
            worst = worst.max(*d - prev);
            prev = *d;
        }
        worst
    }
}

/// `PUT n part-n` every ~50 ms on one connection, from a thread, until stopped.
#[derive(Debug)]
pub struct Writer {
    stop: Arc<AtomicBool>,
    writes: Arc<Mutex<Writes>>,
    join: Option<JoinHandle<GuestConn>>,
}

impl Writer {
    /// Take over `conn`, on which `sent` requests were made and records up to
    /// `acked` written.
    pub fn start(mut conn: GuestConn, sent: u64, acked: u64) -> Writer {
        conn.set_timeout(Duration::from_secs(90));
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(Mutex::new(Writes {
            sent,
            acked,
            ..Default::default()
        }));
        let (s, w) = (stop.clone(), writes.clone());
        let join = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let n = w.lock().unwrap().acked + 1;
                w.lock().unwrap().sent += 1;
                let r = conn.request(&format!("PUT {n} part-{n}"));
                let mut g = w.lock().unwrap();
                match r {
                    Ok(r) if r == format!("DURABLE {n}") => {
                        g.acked = n;
                        g.replies.push((n, Instant::now()));
                    }
                    Ok(r) => {
                        g.bad = Some(format!("PUT {n} got {r:?}"));
                        break;
                    }
                    Err(e) => {
                        g.bad = Some(format!("PUT {n}: {e}"));
                        break;
                    }
                }
                drop(g);
                std::thread::sleep(Duration::from_millis(50));
            }
            conn
        });
        Writer {
            stop,
            writes,
            join: Some(join),
        }
    }

    pub fn writes(&self) -> Writes {
        self.writes.lock().unwrap().clone()
    }

    /// Wait until `more` records beyond the current ones are acknowledged.
    pub fn wait_acked(&self, more: u64, timeout: Duration) -> Writes {
        let want = self.writes().acked + more;
        let t0 = Instant::now();
        loop {
            let w = self.writes();
            assert!(w.bad.is_none(), "the client's writes stopped: {:?}", w.bad);
            if w.acked >= want {
                return w;
            }
            assert!(
                t0.elapsed() < timeout,
                "only {} of {want} records acknowledged after {timeout:?}",
                w.acked
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop after the request in flight; the connection and the record.
    pub fn stop(mut self) -> (GuestConn, Writes) {
        self.stop.store(true, Ordering::Relaxed);
        let conn = self.join.take().unwrap().join().expect("writer thread");
        (conn, self.writes())
    }
}

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

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            for d in it.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// When the first line of the ftd log at `path` containing every one of `needles`
/// was logged, if any.
pub fn log_time(path: &std::path::Path, needles: &[&str]) -> Option<SystemTime> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().map(strip_ansi).find_map(|l| {
        needles
            .iter()
            .all(|n| l.contains(n))
            .then(|| parse_utc(l.split_whitespace().next()?))?
    })
}

/// `2026-11-25T12:24:38.130703Z` as a time (days from the date, civil calendar).
fn parse_utc(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, dd) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let micros: i64 = format!("{frac:0<6}")[..6].parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::from_secs(secs as u64) + Duration::from_micros(micros as u64))
}

/// Milliseconds from `from` to `to` (negative when `to` is earlier).
pub fn ms_between(from: SystemTime, to: SystemTime) -> i64 {
    match to.duration_since(from) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

#[test]
fn log_times_parse() {
    let t = parse_utc("1970-01-02T00:00:01.5Z").unwrap();
    assert_eq!(t, UNIX_EPOCH + Duration::from_millis(86_401_500));
    let a = parse_utc("2026-11-25T12:24:38.130703Z").unwrap();
    let b = parse_utc("2026-11-25T12:24:39.000000Z").unwrap();
    assert_eq!(ms_between(a, b), 869);
    assert_eq!(strip_ansi("\u{1b}[2m2026\u{1b}[0m x"), "2026 x");
}
