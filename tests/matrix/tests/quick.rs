//! The fault matrix's quick scenarios in the test suite: the same runner and the
//! same rows as `cargo xtask matrix --quick`, and every row must pass. (The long
//! ones, ten failover cycles and three domains, run only from the command.)

use ftvirt_matrix::{report, run_all, Opts};
use std::path::{Path, PathBuf};
use std::process::Command;

/// ftd's binary, built by cargo into this test's target directory and profile
/// (a test only gets `CARGO_BIN_EXE_*` for its own package's binaries).
/// `FTVIRT_FTD_BIN` uses a given binary instead.
fn ftd_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("FTVIRT_FTD_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("this test's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let target = profile_dir.parent().expect("the target directory");
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.args([
        "build",
        "--quiet",
        "-p",
        "ftd",
        "--bin",
        "ftd",
        "--target-dir",
    ])
    .arg(target)
    .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        c.arg("--release");
    }
    let st = c.status().expect("running cargo to build ftd");
    assert!(st.success(), "building ftd failed: {st}");
    let bin = profile_dir.join("ftd");
    assert!(bin.exists(), "no ftd at {}", bin.display());
    bin
}

#[test]
fn lab_matrix_quick_scenarios_all_pass() {
    let opts = Opts {
        ftd_bin: ftd_binary(),
        quick: true,
        only: Vec::new(),
    };
    let rows = run_all(&opts, |r| {
        eprintln!("[matrix] row: {} {}", r.scenario, r.result())
    })
    .expect("the quick set");
    let table = report::table(&rows);
    let last = report::summary_line(&rows);
    eprintln!("\n{table}\n{last}");
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r.passed()), "{last}\n{table}");
}
