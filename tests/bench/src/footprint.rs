//! A process's footprint from `/proc`: resident memory (`VmRSS` of
//! `/proc/<pid>/status`) and CPU time (`utime + stime` of `/proc/<pid>/stat`, all
//! threads) over an interval, as a percentage of one core.

use std::time::{Duration, Instant};

/// What one process used over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Footprint {
    /// The largest `VmRSS` seen in the window, MiB.
    pub rss_mib: f64,
    /// Of which anonymous memory (heap, stacks: `RssAnon`) at that moment, MiB;
    /// the rest is mapped files (the binary and shared libraries, `RssFile`).
    pub anon_mib: f64,
    /// Proportional set size at the end of the window (`Pss` of
    /// `/proc/<pid>/smaps_rollup`): shared library pages divided among the
    /// processes that map them, MiB.
    pub pss_mib: f64,
    /// CPU time over wall time, percent of one core.
    pub cpu_pct: f64,
}

/// Watch `pids` for `window`, sampling every half second; `None` for a process that
/// vanished.
pub fn measure(pids: &[u32], window: Duration) -> Vec<Option<Footprint>> {
    let tick = clock_tick();
    let t0 = Instant::now();
    let start: Vec<Option<u64>> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    let mut rss = vec![(0u64, 0u64); pids.len()];
    loop {
        for (r, &p) in rss.iter_mut().zip(pids) {
            let now = rss_kib(p).unwrap_or((0, 0));
            if now.0 > r.0 {
                *r = now;
            }
        }
        let left = window.saturating_sub(t0.elapsed());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(500)));
    }
    let wall = t0.elapsed().as_secs_f64();
    pids.iter()
        .zip(start)
        .zip(rss)
        .map(|((&p, s), r)| {
            let used = cpu_ticks(p)?.checked_sub(s?)?;
            Some(Footprint {
                rss_mib: r.0 as f64 / 1024.0,
                anon_mib: r.1 as f64 / 1024.0,
                pss_mib: pss_kib(p).unwrap_or(0) as f64 / 1024.0,
                cpu_pct: used as f64 / tick / wall * 100.0,
            })
        })
        .collect()
}

fn clock_tick() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// (`VmRSS`, `RssAnon`) in KiB.
fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((
        status_kib(&s, "VmRSS")?,
        status_kib(&s, "RssAnon").unwrap_or(0),
    ))
}

fn pss_kib(pid: u32) -> Option<u64> {
    status_kib(
        &std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?,
        "Pss",
    )
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    parse_cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `<key>:    9876 kB` out of `/proc/<pid>/status`.
pub fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// `utime + stime` (fields 14 and 15) out of `/proc/<pid>/stat`; the command name
/// (field 2) may hold spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state), so field n is rest[n - 3].
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_and_cpu_are_parsed() {
        let status = "Name:\tftd\nVmPeak:\t  99999 kB\nVmRSS:\t    9876 kB\nRssAnon:\t  3000 kB\nThreads:\t5\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(9876));
        assert_eq!(status_kib(status, "RssAnon"), Some(3000));
        assert_eq!(status_kib("Name: x\n", "VmRSS"), None);
        let stat = "1234 (ftd (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 37 5 0 0 20 0 5 0 999";
        assert_eq!(parse_cpu_ticks(stat), Some(42));
        assert_eq!(parse_cpu_ticks("1234 (ftd) S 1"), None);
    }

    #[test]
    fn this_process_can_be_measured() {
        let me = std::process::id();
        let f = measure(&[me, u32::MAX], Duration::from_millis(50));
        let mine = f[0].expect("this process");
        assert!(mine.rss_mib > 0.0 && mine.cpu_pct >= 0.0, "{mine:?}");
        assert_eq!(f[1], None);
    }
}
