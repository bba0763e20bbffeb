//! A scenario's row, the table of all rows and the last line for scripts:
//! `MATRIX passed=N failed=N lost_writes=N split_brain=N leaked=N`.
//!
//! A row passes when the scenario's body and the runner's checks found nothing
//! wrong: no failure reason, no acknowledged write missing, no split brain, no
//! leaked object, and the client's connection kept wherever it had to be.

use std::time::Duration;

/// What one scenario found.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub scenario: String,
    /// Short reason of the first thing that went wrong (`lost=3`,
    /// `timeout:b_degraded`), with the details in `notes`; `None` if nothing did.
    pub failure: Option<String>,
    /// Fault -> the client's first reply to a request sent after it (the largest
    /// over the guests and faults of the scenario).
    pub failover: Option<Duration>,
    /// Writes acknowledged (`DURABLE n`) to the client, over every guest.
    pub acked: Option<u64>,
    /// Writes read back from the surviving disk (`LAST`), over every guest.
    pub found: Option<u64>,
    /// Acknowledged writes not found.
    pub lost: u64,
    /// The client's connection(s) kept; `None` where the scenario does not
    /// promise it (the guest was not protected yet when its host died).
    pub tcp_kept: Option<bool>,
    /// Objects left behind, each in a few words.
    pub leaked: Vec<String>,
    /// Both copies seen running out of COLO at once, or the client answered by
    /// two servers.
    pub split_brain: bool,
    /// What happened, for people (printed under the table).
    pub notes: Vec<String>,
    pub took: Duration,
}

impl Row {
    pub fn new(scenario: &str) -> Row {
        Row {
            scenario: scenario.to_string(),
            ..Row::default()
        }
    }

    /// Record a failure; the first reason stays the row's reason.
    pub fn fail(&mut self, reason: impl Into<String>, detail: impl Into<String>) {
        let reason: String = reason
            .into()
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .take(60)
            .collect();
        let detail = detail.into();
        if !detail.is_empty() {
            self.notes.push(format!("FAIL {reason}: {detail}"));
        }
        self.failure.get_or_insert(reason);
    }

    pub fn passed(&self) -> bool {
        self.failure.is_none()
            && self.lost == 0
            && !self.split_brain
            && self.leaked.is_empty()
            && self.tcp_kept != Some(false)
    }

    /// `pass` or `FAIL <reason>`.
    pub fn result(&self) -> String {
        if self.passed() {
            return "pass".into();
        }
        let why = self.failure.clone().unwrap_or_else(|| {
            if self.lost > 0 {
                format!("lost={}", self.lost)
            } else if self.split_brain {
                "split_brain".into()
            } else if !self.leaked.is_empty() {
                format!("leaked={}", self.leaked.len())
            } else {
                "tcp_lost".into()
            }
        });
        format!("FAIL {why}")
    }
}

