//! Rows made by running other checks of the project that need their own set-up:
//! the partition tests (a witness host with corosync and qnetd), the ftd-restart
//! tests, and bounded fuzzing (`cargo xtask fuzz`). Each is the project's real
//! test or command, run from the workspace; the row passes when it does, and its
//! notes carry the summary line (the tests themselves check that no acknowledged
//! write is lost and that never two copies serve).

use crate::{say, Opts, Row};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (this crate is `tests/matrix`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Run `c`; the row fails with `reason` unless it exits 0. The lines of its
/// output that `keep` selects go to the notes.
fn row_of(name: &str, mut c: Command, reason: &str, keep: fn(&str) -> bool) -> Row {
    let mut row = Row::new(name);
    say(&format!("{name}: running {c:?}"));
    match c.output() {
        Err(e) => row.fail("not_run", format!("{c:?}: {e}")),
        Ok(out) => {
            let text = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            row.notes.extend(
                text.lines()
                    .filter(|l| keep(l))
                    .map(|l| l.trim().to_string()),
            );
            if !out.status.success() {
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                row.fail(reason, tail.join("\n"));
            }
        }
    }
    row
}

fn test_summary(l: &str) -> bool {
    l.starts_with("test result:") || l.contains("FAILED") || l.contains("panicked")
}

/// The three partition tests (`ftd/tests/partition_lab.rs`).
pub fn partitions(_: &Opts) -> Row {
    let mut c = cargo();
    c.args([
        "test",
        "-p",
        "ftd",
        "--test",
        "partition_lab",
        "--",
        "--test-threads=1",
    ]);
    row_of("partitions", c, "partition_tests_failed", test_summary)
}

/// The ftd-restart tests (`ftd/tests/ftd_restart.rs`).
pub fn ftd_restarts(_: &Opts) -> Row {
    let mut c = cargo();
    c.args([
        "test",
        "-p",
        "ftd",
        "--test",
        "ftd_restart",
        "--",
        "--test-threads=1",
    ]);
    row_of("ftd-restarts", c, "restart_tests_failed", test_summary)
}

/// Every fuzz target for a bounded time (`cargo xtask fuzz`, 60 s each).
pub fn fuzz(_: &Opts) -> Row {
    let mut c = cargo();
    c.args(["xtask", "fuzz", "--seconds", "60"]);
    let mut row = row_of("fuzz", c, "fuzz_crash", |l| {
        l.starts_with("FUZZ ") || l.contains("crash")
    });
    if !row.notes.iter().any(|l| l.starts_with("FUZZ ")) && row.failure.is_none() {
        row.fail("no_fuzz_line", "cargo xtask fuzz printed no FUZZ line");
    }
    row
}
