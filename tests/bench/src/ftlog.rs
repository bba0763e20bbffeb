//! Reading a lab host's ftd log: when a domain's state changed, and how long each
//! COLO step took. The failover split (detection vs. takeover) is read from here:
//! ftd logs every state change with a microsecond UTC timestamp, so the survivor's
//! own clock says when it noticed, without polling it over D-Bus while it works.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    pub fn read(path: &Path, domain: &str) -> DomainLog {
        parse(&std::fs::read_to_string(path).unwrap_or_default(), domain)
    }

    /// The first change at or after `t` leaving one of `from`.
    pub fn first_change_from(&self, t: SystemTime, from: &[&str]) -> Option<&Change> {
        self.changes
            .iter()
            .find(|c| c.at >= t && from.contains(&c.from.as_str()))
    }

    /// The first step `step` done at or after `t`.
    pub fn step_after(&self, t: SystemTime, step: &str) -> Option<&StepDone> {
        self.steps.iter().find(|s| s.at >= t && s.step == step)
    }
}

pub fn parse(text: &str, domain: &str) -> DomainLog {
    let mut log = DomainLog::default();
    for raw in text.lines() {
        let line = strip_ansi(raw);
        let Some(at) = line.split_whitespace().next().and_then(parse_time) else {
            continue;
        };
        if kv(&line, "domain") != Some(domain) {
            continue;
        }
        if line.contains(" state changed ") {
            if let (Some(from), Some(to)) = (kv(&line, "from"), kv(&line, "state")) {
                log.changes.push(Change {
                    at,
                    from: from.into(),
                    to: to.into(),
                });
            }
        } else if line.contains(" step done ") {
            if let (Some(step), Some(ms)) = (kv(&line, "step"), kv(&line, "ms")) {
                if let Ok(ms) = ms.parse() {
                    log.steps.push(StepDone {
                        at,
                        step: step.into(),
                        ms,
                    });
                }
            }
        }
    }
    log
}

fn kv<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// The text without terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\x1b' && it.peek() == Some(&'[') {
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
    }

    #[test]
    fn state_changes_and_steps_of_one_domain() {
        let text = "\x1b[2m2026-11-25T08:38:45.078772Z\x1b[0m \x1b[32m INFO\x1b[0m state changed \
                    \x1b[3mdomain\x1b[0m\x1b[2m=\x1b[0mbench \x1b[3mrole\x1b[0m\x1b[2m=\x1b[0msecondary \
                    \x1b[3mfrom\x1b[0m\x1b[2m=\x1b[0msecondary \
                    \x1b[3mstate\x1b[0m\x1b[2m=\x1b[0mtaking-over \x1b[3mevent\x1b[0m\x1b[2m=\x1b[0mPeerLost\n\
                    2026-11-25T08:38:45.100000Z  INFO state changed domain=other from=secondary state=taking-over\n\
                    garbage line\n\
                    2026-11-25T08:38:45.400000Z  INFO step done domain=bench step=TakeOver ms=321\n";
        let log = parse(text, "bench");
        assert_eq!(log.changes.len(), 1);
        assert_eq!(
            (log.changes[0].from.as_str(), log.changes[0].to.as_str()),
            ("secondary", "taking-over")
        );
        let t0 = parse_time("2026-11-25T08:38:45Z").unwrap();
        assert!(log.first_change_from(t0, &["secondary"]).is_some());
        assert!(log.first_change_from(t0, &["protected"]).is_none());
        assert_eq!(log.step_after(t0, "TakeOver").unwrap().ms, 321);
        let later = parse_time("2026-11-25T08:38:46Z").unwrap();
        assert!(log.step_after(later, "TakeOver").is_none());
    }
}
