//! `cargo xtask fuzz [--seconds N | --quick] [--only T,...] [--sanitizer address|none]`:
//! builds the cargo-fuzz targets of `tests/fuzz` and runs each for a bounded time.
//!
//! | target | what it feeds | seeds |
//! |---|---|---|
//! | `annotation` | `ftd-annotation`'s `parse_element` and `from_domain_xml` | `examples/protected-domain.xml`, the colo test domain, `seeds/annotation` |
//! | `config` | `Config::from_str` (ftd.yaml) | `examples/ftd.yaml`, `seeds/config` |
//! | `qmp` | `parse_qmp_reply`, `QmpEvent::decode` | `seeds/qmp` (lines captured from QEMU 7.2) |
//! | `peer_frame` | the peer link's codec and `frame::decode` | `seeds/peer_frame` (encoded frames) |
//! | `secondary_spec` | a peer's `SecondarySpec` (or live XML) through `validate::spec`, `secondary_xml` and `takeover_definition`, output checked against the allow-list | the lab guest's live XML, `seeds/secondary_spec` (the XML, a spec in JSON) |
//!
//! Each target runs libFuzzer with `-max_total_time` (60 s by default, 10 s with
//! `--quick`), growing its corpus in `tests/fuzz/corpus/<target>` (kept between runs,
//! not committed); a crash, timeout, leak or out-of-memory input lands in
//! `tests/fuzz/artifacts/<target>/`. [`run`] returns one [`Outcome`] per target;
//! [`report`] prints them. cargo-fuzz is installed (`cargo install cargo-fuzz
//! --locked`) when missing. The machine has a stable toolchain only, so cargo-fuzz's
//! nightly flags (`-Zsanitizer`, ...) are allowed with `RUSTC_BOOTSTRAP=1`.

pub mod report;

use crate::util;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

const PHASE: &str = "fuzz";
/// The fuzz crate, relative to the workspace root.
pub const FUZZ_DIR: &str = "tests/fuzz";
/// Seconds per target unless told otherwise, and with `--quick`.
pub const DEFAULT_SECONDS: u64 = 60;
pub const QUICK_SECONDS: u64 = 10;

/// One fuzz target and the repository's real inputs it starts from (besides its
/// committed `seeds/<name>`); its libFuzzer dictionary (the words of its format) is
/// `dict/<name>.dict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub name: &'static str,
    pub real_inputs: &'static [&'static str],
}

pub const TARGETS: [Target; 5] = [
    Target {
        name: "annotation",
        real_inputs: &[
            "examples/protected-domain.xml",
            "ftd/src/colo/testdata/lab-guest-live.xml",
        ],
    },
    Target {
        name: "config",
        real_inputs: &["examples/ftd.yaml"],
    },
    Target {
        name: "qmp",
        real_inputs: &[],
    },
    Target {
        name: "peer_frame",
        real_inputs: &[],
    },
    Target {
        name: "secondary_spec",
        real_inputs: &["ftd/src/colo/testdata/lab-guest-live.xml"],
    },
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub seconds: u64,
    /// Target names; empty: all of [`TARGETS`].
    pub only: Vec<String>,
    /// libFuzzer's sanitizer: `address` (default) or `none`.
    pub sanitizer: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seconds: DEFAULT_SECONDS,
            only: Vec::new(),
            sanitizer: "address".into(),
        }
    }
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut o = Options::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str, what: &str| {
                it.next()
                    .cloned()
                    .with_context(|| format!("{name} needs {what}"))
            };
            match a.as_str() {
                "--seconds" => {
                    let v = value("--seconds", "a number of seconds per target")?;
                    o.seconds = match v.parse() {
                        Ok(n) if n > 0 => n,
                        _ => bail!("--seconds {v:?}: give a whole number of seconds above 0"),
                    };
                }
                "--quick" => o.seconds = QUICK_SECONDS,
                "--only" => {
                    let v = value("--only", "target names, e.g. --only config,qmp")?;
                    o.only = v.split(',').map(|s| s.trim().to_string()).collect();
                }
                "--sanitizer" => {
                    let v = value("--sanitizer", "address or none")?;
                    if !["address", "none"].contains(&v.as_str()) {
                        bail!("--sanitizer {v:?}: use address or none");
                    }
                    o.sanitizer = v;
                }
                other => bail!(
                    "fuzz: unknown option {other:?}; use --seconds N, --quick, \
                     --only TARGET,..., --sanitizer address|none"
                ),
            }
        }
        o.targets()?;
        Ok(o)
    }

    /// The targets to run, in [`TARGETS`] order; an unknown name is an error.
    pub fn targets(&self) -> Result<Vec<Target>> {
        let known = || TARGETS.map(|t| t.name).join(", ");
        if let Some(bad) = self
            .only
            .iter()
            .find(|n| !TARGETS.iter().any(|t| t.name == n.as_str()))
        {
            bail!("unknown fuzz target {bad:?}; the targets are {}", known());
        }
        Ok(TARGETS
            .into_iter()
            .filter(|t| self.only.is_empty() || self.only.iter().any(|n| n == t.name))
            .collect())
    }
}

