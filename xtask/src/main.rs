//! `cargo xtask`: the project's own set-up and entry points.
//!
//! Everything a fresh machine needs is done here, idempotently, with progress on
//! stderr:
//! - `setup`: apt packages ([`setup`]), the COLO-patched QEMU build ([`qemu`]), the
//!   test guest ([`guest`]), then the artifacts manifest the lab reads
//!   ([`artifacts::Artifacts`]).
//! - `demo`: `setup`, then builds `ftd` and `ftvirt-demo` (release) and runs the
//!   fault-tolerance demo, `target/release/ftvirt-demo` (extra arguments go to it).
//! - `test`: `setup`, then the whole workspace's tests.
//! - `install`: builds ftd, virsh-ft and the hook (release) and installs them with
//!   the polkit actions, the bus policy, the activation file, the systemd unit and
//!   an example configuration ([`install`]).
//! - `bench`: `setup`, then builds `ftd` and `ftvirt-bench` (release) and runs the
//!   benchmark, writing its JSON to `target/bench/bench.json` (extra arguments go
//!   to `ftvirt-bench`, e.g. `--runs 3`, `--quick`, `--only failover`).
//! - `matrix`: `setup`, then builds `ftd` and `ftvirt-matrix` (release) and runs
//!   the fault matrix (extra arguments go to `ftvirt-matrix`: `--quick`,
//!   `--only a,b`, `--list`).

mod artifacts;
mod fuzz;
mod guest;
mod install;
mod qemu;
mod setup;
mod util;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn usage() -> &'static str {
    "usage: cargo xtask <command>\n\
     \n\
     commands:\n\
     \x20 setup   install packages, build the patched QEMU and the test guest (idempotent)\n\
     \x20 demo    setup, then the fault-tolerance demo: protect the guest, kill its host, fail back\n\
     \x20 test    setup, then run every test of the workspace\n\
     \x20 bench   setup, then the benchmark: overhead, failover vs. HA, checkpoints, protect, ftd footprint\n\
     \x20 fuzz    [--seconds N | --quick] [--only TARGET,...] [--sanitizer address|none]\n\
     \x20         run the fuzz targets (annotation, config, qmp, peer_frame, secondary_spec), 60 s each\n\
     \x20 matrix [--quick] [--only a,b] [--list]\n\
     \x20         setup, then the fault matrix: every fault scenario on a fresh lab, one row each\n\
     \x20 install [--prefix DIR] [--destdir DIR] [--no-build]\n\
     \x20         build (release) and install ftd, virsh-ft, the libvirt hook, the polkit\n\
     \x20         actions, the bus policy, activation file and systemd unit\n"
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprint!("{}", usage());
        bail!("no command given");
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "setup" => setup_all().map(|_| ()),
        "demo" => run_lab_program("demo", "ftvirt-demo", rest),
        "matrix" => run_lab_program("matrix", "ftvirt-matrix", rest),
        "bench" => {
            let json = target_dir().join("bench/bench.json");
            let mut args = vec!["--json".to_string(), json.to_string_lossy().into_owned()];
            args.extend_from_slice(rest);
            run_lab_program("bench", "ftvirt-bench", &args)
        }
        "test" => {
            let t_setup = setup_all()?;
            let t0 = Instant::now();
            util::step("test", "building the workspace (all targets)");
            util::run(cargo().args(["build", "--workspace", "--all-targets"]))?;
            let t_build = t0.elapsed();
            let t1 = Instant::now();
            util::step("test", "running the tests");
            let before = lab_namespaces();
            let st = test_command(rest).status().context("running the tests")?;
            let leaks = leak_check(&before);
            eprintln!(
                "xtask: timings: set-up {:.1}s, build {:.1}s, tests {:.1}s",
                t_setup.as_secs_f64(),
                t_build.as_secs_f64(),
                t1.elapsed().as_secs_f64()
            );
            if let Err(e) = leaks {
                eprintln!("xtask: error: {e:#}");
                std::process::exit(1);
            }
            std::process::exit(st.code().unwrap_or(1));
        }
        "fuzz" => {
            let o = fuzz::Options::parse(rest)?;
            let paths = fuzz::Paths {
                root: workspace_root(),
                target_dir: target_dir(),
            };
            let outcomes = fuzz::run(&o, &paths, cargo)?;
            print!("{}", fuzz::report::table(&outcomes));
            println!("{}", fuzz::report::summary(&outcomes));
            if outcomes.iter().any(|o| o.crash.is_some()) {
                std::process::exit(1);
            }
            Ok(())
        }
        "install" => {
            let o = install::Options::parse(rest)?;
            install::install(&o, &workspace_root(), &target_dir(), cargo())
        }
        "-h" | "--help" | "help" => {
            print!("{}", usage());
            Ok(())
        }
        other => {
            eprint!("{}", usage());
            bail!("unknown command {other:?}")
        }
    }
}

