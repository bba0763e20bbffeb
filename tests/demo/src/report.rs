//! What the demo found: its phases, the table printed at the end, and the error
//! for a broken guarantee (whose short reason ends up in `RESULT fail reason=...`).

pub use ftvirt_lab::writer::Broken;
use ftvirt_lab::writer::Stats;
use std::time::{Duration, Instant};

/// A broken guarantee (see [`Broken`]) as the error of a phase.
pub fn broken(reason: impl Into<String>, detail: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Broken::new(reason, detail))
}

/// `reason=` of the RESULT line: a broken guarantee's own reason, else the error
/// chain, without spaces.
pub fn reason_of(e: &anyhow::Error) -> String {
    let r = e
        .chain()
        .find_map(|c| c.downcast_ref::<Broken>())
        .map(|b| b.reason.clone())
        .unwrap_or_else(|| format!("{e:#}"));
    let r: String = r
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .take(240)
        .collect();
    if r.is_empty() {
        "unknown".into()
    } else {
        r
    }
}

/// One row of the table.
#[derive(Debug)]
pub struct Phase {
    pub name: &'static str,
    /// Client replies are counted from here to the next phase's start.
    pub start: Instant,
    /// The phase's own measured time (see the legend), once reached.
    pub time: Option<Duration>,
    pub checkpoints: Option<u64>,
    /// `LAST` read back after a failover.
    pub last: Option<u64>,
    pub note: String,
}

/// The phases so far, in order.
#[derive(Debug, Default)]
pub struct Report {
    pub phases: Vec<Phase>,
}

impl Report {
    pub fn begin(&mut self, name: &'static str) -> &mut Phase {
        self.begin_at(name, Instant::now())
    }

    pub fn begin_at(&mut self, name: &'static str, start: Instant) -> &mut Phase {
        self.phases.push(Phase {
            name,
            start,
            time: None,
            checkpoints: None,
            last: None,
            note: String::new(),
        });
        self.phases.last_mut().expect("just pushed")
    }

    pub fn current(&mut self) -> Option<&mut Phase> {
        self.phases.last_mut()
    }

    /// The table, with the client's record; `end` closes the last phase and
    /// `failed` marks it as the one where the demo stopped.
    pub fn table(&self, stats: &Stats, end: Instant, failed: bool) -> String {
        let mut rows = vec![[
            "phase",
            "time ms",
            "checkpoints",
            "replies",
            "acked",
            "found (LAST)",
            "TCP kept",
            "rtt ms p50/max",
            "note",
        ]
        .map(String::from)];
        for (i, p) in self.phases.iter().enumerate() {
            let last_row = i + 1 == self.phases.len();
            let to = self.phases.get(i + 1).map(|n| n.start).unwrap_or(end);
            let mut rtts: Vec<Duration> = stats.replies_in(p.start, to).map(|r| r.rtt()).collect();
            rtts.sort_unstable();
            let rtt = match (rtts.get(rtts.len() / 2), rtts.last()) {
                (Some(m), Some(x)) => format!("{}/{}", m.as_millis(), x.as_millis()),
                _ => "-".into(),
            };
            let opt = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
            rows.push([
                if failed && last_row {
                    format!("{} (FAILED)", p.name)
                } else {
                    p.name.to_string()
                },
                p.time.map_or("-".into(), |t| t.as_millis().to_string()),
                opt(p.checkpoints),
                rtts.len().to_string(),
                stats.acked_before(to).to_string(),
                opt(p.last),
                if stats.broken_before(to) { "no" } else { "yes" }.into(),
                rtt,
                p.note.clone(),
            ]);
        }
        let mut width = [0usize; 9];
        for r in &rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for (k, r) in rows.iter().enumerate() {
            let mut line = String::new();
            for (j, (c, w)) in r.iter().zip(width).enumerate() {
                match j {
                    0 | 8 => line.push_str(&format!("{c:<w$}")),
                    _ => line.push_str(&format!("{c:>w$}")),
                }
                line.push_str("  ");
            }
            out.push_str(line.trim_end());
            out.push('\n');
            if k == 0 {
                let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
                out.push_str(&rule.join("  "));
                out.push('\n');
            }
        }
        out
    }
}

/// What the columns mean, printed under the table.
pub const LEGEND: &str = "\
time ms: boot = guest boot; protect = Enable until a protected and b secondary; protected = \
time run protected; failover = power cut of a until the client's first reply; re-protect = ftd \
on the restarted a up until b protected and a secondary; fail back = Failover call until a \
protected and b secondary.
replies: replies the client received in the phase (its writes and the demo's checks); acked: writes acknowledged (DURABLE) so far; \
found (LAST): highest record read back from the guest's disk after a failover; TCP kept: the \
client's one connection still open (it never reconnects).";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_have_no_spaces() {
        let e = broken("lost=3", "3 acknowledged writes are missing");
        assert_eq!(reason_of(&e), "lost=3");
        let e = anyhow::anyhow!("host a: gone away").context("killing host a");
        assert_eq!(reason_of(&e), "killing_host_a:_host_a:_gone_away");
        let e = broken("timeout:b_degraded", "x");
        let e = e.context("waiting");
        assert_eq!(reason_of(&e), "timeout:b_degraded");
    }

    #[test]
    fn the_table_has_one_row_per_phase() {
        let mut r = Report::default();
        r.begin("protect").time = Some(Duration::from_millis(1234));
        r.begin("protected").checkpoints = Some(3);
        let t = r.table(&Stats::default(), Instant::now(), true);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(
            lines[2].starts_with("protect ") && lines[2].contains("1234"),
            "{t}"
        );
        assert!(lines[3].starts_with("protected (FAILED)"), "{t}");
        assert!(lines[3].contains(" yes"), "{t}");
    }
}
