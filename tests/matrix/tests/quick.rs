//! The fault matrix's quick scenarios in the test suite: the same runner and the
//! same rows as `cargo xtask matrix --quick`, and every row must pass. (The long
//! ones, ten failover cycles and three domains, run only from the command.)

use ftvirt_matrix::{report, run_all, Opts};

#[test]
fn lab_matrix_quick_scenarios_all_pass() {
    if ftvirt_lab::skip_lab_test() {
        return;
    }
    let opts = Opts {
        // `FTVIRT_FTD_BIN` uses a given binary instead of building it.
        ftd_bin: ftvirt_lab::ftd::binary(env!("CARGO_MANIFEST_DIR")),
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
