//! The writing client of the demo, the benchmark and the fault tests: ONE
//! long-lived TCP connection to the guest, owned by one thread that sends `PUT n
//! payload` (n = 1, 2, ...) every ~50 ms and records every request it makes: when
//! it was sent, when the reply came, and what came back.
//!
//! A write counts as acknowledged only when `DURABLE n` came back. The thread never
//! reconnects: an I/O error or EOF marks the connection broken for good, which is
//! exactly what must be shown not to happen. The main flow pauses it (the
//! in-flight request finishes first), sends its own requests over the same
//! connection (`INFO`, `LAST`, `GET`, `SEQ`), resumes it and finally stops it.

use crate::GuestConn;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Pace of the writes.
const PERIOD: Duration = Duration::from_millis(50);
/// How long [`Writer::stop`] waits for a request in flight.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// The payload of record `n` (so that any record can be checked with `GET n`).
pub fn payload(n: u64) -> String {
    format!("ftdemo-record-{n}")
}

/// What one request got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The expected reply (for a `PUT n`: `DURABLE n`).
    Ok(String),
    /// A reply, but not the expected one (e.g. `ERR expected 7 got 9`).
    Refused(String),
    /// No reply: I/O error, timeout or EOF. The connection is gone.
    Broken(String),
}

/// One request on the connection.
#[derive(Debug, Clone)]
pub struct Req {
    pub line: String,
    /// The record number of a `PUT`, `None` for the main flow's own requests.
    pub put: Option<u64>,
    pub sent: Instant,
    pub done: Instant,
    pub outcome: Outcome,
}

impl Req {
    pub fn ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_))
    }
    pub fn rtt(&self) -> Duration {
        self.done - self.sent
    }
}

/// Everything the client did so far.
#[derive(Debug, Default)]
pub struct Stats {
    pub log: Vec<Req>,
    /// Requests sent on this connection, including those before the thread started.
    pub sent: u64,
    /// Highest `n` for which `DURABLE n` came back (writes are acknowledged in order).
    pub acked: u64,
    /// Why the connection broke, if it did.
    pub broken: Option<String>,
    /// The first unexpected reply to a `PUT`, if any (writes stop there).
    pub refused: Option<String>,
}

impl Stats {
    /// Highest acknowledged write whose `DURABLE` came back before `t`.
    pub fn acked_before(&self, t: Instant) -> u64 {
        self.log
            .iter()
            .filter(|r| r.ok() && r.done < t)
            .filter_map(|r| r.put)
            .max()
            .unwrap_or(0)
    }

    /// The first successful reply to a request sent at or after `t`: the survivor's
    /// answer for sure (a reply that was in flight when the primary died may still
    /// arrive after `t` without any failover having happened).
    pub fn first_reply_sent_after(&self, t: Instant) -> Option<&Req> {
        self.log.iter().find(|r| r.ok() && r.sent >= t)
    }

    /// The last successful reply that came back before `t`.
    pub fn last_reply_before(&self, t: Instant) -> Option<&Req> {
        self.log.iter().rev().find(|r| r.ok() && r.done < t)
    }

    /// Successful replies in `[from, to)`.
    pub fn replies_in(&self, from: Instant, to: Instant) -> impl Iterator<Item = &Req> {
        self.log
            .iter()
            .filter(move |r| r.ok() && r.done >= from && r.done < to)
    }

