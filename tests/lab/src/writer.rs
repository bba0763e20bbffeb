//! The writing client of the demo, the matrix, the bench and the fault tests: ONE
//! long-lived TCP connection to the guest, owned by one thread that sends `PUT n
//! payload` (n = 1, 2, ...) at a [`Pace`] and records every request it makes: when
//! it was sent, when the reply came, and what came back ([`Stats`]).
//!
//! A write counts as acknowledged only when `DURABLE n` came back. The thread never
//! reconnects: an I/O error or EOF marks the connection broken for good, which is
//! exactly what must be shown not to happen. The main flow waits on the record
//! ([`Writer::wait_acked`], [`Writer::wait_reply_sent_after`],
//! [`Writer::wait_stalled`]), pauses the thread (the in-flight request finishes
//! first), sends its own requests over the same connection ([`Writer::ask`]) or
//! checks every write ([`verify_writes`]), resumes it and finally stops it.

mod stats;
mod verify;

pub use stats::{Outcome, Req, Stats};
pub use verify::{verify_writes, Broken, Verified};

use crate::error::{LabError, Result};
use crate::wait::{wait_until, Look};
use crate::GuestConn;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long [`Writer::stop`] waits for a request in flight.
const STOP_WAIT: Duration = Duration::from_secs(5);
/// How often the waits look at the record (the times they report come from the
/// record itself, not from this).
const LOOK_EVERY: Duration = Duration::from_millis(5);

/// The payload of record `n` (so that any record can be checked with `GET n`).
pub fn payload(n: u64) -> String {
    format!("ftdemo-record-{n}")
}

/// How often the client writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// One write every period (the next one at once when a reply took longer):
    /// the demo's, the matrix's and the bench's client.
    Every(Duration),
    /// The next write right after the previous reply (after a breath of 30 ms):
    /// a request is nearly always in flight, so a checkpoint or a fault always
    /// catches one.
    BackToBack,
}

impl Pace {
    /// One write every 50 ms.
    pub const STEADY: Pace = Pace::Every(Duration::from_millis(50));

    /// When the write after one sent at `sent` and answered now may go.
    fn next(self, sent: Instant) -> Instant {
        match self {
            Pace::Every(period) => sent + period,
            Pace::BackToBack => Instant::now() + Duration::from_millis(30),
        }
    }
}

enum Cmd {
    Pause(mpsc::Sender<()>),
    Resume,
    Request(String, mpsc::Sender<Outcome>),
    Stop,
}

/// Handle on the client thread.
#[derive(Debug)]
pub struct Writer {
    tx: mpsc::Sender<Cmd>,
    stats: Arc<Mutex<Stats>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Hand `conn` (on which `already_sent` requests were made) to a new thread
    /// that starts writing at once, every 50 ms ([`Pace::STEADY`]), from record
    /// `last_record + 1` (the guest's `LAST`: records are numbered in order on its
    /// disk).
    pub fn start(conn: GuestConn, already_sent: u64, last_record: u64) -> Result<Writer> {
        Writer::start_paced(conn, already_sent, last_record, Pace::STEADY)
    }

    /// [`Writer::start`] at another pace.
    pub fn start_paced(
        conn: GuestConn,
        already_sent: u64,
        last_record: u64,
        pace: Pace,
    ) -> Result<Writer> {
        let stats = Arc::new(Mutex::new(Stats {
            sent: already_sent,
            acked: last_record,
            ..Stats::default()
        }));
        let (tx, rx) = mpsc::channel();
        let st = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("lab-writer".into())
            .spawn(move || client_loop(conn, pace, rx, st))
            .map_err(|e| LabError::Guest(format!("starting the client thread: {e}")))?;
        Ok(Writer {
            tx,
            stats,
            thread: Some(thread),
        })
    }

    /// The client's record so far (hold it briefly: the thread waits for it).
    pub fn stats(&self) -> MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long the request now in flight has waited for its reply.
    pub fn waiting(&self) -> Duration {
        self.stats().waiting()
    }

    /// Stop writing; returns once no request is in flight.
    pub fn pause(&self) -> Result<()> {
        let (ack, done) = mpsc::channel();
        self.send(Cmd::Pause(ack))?;
        done.recv_timeout(Duration::from_secs(120))
            .map_err(|_| LabError::Guest("the client thread did not pause within 120 s".into()))
    }

    pub fn resume(&self) -> Result<()> {
        self.send(Cmd::Resume)
    }

    /// One request of the main flow, on the same connection.
    pub fn request(&self, line: &str) -> Result<Outcome> {
        let (reply, rx) = mpsc::channel();
        self.send(Cmd::Request(line.to_string(), reply))?;
        rx.recv().map_err(|_| {
            LabError::Guest(format!("the client thread ended before answering {line:?}"))
        })
    }

    /// Wait until `more` records beyond those acknowledged now are; returns the
    /// highest. A broken connection or a refused write ends the wait at once.
    pub fn wait_acked(&self, more: u64, timeout: Duration) -> Result<u64> {
        let want = self.stats().acked + more;
        self.wait_for(&format!("record {want} to be acknowledged"), timeout, |s| {
            Look::when((s.acked >= want).then_some(s.acked), || {
                format!("{} acknowledged", s.acked)
            })
        })
    }

