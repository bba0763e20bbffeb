//! `ftvirt-matrix` (run by `cargo xtask matrix`): every scenario of the fault
//! matrix, each on a fresh lab, one row each. Progress goes to stderr; stdout gets
//! the table, its notes and legend, and exactly one last line for scripts:
//! `MATRIX passed=N failed=N lost_writes=N split_brain=N leaked=N`. Exit status 1
//! if any row failed, 2 on bad usage.

use ftvirt_matrix::{report, run_all, say, Opts, SCENARIOS};

const USAGE: &str = "usage: ftvirt-matrix [--quick] [--only NAME,...] [--list]\n\
\n\
Runs the fault matrix: each scenario on a fresh lab of simulated hosts (needs root,\n\
the artifacts of `cargo xtask setup`, and ftd next to this program or in\n\
FTVIRT_FTD_BIN).\n\
  --quick      leave out the long scenarios (the set the test suite runs)\n\
  --only LIST  run only these scenarios (comma-separated; see --list)\n\
  --list       print the scenarios and exit\n\
Prints one row per scenario and `MATRIX passed=N failed=N lost_writes=N\n\
split_brain=N leaked=N`; exit status 1 if any row failed.\n";

fn main() {
    let mut quick = false;
    let mut only = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return;
            }
            "--quick" => quick = true,
            "--list" => {
                for s in SCENARIOS {
                    let kind = if s.long { "long " } else { "quick" };
                    println!("{:<30} {kind}  {}", s.name, s.about);
                }
                return;
            }
            "--only" => match args.next() {
                Some(v) => only.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from),
                ),
                None => usage_error("--only needs a list of scenario names"),
            },
            other => usage_error(&format!("unknown argument {other:?}")),
        }
    }
    let ftd_bin = match ftvirt_demo::ftd::binary() {
        Ok(b) => b,
        Err(e) => {
            say(&format!("{e:#}"));
            std::process::exit(2);
        }
    };
    let opts = Opts {
        ftd_bin,
        quick,
        only,
    };
    let t0 = std::time::Instant::now();
    let rows = match run_all(&opts, |r| {
        say(&format!("row: {} {}", r.scenario, r.result()))
    }) {
        Ok(r) => r,
        Err(e) => usage_error(&e),
    };
    println!();
    print!("{}", report::table(&rows));
    println!();
    println!("{}", report::LEGEND);
    println!();
    say(&format!(
        "the matrix took {:.0}s",
        t0.elapsed().as_secs_f64()
    ));
    println!("{}", report::summary_line(&rows));
    std::process::exit(if rows.iter().all(|r| r.passed()) {
        0
    } else {
        1
    });
}

fn usage_error(msg: &str) -> ! {
    eprint!("ftvirt-matrix: {msg}\n{USAGE}");
    std::process::exit(2);
}
