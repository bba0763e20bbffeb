//! Rows made by running other checks of the project that need their own set-up:
//! the partition tests (a witness host with corosync and qnetd, or etcd), the
//! witness and hook lab tests, the ftd-restart
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
fn row_of(name: &str, mut c: Command, reason: &str, keep: impl Fn(&str) -> bool) -> Row {
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
                    .map(|l| l.trim().chars().take(400).collect::<String>()),
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

/// Run one lab test, `test` of `package`'s test file `file`, as row `name`. Its
/// own measurements (lines with `keep`'s words) go to the notes; its failure
/// names a split brain when the test saw two copies serve.
fn one_lab_test(name: &str, package: &str, file: &str, test: &str, keep: &[&str]) -> Row {
    let mut c = cargo();
    c.args([
        "test",
        "-p",
        package,
        "--test",
        file,
        test,
        "--",
        "--exact",
        "--include-ignored",
        "--test-threads=1",
        "--nocapture",
    ]);
    const SPLIT: &str = "both copies served at once";
    let mut row = row_of(name, c, "lab_test_failed", |l| {
        test_summary(l) || l.contains(SPLIT) || keep.iter().any(|k| l.contains(k))
    });
    row.split_brain = row.notes.iter().any(|l| l.contains(SPLIT));
    let ran = row
        .notes
        .iter()
        .any(|l| l.contains("test result: ok. 1 passed"));
    if !ran && row.failure.is_none() {
        row.fail(
            "lab_test_failed",
            format!("{test} did not run (filtered out?)"),
        );
    }
    row
}

/// Lines of the witness tests worth keeping: their measurements.
const WITNESS_NOTES: &[&str] = &[
    "failover with the witness",
    "degraded",
    "guest cut off",
    "protected again",
    "witness back",
    "writes:",
    "cpu load result",
];

pub fn witness_primary_host(_: &Opts) -> Row {
    one_lab_test(
        "witness-primary-host-kill",
        "ftd",
        "witness_lab",
        "primary_host_lost_the_secondary_claims_the_record_and_takes_over",
        WITNESS_NOTES,
    )
}

pub fn partition_primary_link(_: &Opts) -> Row {
    one_lab_test(
        "partition-primary-link",
        "ftd",
        "witness_lab",
        "primary_cut_off_waits_cut_off_and_the_secondary_wins_the_record",
        WITNESS_NOTES,
    )
}

pub fn partition_secondary_link(_: &Opts) -> Row {
    one_lab_test(
        "partition-secondary-link",
        "ftd",
        "witness_lab",
        "secondary_cut_off_never_takes_over",
        WITNESS_NOTES,
    )
}

pub fn partition_pair_path(_: &Opts) -> Row {
    one_lab_test(
        "partition-pair-path",
        "ftd",
        "witness_lab",
        "only_the_path_between_the_pair_cut_the_primary_keeps_the_record",
        WITNESS_NOTES,
    )
}

pub fn witness_down_primary_lost(_: &Opts) -> Row {
    one_lab_test(
        "witness-down-primary-lost",
        "ftd",
        "witness_lab",
        "witness_down_when_the_primary_dies_nobody_serves_until_it_answers",
        WITNESS_NOTES,
    )
}

pub fn autostart_stale_copy(_: &Opts) -> Row {
    one_lab_test(
        "autostart-stale-copy",
        "ftvirt-hook",
        "hook_lab",
        "a_stale_copy_never_starts_next_to_the_survivor",
        &["virsh start on a"],
    )
}

pub fn disable_survivor_restart_ftd(_: &Opts) -> Row {
    one_lab_test(
        "disable-survivor-restart-ftd",
        "ftd",
        "ftd_restart",
        "disable_on_a_survivor_then_an_ftd_restart_keeps_it_running",
        &["after the restart", "after disable on the survivor"],
    )
}

pub fn cpu_load(_: &Opts) -> Row {
    one_lab_test(
        "cpu-load",
        "ftd",
        "witness_lab",
        "full_cpu_load_on_both_hosts_never_serves_two_copies",
        WITNESS_NOTES,
    )
}