/// What one target's run found.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub target: &'static str,
    /// Fuzzing time (libFuzzer's own count; the build is not in it).
    pub seconds: f64,
    pub execs: u64,
    /// Inputs in the corpus at the end (libFuzzer's `corp:`).
    pub corpus: u64,
    /// Coverage points reached (libFuzzer's `cov:`).
    pub edges: u64,
    pub crash: Option<Crash>,
    /// libFuzzer's output.
    pub log: PathBuf,
}

impl Outcome {
    pub fn execs_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.execs as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// An input that made a target fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crash {
    /// `crash`, `timeout`, `leak` or `oom` (libFuzzer's file name prefix).
    pub kind: String,
    pub file: PathBuf,
    /// The command that runs the target on that input alone.
    pub reproduce: String,
}

/// Where things are: the workspace and cargo's target directory.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    pub target_dir: PathBuf,
}

impl Paths {
    fn fuzz_dir(&self) -> PathBuf {
        self.root.join(FUZZ_DIR)
    }
    fn work(&self) -> PathBuf {
        self.target_dir.join("fuzz")
    }
}

/// Install cargo-fuzz if needed, build every target, run the chosen ones.
pub fn run(o: &Options, p: &Paths, cargo: impl Fn() -> Command) -> Result<Vec<Outcome>> {
    let targets = o.targets()?;
    ensure_cargo_fuzz(&cargo)?;
    let t0 = Instant::now();
    util::step(
        PHASE,
        &format!("building the fuzz targets (sanitizer {})", o.sanitizer),
    );
    util::run(fuzz_cmd(&cargo, p, o, "build").arg("-O")).context(
        "building the fuzz targets failed: ftd links libvirt, so run `cargo xtask setup` first \
         (it installs libvirt-dev); with an address-sanitizer error, try --sanitizer none",
    )?;
    util::step(
        PHASE,
        &format!("built in {:.0}s", t0.elapsed().as_secs_f64()),
    );
    targets.iter().map(|t| run_one(t, o, p, &cargo)).collect()
}

/// `cargo fuzz` is there, or is installed now.
fn ensure_cargo_fuzz(cargo: &impl Fn() -> Command) -> Result<()> {
    let there = cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if there {
        return Ok(());
    }
    util::step(
        PHASE,
        "installing cargo-fuzz (cargo install cargo-fuzz --locked)",
    );
    util::run(cargo().args(["install", "cargo-fuzz", "--locked"]))
        .context("installing cargo-fuzz failed: check network access to crates.io")
}

/// `cargo fuzz <sub> --fuzz-dir tests/fuzz --sanitizer S --target-dir <target>/fuzz/build-S`.
fn fuzz_cmd(cargo: &impl Fn() -> Command, p: &Paths, o: &Options, sub: &str) -> Command {
    let mut c = cargo();
    c.current_dir(&p.root)
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", sub, "--fuzz-dir", FUZZ_DIR])
        .args(["--sanitizer", &o.sanitizer])
        .arg("--target-dir")
        .arg(build_dir(p, o));
    c
}

