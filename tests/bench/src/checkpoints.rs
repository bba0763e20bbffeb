//! Checkpoints as the primary's QEMU reports them. ftd counts them the same way
//! (QEMU 7.2 has no checkpoint counter in QMP; `query-migrate` is not read here):
//! every COLO checkpoint stops the primary guest and resumes it: the `STOP` and `RESUME` monitor events, stamped by QEMU in
//! microseconds, give the number of checkpoints and the guest's pause in each.
//! The events come through the host's libvirtd, by ftd's own watcher
//! ([`ftd::qmp_events`]).

use ftd::qmp_events::{QmpEvent, Watcher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::UnboundedReceiver;

/// Checkpoints in a window of time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    pub secs: f64,
    /// The guest's pause of each checkpoint that ended in the window, ms.
    pub pauses_ms: Vec<f64>,
}

impl Window {
    pub fn per_minute(&self) -> f64 {
        if self.secs <= 0.0 {
            return f64::NAN;
        }
        self.pauses_ms.len() as f64 * 60.0 / self.secs
    }
}

/// Watches one host's QEMU monitor events.
#[derive(Debug)]
pub struct Checkpoints {
    _watcher: Watcher,
    rx: UnboundedReceiver<QmpEvent>,
    seen: Vec<QmpEvent>,
}

impl Checkpoints {
    pub fn watch(uri: &str) -> Checkpoints {
        let (w, rx) = ftd::qmp_events::watch(uri);
        Checkpoints {
            _watcher: w,
            rx,
            seen: Vec::new(),
        }
    }

    /// The checkpoints of `domain` between `from` and `to` (events may lag a
    /// little: call this a moment after `to`).
    pub fn window(&mut self, domain: &str, from: SystemTime, to: SystemTime) -> Window {
        while let Ok(ev) = self.rx.try_recv() {
            self.seen.push(ev);
        }
        let since = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let (from, to) = (since(from), since(to));
        let events: Vec<(Duration, &str)> = self
            .seen
            .iter()
            .filter(|e| e.domain == domain)
            .map(|e| (e.at, e.event.as_str()))
            .collect();
        Window {
            secs: (to.saturating_sub(from)).as_secs_f64(),
            pauses_ms: pauses(&events, from, to),
        }
    }
}

/// Pause of each `STOP` ... `RESUME` pair whose `RESUME` falls in `[from, to)`, ms.
pub fn pauses(events: &[(Duration, &str)], from: Duration, to: Duration) -> Vec<f64> {
    let mut stopped = None;
    let mut out = Vec::new();
    for &(at, ev) in events {
        match ev {
            "STOP" => stopped = Some(at),
            "RESUME" => {
                if let Some(s) = stopped.take() {
                    if at >= from && at < to {
                        out.push(at.saturating_sub(s).as_secs_f64() * 1000.0);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_pair_stop_with_resume_inside_the_window() {
        let ms = Duration::from_millis;
        let ev = [
            (ms(900), "STOP"),
            (ms(1010), "RESUME"), // straddles the start: counted, it ends inside
            (ms(2000), "STOP"),
            (ms(2150), "RESUME"),
            (ms(2500), "RESUME"), // no STOP before it: not a checkpoint
            (ms(3900), "STOP"),
            (ms(4100), "RESUME"), // ends after the window
        ];
        let p = pauses(&ev, ms(1000), ms(4000));
        assert_eq!(p.len(), 2);
        assert!(
            (p[0] - 110.0).abs() < 1e-6 && (p[1] - 150.0).abs() < 1e-6,
            "{p:?}"
        );
        let w = Window {
            secs: 30.0,
            pauses_ms: p,
        };
        assert_eq!(w.per_minute(), 4.0);
    }
}