/// `setup`, then build `ftd` and the lab program `package` (release) and run it with
/// `args`; exits with its status.
fn run_lab_program(step: &str, package: &str, args: &[String]) -> Result<()> {
    let t = setup_all()?;
    util::step(
        step,
        &format!("building ftd, ftvirt-sandbox and {package} (release)"),
    );
    // The lab runs ftd under its unit's sandbox (ftvirt-lab's ftvirt-sandbox).
    util::run(cargo().args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "ftd",
        "-p",
        "ftvirt-lab",
        "-p",
        package,
    ]))?;
    let bin = target_dir().join("release").join(package);
    util::step(step, &format!("running {}", bin.display()));
    let st = Command::new(&bin)
        .args(args)
        .status()
        .with_context(|| format!("running {}", bin.display()))?;
    eprintln!("xtask: set-up took {:.1}s", t.as_secs_f64());
    std::process::exit(st.code().unwrap_or(1));
}

/// Everything a run needs, each step skipped when already done.
fn setup_all() -> Result<std::time::Duration> {
    let t0 = Instant::now();
    util::require_root()?;
    let root = workspace_root();
    let cache = artifacts::cache_dir();
    setup::install_packages()?;
    let qemu = qemu::build_patched_qemu(&root, &cache)?;
    let guest = guest::build_guest(&root, &cache)?;
    let art = artifacts::Artifacts::new(qemu, guest);
    art.write(&cache)?;
    util::step(
        "setup",
        &format!(
            "done in {:.1}s; manifest {}",
            t0.elapsed().as_secs_f64(),
            artifacts::manifest_path(&cache).display()
        ),
    );
    Ok(t0.elapsed())
}

/// Lab namespaces (`ftl-*`) on this machine now.
fn lab_namespaces() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with("ftl-"))
                .collect()
        })
        .unwrap_or_default()
}

/// After the tests: no lab namespace created during the run may be left (labs tear
/// down even when a test fails; their reapers may still be finishing, so wait a
/// little). Namespaces that existed before the run belong to someone else.
fn leak_check(before: &[String]) -> Result<()> {
    let t0 = Instant::now();
    loop {
        let left: Vec<String> = lab_namespaces()
            .into_iter()
            .filter(|n| !before.contains(n))
            .collect();
        if left.is_empty() {
            util::step("test", "leak check: no lab namespace left behind");
            return Ok(());
        }
        if t0.elapsed().as_secs() > 30 {
            bail!("lab namespaces left behind after the tests: {left:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// `cargo nextest` when installed (per-test processes, test groups from
/// `.config/nextest.toml`: at most two labs at a time, one protected pair).
/// Otherwise `cargo test` with one test at a time (`--test-threads=1`): cargo
/// knows nothing of the test groups, and its default of one test per core would
/// boot several labs at once and starve their heartbeats. Slower, but it runs
/// everything and overloads nothing.
fn test_command(extra: &[String]) -> Command {
    let has_nextest = Command::new("cargo")
        .args(["nextest", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let mut c = cargo();
    if has_nextest {
        c.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
        c.args(extra);
    } else {
        eprintln!(
            "xtask: cargo-nextest is not installed: running `cargo test` one test at a time \
             (slower; `cargo install cargo-nextest` runs two labs at a time)"
        );
        c.args(["test", "--workspace", "--no-fail-fast"]);
        c.args(cargo_test_args(extra));
    }
    c
}

/// `extra` for `cargo test`, with `--test-threads=1` for the test binaries
/// (after the `--` the caller may have given already).
fn cargo_test_args(extra: &[String]) -> Vec<String> {
    let mut v = extra.to_vec();
    if !v.iter().any(|a| a == "--") {
        v.push("--".into());
    }
    v.push("--test-threads=1".into());
    v
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, else `<workspace>/target`).
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        Some(d) => workspace_root().join(d),
        None => workspace_root().join("target"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace root")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::cargo_test_args;

    #[test]
    fn cargo_test_runs_one_test_at_a_time() {
        let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(
            cargo_test_args(&s(&["-p", "ftd"])),
            s(&["-p", "ftd", "--", "--test-threads=1"])
        );
        assert_eq!(
            cargo_test_args(&s(&["--", "ft_e2e"])),
            s(&["--", "ft_e2e", "--test-threads=1"])
        );
    }
}