/// One build per sanitizer: switching does not rebuild the other's.
fn build_dir(p: &Paths, o: &Options) -> PathBuf {
    p.work().join(format!("build-{}", o.sanitizer))
}

fn run_one(t: &Target, o: &Options, p: &Paths, cargo: &impl Fn() -> Command) -> Result<Outcome> {
    let corpus = p.fuzz_dir().join("corpus").join(t.name);
    let seeds = p.fuzz_dir().join("seeds").join(t.name);
    let real = p.work().join("real-inputs").join(t.name);
    let artifacts = p.fuzz_dir().join("artifacts").join(t.name);
    for d in [&corpus, &real, &artifacts] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    for f in t.real_inputs {
        let from = p.root.join(f);
        let name = f.replace('/', "_");
        std::fs::copy(&from, real.join(name))
            .with_context(|| format!("copying the seed {}", from.display()))?;
    }
    let log = p.work().join("logs").join(format!("{}.log", t.name));
    std::fs::create_dir_all(log.parent().expect("a log directory"))?;
    util::step(
        PHASE,
        &format!(
            "{}: fuzzing for {} s (log {})",
            t.name,
            o.seconds,
            log.display()
        ),
    );
    let dict = p.fuzz_dir().join("dict").join(format!("{}.dict", t.name));
    let started = SystemTime::now();
    let t0 = Instant::now();
    let out = std::fs::File::create(&log)?;
    let status = fuzz_cmd(cargo, p, o, "run")
        .arg("-O")
        .arg(t.name)
        .args([&corpus, &seeds, &real])
        .arg("--")
        .args([
            format!("-max_total_time={}", o.seconds),
            "-print_final_stats=1".into(),
            // An input that takes this long is a hang: a timeout artifact.
            "-timeout=10".into(),
            "-rss_limit_mb=2048".into(),
            "-max_len=16384".into(),
            format!("-dict={}", dict.display()),
        ])
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .with_context(|| format!("running fuzz target {}", t.name))?;
    let wall = t0.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let stats = report::Stats::parse(&text);
    let crash = newest_artifact(&artifacts, started)?.map(|file| {
        let kind = file
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split('-').next())
            .unwrap_or("crash")
            .to_string();
        let rel = file.strip_prefix(&p.root).unwrap_or(&file);
        Crash {
            kind,
            reproduce: format!(
                "RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir {FUZZ_DIR} -O --sanitizer {} \
                 --target-dir {} {} {}",
                o.sanitizer,
                build_dir(p, o).display(),
                t.name,
                rel.display()
            ),
            file,
        }
    });
    if crash.is_none() && !status.success() {
        bail!(
            "fuzz target {} failed ({status}) without leaving a crash input; see {}",
            t.name,
            log.display()
        );
    }
    Ok(Outcome {
        target: t.name,
        // A run that stopped at a crash does not say how long it ran.
        seconds: if stats.seconds > 0.0 {
            stats.seconds
        } else {
            wall
        },
        execs: stats.execs,
        corpus: stats.corpus,
        edges: stats.edges,
        crash,
        log,
    })
}

/// The newest crash/timeout/leak/oom input written since `since`.
fn newest_artifact(dir: &Path, since: SystemTime) -> Result<Option<PathBuf>> {
    let mut found: Option<(SystemTime, PathBuf)> = None;
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !["crash-", "timeout-", "leak-", "oom-"]
            .iter()
            .any(|k| name.starts_with(k))
        {
            continue;
        }
        let at = e.metadata()?.modified()?;
        if at >= since && found.as_ref().is_none_or(|(t, _)| at > *t) {
            found = Some((at, e.path()));
        }
    }
    Ok(found.map(|(_, p)| p))
}

#[cfg(test)]
mod tests;
