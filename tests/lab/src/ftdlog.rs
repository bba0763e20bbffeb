//! Reading a lab host's ftd log (`log/ftd.log`, ftd's stderr), for the tests and
//! the bench: when something was logged, and what the log says about one domain
//! (its state changes and how long each COLO step took).
//!
//! ftd writes plain text when its stderr is not a terminal (as in the lab): each
//! line starts with a UTC timestamp with microseconds, then the level, the message
//! and `key=value` fields. The lab's hosts share one clock, so the times of
//! different hosts' logs compare.

use crate::error::{LabError, Result};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One host's ftd log, as read once.
#[derive(Debug, Clone, Default)]
pub struct FtdLog {
    pub text: String,
}

impl FtdLog {
    /// Read the log at `path`; a missing log is an error (a test must not pass
    /// because it looked at the wrong file).
    pub fn read(path: &Path) -> Result<FtdLog> {
        let text = std::fs::read_to_string(path).map_err(|e| LabError::io("reading", path, e))?;
        Ok(FtdLog { text })
    }

    /// Every line with its time (lines without one, e.g. a panic's, are skipped).
    pub fn records(&self) -> impl Iterator<Item = (SystemTime, &str)> {
        self.text
            .lines()
            .filter_map(|l| Some((parse_time(l.split_whitespace().next()?)?, l)))
    }

    /// When the first line containing every one of `needles` was logged.
    pub fn first(&self, needles: &[&str]) -> Option<SystemTime> {
        self.records()
            .find(|(_, l)| needles.iter().all(|n| l.contains(n)))
            .map(|(t, _)| t)
    }

    /// What the log says about `domain`.
    pub fn domain(&self, domain: &str) -> DomainLog {
        let mut log = DomainLog::default();
        for (at, line) in self.records() {
            if kv(line, "domain") != Some(domain) {
                continue;
            }
            if line.contains(" state changed ") {
                if let (Some(from), Some(to)) = (kv(line, "from"), kv(line, "state")) {
                    log.changes.push(Change {
                        at,
                        from: from.into(),
                        to: to.into(),
                    });
                }
            } else if line.contains(" step done ") {
                if let Some(ms) = kv(line, "ms").and_then(|ms| ms.parse().ok()) {
                    log.steps.push(StepDone {
                        at,
                        step: kv(line, "step").unwrap_or_default().into(),
                        ms,
                    });
                }
            }
        }
        log
    }
}

/// `state changed domain=D role=R from=F state=T` (states by their API names).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub at: SystemTime,
    pub from: String,
    pub to: String,
}

/// `step done domain=D step=S ms=N`.
#[derive(Debug, Clone, PartialEq)]
pub struct StepDone {
    pub at: SystemTime,
    pub step: String,
    pub ms: u64,
}

/// What the log says about one domain.
#[derive(Debug, Default)]
pub struct DomainLog {
    pub changes: Vec<Change>,
    pub steps: Vec<StepDone>,
}

impl DomainLog {
    /// The first change at or after `t` leaving one of `from`.
    pub fn first_change_from(&self, t: SystemTime, from: &[&str]) -> Option<&Change> {
        self.changes
            .iter()
            .find(|c| c.at >= t && from.contains(&c.from.as_str()))
    }

    /// The first change at or after `t` into state `to`.
    pub fn first_change_to(&self, t: SystemTime, to: &str) -> Option<&Change> {
        self.changes.iter().find(|c| c.at >= t && c.to == to)
    }

    /// The first step `step` done at or after `t`.
    pub fn step_after(&self, t: SystemTime, step: &str) -> Option<&StepDone> {
        self.steps.iter().find(|s| s.at >= t && s.step == step)
    }
}

/// The value of `key=value` in a log line.
pub fn kv<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// Milliseconds from `from` to `to` (negative when `to` is earlier).
pub fn ms_between(from: SystemTime, to: SystemTime) -> i64 {
    match to.duration_since(from) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// `2026-11-25T08:38:45.078772Z` (RFC 3339, UTC, as tracing writes it).
pub fn parse_time(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|x| x.parse::<u64>().ok());
    let (h, mi, se) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let digits: String = frac.chars().take(9).collect();
    let nanos: u64 = format!("{digits:0<9}").parse().ok()?;
    let days = u64::try_from(days_from_civil(y, mo, da)).ok()?;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_with_microseconds() {
        let t = parse_time("1970-01-02T00:00:01.5Z").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_millis(86_401_500));
        let t = parse_time("2026-11-25T08:38:45.078772Z").unwrap();
        let secs = t.duration_since(UNIX_EPOCH).unwrap();
        // date -u -d 2026-11-25T08:38:45Z +%s
        assert_eq!(secs.as_secs(), 1_795_595_925);
        assert_eq!(secs.subsec_micros(), 78_772);
        assert!(parse_time("2026-13-01T00:00:00Z").is_none());
        assert!(parse_time("not a time").is_none());
        let a = parse_time("2026-11-25T12:24:38.130703Z").unwrap();
        let b = parse_time("2026-11-25T12:24:39.000000Z").unwrap();
        assert_eq!((ms_between(a, b), ms_between(b, a)), (869, -869));
    }

    const LOG: &str = "\
2026-11-25T08:38:45.078772Z  INFO state changed domain=bench role=secondary from=secondary state=taking-over event=PeerLost
2026-11-25T08:38:45.100000Z  INFO state changed domain=other from=secondary state=taking-over
thread 'main' panicked at src/main.rs:1:1
2026-11-25T08:38:45.200000Z  INFO step started domain=bench step=TakeOver
2026-11-25T08:38:45.400000Z  INFO step done domain=bench step=TakeOver ms=321
";

    #[test]
    fn state_changes_and_steps_of_one_domain() {
        let log = FtdLog { text: LOG.into() }.domain("bench");
        assert_eq!(log.changes.len(), 1);
        assert_eq!(
            (log.changes[0].from.as_str(), log.changes[0].to.as_str()),
            ("secondary", "taking-over")
        );
        let t0 = parse_time("2026-11-25T08:38:45Z").unwrap();
        assert!(log.first_change_from(t0, &["secondary"]).is_some());
        assert!(log.first_change_from(t0, &["protected"]).is_none());
        assert!(log.first_change_to(t0, "taking-over").is_some());
        assert_eq!(log.step_after(t0, "TakeOver").unwrap().ms, 321);
        let later = parse_time("2026-11-25T08:38:46Z").unwrap();
        assert!(log.step_after(later, "TakeOver").is_none());
    }

    #[test]
    fn the_first_line_with_every_needle_gives_the_time() {
        let log = FtdLog { text: LOG.into() };
        let t = log.first(&["step started", "step=TakeOver"]).unwrap();
        assert_eq!(t, parse_time("2026-11-25T08:38:45.2Z").unwrap());
        assert_eq!(log.first(&["step started", "step=Freeze"]), None);
        assert_eq!(log.first(&["panicked"]), None, "a line without a time");
    }

    #[test]
    fn a_missing_log_is_an_error() {
        let e = FtdLog::read(Path::new("/nonexistent/ftd.log")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ftd.log"), "{e}");
    }
}
