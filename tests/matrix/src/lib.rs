//! `ftvirt-matrix` (run by `cargo xtask matrix`): the fault matrix.
//!
//! Every [`Scenario`] runs end to end on a fresh lab and yields one [`Row`]: result
//! (pass, or FAIL with a short reason), failover time (to the client's first reply
//! to a request sent after the fault), writes acknowledged, writes found on the
//! surviving disk (read back through the guest), whether the client's one TCP
//! connection was kept, objects leaked, and whether a split brain was seen.
//!
//! - [`scenarios`]: the list; a scenario is one small function (its *body*) plus
//!   the lab it needs ([`world::Setup`]), or a function of its own that makes its row
//!   ([`Kind::Custom`], for checks that need no lab);
//! - [`world`]: a scenario's lab: hosts, each host's ftd, the guests, a client
//!   thread per guest on ONE connection making numbered durable writes, and the
//!   helpers the bodies use (protect, fault, wait for the failover, verify);
//! - [`run`]: what every lab scenario gets around its body: the fresh lab, the
//!   split-brain [`watch`], the final read-back, `Disable`, the [`leaks`] checks and
//!   the tear-down;
//! - [`report`]: the row, the table and the last line for scripts,
//!   `MATRIX passed=N failed=N lost_writes=N split_brain=N leaked=N`.

pub mod leaks;
pub mod report;
pub mod run;
pub mod scenarios;
pub mod watch;
pub mod world;

pub use report::Row;
pub use scenarios::SCENARIOS;

use std::path::PathBuf;

/// A scenario's body: what it does to the protected world and what it checks.
pub type Body = fn(&mut world::World) -> anyhow::Result<()>;

/// One row of the matrix.
#[derive(Debug)]
pub struct Scenario {
    /// Short, stable name (`--only`, the table).
    pub name: &'static str,
    /// One line on what it does and what must hold.
    pub about: &'static str,
    /// Long scenarios run only from the command, not in the test suite (`--quick`
    /// leaves them out).
    pub long: bool,
    pub kind: Kind,
}

/// How a scenario runs.
#[derive(Debug)]
pub enum Kind {
    /// On a fresh lab made as `setup` says; the runner does the rest ([`run`]).
    Lab { setup: world::Setup, body: Body },
    /// Makes its own row (for scenarios that need no lab, e.g. bounded fuzzing).
    Custom(fn(&Opts) -> Row),
}

/// What to run and with what.
#[derive(Debug, Clone)]
pub struct Opts {
    /// The ftd binary the lab hosts run.
    pub ftd_bin: PathBuf,
    /// Leave out the long scenarios.
    pub quick: bool,
    /// Only these scenarios (empty: all of the selected set).
    pub only: Vec<String>,
}

/// Progress, on stderr.
pub fn say(msg: &str) {
    eprintln!("[matrix] {msg}");
}

/// The scenarios `opts` asks for, in the list's order; an unknown name in `only`
/// is an error that lists the known ones.
pub fn select(opts: &Opts) -> Result<Vec<&'static Scenario>, String> {
    if let Some(bad) = opts
        .only
        .iter()
        .find(|n| !SCENARIOS.iter().any(|s| s.name == n.as_str()))
    {
        let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        return Err(format!(
            "--only: no scenario {bad:?}; the scenarios are {}",
            names.join(",")
        ));
    }
    Ok(SCENARIOS
        .iter()
        .filter(|s| {
            if opts.only.is_empty() {
                !(opts.quick && s.long)
            } else {
                opts.only.iter().any(|n| n == s.name)
            }
        })
        .collect())
}

/// Run one scenario to its row (never panics: a panic is a failed row).
pub fn run_one(s: &Scenario, opts: &Opts) -> Row {
    say(&format!("=== {}: {}", s.name, s.about));
    let t0 = std::time::Instant::now();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &s.kind {
        Kind::Lab { setup, body } => run::lab_row(s.name, setup, *body, opts),
        Kind::Custom(f) => f(opts),
    }));
    let mut row = r.unwrap_or_else(|p| {
        let why = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let mut row = Row::new(s.name);
        row.fail("internal_error", format!("the scenario panicked: {why}"));
        row
    });
    row.took = t0.elapsed();
    say(&format!(
        "=== {}: {} in {:.0}s",
        s.name,
        row.result(),
        row.took.as_secs_f64()
    ));
    row
}

/// Run every selected scenario; `each` sees each row as soon as it is made.
pub fn run_all(opts: &Opts, mut each: impl FnMut(&Row)) -> Result<Vec<Row>, String> {
    let picked = select(opts)?;
    Ok(picked
        .into_iter()
        .map(|s| {
            let r = run_one(s, opts);
            each(&r);
            r
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(quick: bool, only: &[&str]) -> Opts {
        Opts {
            ftd_bin: PathBuf::from("/nonexistent/ftd"),
            quick,
            only: only.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn names_are_unique_and_short() {
        for (i, s) in SCENARIOS.iter().enumerate() {
            assert!(
                s.name.len() <= 30 && !s.name.contains(',') && !s.name.contains(' '),
                "{}",
                s.name
            );
            assert!(
                SCENARIOS[..i].iter().all(|o| o.name != s.name),
                "{} twice",
                s.name
            );
        }
    }

    #[test]
    fn quick_leaves_out_the_long_ones_and_only_picks() {
        let all = select(&opts(false, &[])).unwrap();
        let quick = select(&opts(true, &[])).unwrap();
        assert_eq!(all.len(), SCENARIOS.len());
        assert!(quick.iter().all(|s| !s.long));
        assert!(quick.len() < all.len(), "some scenarios are long");
        let one = select(&opts(true, &["ten-cycles"])).unwrap();
        assert_eq!(one.len(), 1, "--only wins over --quick");
        let e = select(&opts(false, &["nope"])).unwrap_err();
        assert!(
            e.contains("\"nope\"") && e.contains("primary-qemu-kill"),
            "{e}"
        );
    }
}