/// The table: one row per scenario, then each row's notes.
pub fn table(rows: &[Row]) -> String {
    let head = [
        "scenario",
        "result",
        "failover ms",
        "acked",
        "found",
        "TCP kept",
        "leaked",
        "split brain",
        "took s",
    ];
    let mut cells: Vec<[String; 9]> = vec![head.map(String::from)];
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    for r in rows {
        cells.push([
            r.scenario.clone(),
            r.result(),
            r.failover.map_or("-".into(), |d| d.as_millis().to_string()),
            opt(r.acked),
            opt(r.found),
            match r.tcp_kept {
                Some(true) => "yes".into(),
                Some(false) => "no".into(),
                None => "-".into(),
            },
            r.leaked.len().to_string(),
            if r.split_brain { "YES" } else { "no" }.into(),
            format!("{:.0}", r.took.as_secs_f64()),
        ]);
    }
    let mut width = [0usize; 9];
    for r in &cells {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (k, r) in cells.iter().enumerate() {
        let mut line = String::new();
        for (j, (c, w)) in r.iter().zip(width).enumerate() {
            if j < 2 {
                line.push_str(&format!("{c:<w$}  "));
            } else {
                line.push_str(&format!("{c:>w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if k == 0 {
            let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&rule.join("  "));
            out.push('\n');
        }
    }
    let noted: Vec<&Row> = rows
        .iter()
        .filter(|r| !r.notes.is_empty() || !r.leaked.is_empty())
        .collect();
    if !noted.is_empty() {
        out.push('\n');
    }
    for r in noted {
        for n in &r.notes {
            out.push_str(&format!("- {}: {n}\n", r.scenario));
        }
        for l in &r.leaked {
            out.push_str(&format!("- {}: LEAKED {l}\n", r.scenario));
        }
    }
    out
}

/// What the columns mean (printed under the table).
pub const LEGEND: &str = "\
failover ms: the fault until the client's first reply to a request sent after it (the \
largest over the scenario's guests and faults; - where nothing failed over). acked: \
writes acknowledged (DURABLE) to the client; found: highest record read back (LAST) \
through the guest from the surviving disk at the end; TCP kept: the client's one \
connection per guest never broke (- where the scenario cannot keep it: the guest was \
not protected yet when its host died). leaked: objects left after Disable and \
tear-down (QMP objects, block nodes and jobs on the survivor, the secondary's domain \
and images, orphan QEMU processes, ftd file descriptors, lab namespaces and \
processes). split brain: both hosts' copies seen running out of COLO at once \
(polled every 200 ms on both hosts), or a reply on the client's connection that only \
another server could have sent.";

/// The last line: `MATRIX passed=N failed=N lost_writes=N split_brain=N leaked=N`
/// (lost writes and leaked objects summed over the rows, split brain counted in
/// rows).
pub fn summary_line(rows: &[Row]) -> String {
    let passed = rows.iter().filter(|r| r.passed()).count();
    format!(
        "MATRIX passed={passed} failed={} lost_writes={} split_brain={} leaked={}",
        rows.len() - passed,
        rows.iter().map(|r| r.lost).sum::<u64>(),
        rows.iter().filter(|r| r.split_brain).count(),
        rows.iter().map(|r| r.leaked.len()).sum::<usize>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_passes_only_when_nothing_is_wrong() {
        let mut r = Row::new("x");
        r.tcp_kept = Some(true);
        assert!(r.passed());
        assert_eq!(r.result(), "pass");
        r.tcp_kept = None;
        assert!(r.passed(), "not promised is not failed");
        r.lost = 2;
        assert_eq!(r.result(), "FAIL lost=2");
        r.lost = 0;
        r.leaked.push("object comp0 on b".into());
        assert_eq!(r.result(), "FAIL leaked=1");
        r.fail("timeout: b degraded", "b never degraded");
        r.fail("second", "");
        assert_eq!(r.result(), "FAIL timeout:_b_degraded");
        assert_eq!(r.notes, vec!["FAIL timeout:_b_degraded: b never degraded"]);
    }

    #[test]
    fn the_table_and_the_last_line_count_rows_and_objects() {
        let mut ok = Row::new("primary-qemu-kill");
        ok.failover = Some(Duration::from_millis(812));
        ok.acked = Some(120);
        ok.found = Some(121);
        ok.tcp_kept = Some(true);
        let mut bad = Row::new("disk-full");
        bad.lost = 3;
        bad.split_brain = true;
        bad.leaked = vec!["a".into(), "b".into()];
        let t = table(&[ok.clone(), bad.clone()]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("scenario"), "{t}");
        assert!(
            lines[2].starts_with("primary-qemu-kill  pass") && lines[2].contains(" 812 "),
            "{t}"
        );
        assert!(
            lines[3].contains("FAIL lost=3") && lines[3].contains("YES"),
            "{t}"
        );
        assert!(t.contains("- disk-full: LEAKED a"), "{t}");
        assert_eq!(
            summary_line(&[ok, bad]),
            "MATRIX passed=1 failed=1 lost_writes=3 split_brain=1 leaked=2"
        );
    }
}
