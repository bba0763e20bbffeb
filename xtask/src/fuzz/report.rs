//! Reading libFuzzer's output, and printing [`Outcome`]s: a table for people, then
//! one line for scripts, `FUZZ targets=N seconds=N execs=N crashes=N`.

use super::Outcome;
use std::fmt::Write;

/// What libFuzzer says about a run (with `-print_final_stats=1`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    pub seconds: f64,
    pub execs: u64,
    pub corpus: u64,
    pub edges: u64,
}

impl Stats {
    /// From the status lines (`#N ... cov: C ft: F corp: N/S ...`), the closing
    /// `Done N runs in S second(s)` and `stat::number_of_executed_units: N`. A run
    /// that crashed has no closing lines: its last status line counts.
    pub fn parse(log: &str) -> Stats {
        let mut s = Stats::default();
        for line in log.lines() {
            if let Some(rest) = line.strip_prefix('#') {
                if let Some(n) = leading_number(rest) {
                    s.execs = s.execs.max(n);
                }
                if let Some(n) = after(line, "cov: ") {
                    s.edges = n;
                }
                if let Some(n) = after(line, "corp: ") {
                    s.corpus = n;
                }
            } else if let Some(rest) = line.strip_prefix("Done ") {
                if let Some(secs) = rest
                    .split_once(" runs in ")
                    .and_then(|(_, r)| leading_number(r))
                {
                    s.seconds = secs as f64;
                }
            } else if let Some(n) = line
                .strip_prefix("stat::number_of_executed_units:")
                .and_then(|r| leading_number(r.trim_start()))
            {
                s.execs = n;
            }
        }
        s
    }
}

fn leading_number(s: &str) -> Option<u64> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

fn after(line: &str, key: &str) -> Option<u64> {
    line.find(key)
        .and_then(|i| leading_number(&line[i + key.len()..]))
}

/// One row per target, then the crash inputs and how to reproduce each.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut t = format!(
        "{:<12} {:>7} {:>12} {:>9} {:>7} {:>7} {:>7}\n",
        "target", "seconds", "executions", "exec/s", "corpus", "edges", "crashes"
    );
    for o in outcomes {
        let _ = writeln!(
            t,
            "{:<12} {:>7.0} {:>12} {:>9.0} {:>7} {:>7} {:>7}",
            o.target,
            o.seconds,
            o.execs,
            o.execs_per_sec(),
            o.corpus,
            o.edges,
            usize::from(o.crash.is_some())
        );
    }
    for o in outcomes {
        if let Some(c) = &o.crash {
            let _ = write!(
                t,
                "\n{}: {} input {}\n  log: {}\n  reproduce: {}\n",
                o.target,
                c.kind,
                c.file.display(),
                o.log.display(),
                c.reproduce
            );
        }
    }
    t
}

/// `FUZZ targets=N seconds=N execs=N crashes=N`.
pub fn summary(outcomes: &[Outcome]) -> String {
    format!(
        "FUZZ targets={} seconds={:.0} execs={} crashes={}",
        outcomes.len(),
        outcomes.iter().map(|o| o.seconds).sum::<f64>(),
        outcomes.iter().map(|o| o.execs).sum::<u64>(),
        outcomes.iter().filter(|o| o.crash.is_some()).count()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::Crash;
    use std::path::PathBuf;

    #[test]
    fn reads_a_finished_run() {
        let log = "INFO: Seed: 1\n\
                   #2\tINITED cov: 40 ft: 41 corp: 5/1Kb exec/s: 0 rss: 40Mb\n\
                   #65536\tpulse  cov: 90 ft: 200 corp: 30/3Kb lim: 4096 exec/s: 32768 rss: 60Mb\n\
                   #661642\tDONE   cov: 120 ft: 400 corp: 52/9Kb lim: 4096 exec/s: 41352 rss: 456Mb\n\
                   Done 661642 runs in 16 second(s)\n\
                   stat::number_of_executed_units: 661642\n\
                   stat::average_exec_per_sec:     41352\n";
        assert_eq!(
            Stats::parse(log),
            Stats {
                seconds: 16.0,
                execs: 661642,
                corpus: 52,
                edges: 120
            }
        );
    }

    #[test]
    fn reads_a_run_that_crashed() {
        let log = "#1024\tNEW    cov: 77 ft: 90 corp: 12/400b lim: 4 exec/s: 0 rss: 41Mb L: 3/4 MS: 1 ChangeBit-\n\
                   thread '<unnamed>' panicked at src/lib.rs:1:1:\n\
                   ==1== ERROR: libFuzzer: deadly signal\n";
        let s = Stats::parse(log);
        assert_eq!((s.execs, s.corpus, s.edges, s.seconds), (1024, 12, 77, 0.0));
    }

    #[test]
    fn table_and_summary_count_crashes() {
        let o = |target, crash: Option<Crash>| Outcome {
            target,
            seconds: 60.0,
            execs: 600,
            corpus: 3,
            edges: 9,
            crash,
            log: PathBuf::from("/t/fuzz/logs/x.log"),
        };
        let all = [
            o("config", None),
            o(
                "qmp",
                Some(Crash {
                    kind: "crash".into(),
                    file: PathBuf::from("/r/tests/fuzz/artifacts/qmp/crash-1"),
                    reproduce: "cargo fuzz run qmp tests/fuzz/artifacts/qmp/crash-1".into(),
                }),
            ),
        ];
        let t = table(&all);
        assert!(
            t.contains("config            60          600        10"),
            "{t}"
        );
        assert!(t.contains("reproduce: cargo fuzz run qmp"), "{t}");
        assert_eq!(
            summary(&all),
            "FUZZ targets=2 seconds=120 execs=1200 crashes=1"
        );
    }
}