    /// Wait for the first reply to a request sent at or after `t` (the first
    /// answer that certainly came after a fault at `t`). A broken connection ends
    /// the wait at once.
    pub fn wait_reply_sent_after(&self, t: Instant, timeout: Duration) -> Result<Req> {
        self.wait_for("a reply to a request sent after the event", timeout, |s| {
            Look::when(s.first_reply_sent_after(t).cloned(), || {
                format!("{} acknowledged, in flight for {:?}", s.acked, s.waiting())
            })
        })
    }

    /// Wait until the request in flight has waited `at_least` for its reply (the
    /// guest is stopped, e.g. for a checkpoint); returns how long it has.
    pub fn wait_stalled(&self, at_least: Duration, timeout: Duration) -> Result<Duration> {
        self.wait_for(
            &format!("a request to wait {at_least:?} for its reply"),
            timeout,
            |s| {
                let w = s.waiting();
                Look::when((w >= at_least).then_some(w), || {
                    format!("{} acknowledged", s.acked)
                })
            },
        )
    }

    /// Look at the record until `look` is ready; the connection breaking or a
    /// write being refused fails the wait at once.
    fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut look: impl FnMut(&Stats) -> Look<T>,
    ) -> Result<T> {
        wait_until(what, timeout, LOOK_EVERY, || {
            let s = self.stats();
            match look(&s) {
                Look::Ready(v) => Look::Ready(v),
                other => match s.trouble() {
                    Err(b) => Look::Failed(b.detail),
                    Ok(()) => other,
                },
            }
        })
    }

    /// Stop the thread and return the full record (a thread still blocked on a
    /// reply after a few seconds is left to end with the process).
    pub fn stop(mut self) -> Stats {
        self.shutdown();
        let mut s = self.stats();
        std::mem::take(&mut *s)
    }

    fn send(&self, c: Cmd) -> Result<()> {
        self.tx
            .send(c)
            .map_err(|_| LabError::Guest("the client thread has ended".into()))
    }

    /// Ask the thread to end and wait for it a little: a request blocked on a
    /// silent connection only ends with its reply time-out, and nothing waits for that.
    fn shutdown(&mut self) {
        let _ = self.tx.send(Cmd::Stop);
        let Some(t) = self.thread.take() else {
            return;
        };
        let ended = wait_until("the client thread to end", STOP_WAIT, LOOK_EVERY, || {
            Look::holds(t.is_finished(), || "a request is still in flight".into())
        });
        if ended.is_ok() && t.join().is_err() {
            let mut s = self.stats();
            s.broken
                .get_or_insert_with(|| "the client thread panicked".into());
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn client_loop(mut conn: GuestConn, pace: Pace, rx: mpsc::Receiver<Cmd>, stats: Arc<Mutex<Stats>>) {
    let lock = || stats.lock().unwrap_or_else(|p| p.into_inner());
    let mut running = true;
    let mut next_at = Instant::now();
    loop {
        let wait = if running {
            next_at.saturating_duration_since(Instant::now())
        } else {
            Duration::from_secs(3600)
        };
        match rx.recv_timeout(wait) {
            Ok(Cmd::Pause(ack)) => {
                running = false;
                let _ = ack.send(());
            }
            Ok(Cmd::Resume) => {
                running = true;
                next_at = Instant::now();
            }
            Ok(Cmd::Request(line, reply)) => {
                let out = exchange(&mut conn, &line, None, &lock);
                let _ = reply.send(out);
            }
            Ok(Cmd::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                let (n, halted) = {
                    let s = lock();
                    (s.acked + 1, s.broken.is_some() || s.refused.is_some())
                };
                if halted {
                    // Never reconnect, never write past a refused record.
                    running = false;
                    continue;
                }
                let sent = Instant::now();
                exchange(
                    &mut conn,
                    &format!("PUT {n} {}", payload(n)),
                    Some(n),
                    &lock,
                );
                next_at = pace.next(sent);
            }
        }
    }
}

/// Send one request and record it. A broken connection stays broken.
fn exchange<'a>(
    conn: &mut GuestConn,
    line: &str,
    put: Option<u64>,
    lock: &impl Fn() -> MutexGuard<'a, Stats>,
) -> Outcome {
    if let Some(why) = lock().broken.clone() {
        return Outcome::Broken(format!("connection broken earlier: {why}"));
    }
    let sent = Instant::now();
    lock().in_flight = Some(sent);
    let res = conn.request_timed(line);
    let done = Instant::now();
    let mut s = lock();
    s.in_flight = None;
    s.sent += 1;
    let outcome = match res {
        Err(e) => {
            s.broken = Some(e.to_string());
            Outcome::Broken(e.to_string())
        }
        Ok((reply, _)) => match put {
            Some(n) if reply.trim() == format!("DURABLE {n}") => {
                s.acked = n;
                Outcome::Ok(reply)
            }
            Some(_) => {
                s.refused
                    .get_or_insert_with(|| format!("{line:?} got {reply:?}"));
                Outcome::Refused(reply)
            }
            None if reply.starts_with("ERR") => Outcome::Refused(reply),
            None => Outcome::Ok(reply),
        },
    };
    s.log.push(Req {
        line: line.to_string(),
        put,
        sent,
        done,
        outcome: outcome.clone(),
    });
    outcome
}