    /// Did the connection break before `t`?
    pub fn broken_before(&self, t: Instant) -> bool {
        self.log
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Broken(_)) && r.done < t)
    }

    /// Longest time without any successful reply in `[from, to)` (the guest-visible
    /// interruption), counted from the last reply before `from`.
    pub fn longest_gap(&self, from: Instant, to: Instant) -> Duration {
        let mut prev = self.last_reply_before(from).map(|r| r.done).unwrap_or(from);
        let mut gap = Duration::ZERO;
        for r in self.replies_in(from, to) {
            gap = gap.max(r.done - prev);
            prev = r.done;
        }
        gap.max(to.saturating_duration_since(prev))
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
    /// that starts writing at once, from record `last_record + 1` (the guest's
    /// `LAST`: records are numbered in order on its disk).
    pub fn start(conn: GuestConn, already_sent: u64, last_record: u64) -> std::io::Result<Writer> {
        let stats = Arc::new(Mutex::new(Stats {
            sent: already_sent,
            acked: last_record,
            ..Stats::default()
        }));
        let (tx, rx) = mpsc::channel();
        let st = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("lab-writer".into())
            .spawn(move || client_loop(conn, rx, st))?;
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

    /// Stop writing; returns once no request is in flight.
    pub fn pause(&self) -> anyhow::Result<()> {
        let (ack, done) = mpsc::channel();
        self.send(Cmd::Pause(ack))?;
        done.recv_timeout(Duration::from_secs(120))
            .map_err(|_| anyhow::anyhow!("the client thread did not pause within 120 s"))
    }

    pub fn resume(&self) -> anyhow::Result<()> {
        self.send(Cmd::Resume)
    }

    /// One request of the main flow, on the same connection.
    pub fn request(&self, line: &str) -> anyhow::Result<Outcome> {
        let (reply, rx) = mpsc::channel();
        self.send(Cmd::Request(line.to_string(), reply))?;
        rx.recv()
            .map_err(|_| anyhow::anyhow!("the client thread ended before answering {line:?}"))
    }

    /// Stop the thread and return the full record (a thread still blocked on a
    /// reply after a few seconds is left to end with the process).
    pub fn stop(mut self) -> Stats {
        self.shutdown();
        let mut s = self.stats();
        std::mem::take(&mut *s)
    }

    fn send(&self, c: Cmd) -> anyhow::Result<()> {
        self.tx
            .send(c)
            .map_err(|_| anyhow::anyhow!("the client thread has ended"))
    }

    /// Ask the thread to end and wait for it a little: a request blocked on a
    /// silent connection only ends with its reply time-out, and nothing waits for that.
    fn shutdown(&mut self) {
        let _ = self.tx.send(Cmd::Stop);
        let Some(t) = self.thread.take() else {
            return;
        };
        let t0 = Instant::now();
        while !t.is_finished() && t0.elapsed() < STOP_WAIT {
            std::thread::sleep(Duration::from_millis(10));
        }
        if t.is_finished() && t.join().is_err() {
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

fn client_loop(mut conn: GuestConn, rx: mpsc::Receiver<Cmd>, stats: Arc<Mutex<Stats>>) {
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
                next_at = sent + PERIOD;
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
    let res = conn.request_timed(line);
    let done = Instant::now();
    let mut s = lock();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn req(put: Option<u64>, done: Instant, ok: bool) -> Req {
        Req {
            line: String::new(),
            put,
            sent: done,
            done,
            outcome: if ok {
                Outcome::Ok("x".into())
            } else {
                Outcome::Broken("eof".into())
            },
        }
    }

    #[test]
    fn windows_and_gaps_are_read_from_the_log() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let s = Stats {
            log: vec![
                req(Some(1), ms(100), true),
                req(Some(2), ms(200), true),
                // Sent before 150 but answered after it: in flight, not the survivor's.
                Req {
                    sent: ms(140),
                    ..req(Some(3), ms(1500), true)
                },
                req(None, ms(1600), true),
                req(Some(4), ms(1700), false),
            ],
            ..Stats::default()
        };
        assert_eq!(s.acked_before(ms(1000)), 2);
        assert_eq!(s.acked_before(ms(2000)), 3);
        assert_eq!(s.first_reply_sent_after(ms(250)).unwrap().done, ms(1600));
        assert_eq!(s.replies_in(ms(0), ms(1600)).count(), 3);
        assert_eq!(
            s.longest_gap(ms(250), ms(1650)),
            Duration::from_millis(1300)
        );
        assert!(!s.broken_before(ms(1700)));
        assert!(s.broken_before(ms(1701)));
    }
}
