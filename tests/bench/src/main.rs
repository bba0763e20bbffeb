//! `ftvirt-bench` (run by `cargo xtask bench`): what fault tolerance costs and how
//! fast it fails over, next to an unprotected guest, a restart-style HA failover
//! and a plain live migration, on the lab (two simulated hosts a and b, each with
//! its own libvirtd, system bus and ftd, configured as in the demo).
//!
//! Phases ([`phase`]): guest overhead with checkpoints and ftd's footprint,
//! protect vs. migrate, failover, HA baseline. Each figure is measured in several
//! runs; the table shows the median and the spread (min, max) with the issue's
//! targets. Progress goes to stderr; stdout gets the table, notes and a last line
//! for scripts:
//! `BENCH failover_ms=N ha_ms=N rr_ratio=X write_ratio=X cpu_ratio=X protect_ratio=X ftd_rss_mib=X`.
//! The same findings, with every sample, are written as JSON (`--json`).

mod bench;
mod checkpoints;
mod footprint;
mod phase;
mod report;
mod stats;
mod workload;

use anyhow::{bail, Context, Result};
use bench::{say, Bench, Opts, PHASES};
use ftvirt_lab::Lab;
use std::path::PathBuf;
use std::time::Instant;

const USAGE: &str = "usage: ftvirt-bench [--runs N] [--quick] [--only PHASE,...] [--json PATH]\n\
\n\
Runs the benchmark in a lab of two simulated hosts (needs root, the artifacts of\n\
`cargo xtask setup`, and ftd next to this program or in FTVIRT_FTD_BIN).\n\
  --runs N     runs per figure (default 5)\n\
  --quick      2 runs and shorter workloads (a smoke run, not for figures)\n\
  --only LIST  phases to run, from: overhead,protect,failover,ha,tls\n\
  --json PATH  where to write the findings (default: bench.json)\n\
Prints the table, notes and the BENCH line; exit status 1 if a phase failed.\n";

fn main() {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{USAGE}");
            return;
        }
        Err(e) => {
            eprint!("ftvirt-bench: {e:#}\n{USAGE}");
            std::process::exit(2);
        }
    };
    match run(opts) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            say(&format!("failed: {e:#}"));
            std::process::exit(1);
        }
    }
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Opts>> {
    let args: Vec<String> = args.collect();
    let mut opts = if args.iter().any(|a| a == "--quick") {
        Opts::quick()
    } else {
        Opts::full(5)
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--quick" => {}
            "--runs" => {
                let v = value()?;
                opts.runs = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .with_context(|| format!("--runs {v:?}: give a number from 1 to 100"))?;
            }
            "--only" => {
                let v = value()?;
                let list: Vec<String> = v.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = list.iter().find(|p| !PHASES.contains(&p.as_str())) {
                    bail!(
                        "--only: unknown phase {bad:?}; phases are {}",
                        PHASES.join(",")
                    );
                }
                opts.phases = list;
            }
            "--json" => opts.json = PathBuf::from(value()?),
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(Some(opts))
}

/// The whole benchmark; returns the exit status after printing the BENCH line.
fn run(opts: Opts) -> Result<i32> {
    let t0 = Instant::now();
    let bin = ftvirt_demo::ftd::binary()?;
    say("starting the lab: hosts a and b (own netns, mount ns, virtlogd, libvirtd), the witness w (etcd), client namespace");
    let lab = Lab::start(ftvirt_demo::ftd::lab_config()).context("starting the lab")?;
    say(&ftvirt_demo::ftd::arbiter_line(&lab));
    say(&format!(
        "lab {} up in {:.1}s; accelerator: {}",
        lab.id,
        lab.startup.as_secs_f64(),
        lab.accel
    ));
    let mut b = Bench::new(lab, bin, opts).context("starting each host's ftd")?;
    let meta = vec![
        ("accelerator".to_string(), b.lab.accel.to_string()),
        (
            "qemu".to_string(),
            format!("{} ({})", b.lab.qemu.label, b.lab.qemu.path.display()),
        ),
        ("runs".to_string(), b.opts.runs.to_string()),
        ("phases".to_string(), b.opts.phases.join(",")),
        (
            "cpus".to_string(),
            std::thread::available_parallelism()
                .map_or(0, |n| n.get())
                .to_string(),
        ),
        (
            "load average at start".to_string(),
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
                .to_string(),
        ),
        (
            "ftd".to_string(),
            "checkpoint 2000 ms; heartbeat 50 ms, detection 200 ms (ftd's defaults with the etcd witness; the demo's)".to_string(),
        ),
    ];
    b.report.meta = meta;
    let mut failed = Vec::new();
    for phase in b.opts.phases.clone() {
        let t = Instant::now();
        say(&format!("=== phase {phase} ==="));
        let r = match phase.as_str() {
            "overhead" => phase::overhead::run(&mut b),
            "protect" => phase::protect::run(&mut b),
            "failover" => phase::failover::run(&mut b),
            "ha" => phase::ha::run(&mut b),
            "tls" => phase::tls::run(&mut b),
            _ => unreachable!("phases are checked when parsed"),
        };
        say(&format!(
            "phase {phase} took {:.0}s",
            t.elapsed().as_secs_f64()
        ));
        if let Err(e) = r {
            say(&format!("phase {phase} FAILED: {e:#}"));
            b.report.note(format!("phase {phase} failed: {e:#}"));
            failed.push(phase);
            if let Err(e) = b.recover() {
                b.report
                    .note(format!("the lab could not be recovered: {e:#}"));
                break;
            }
        }
    }
    let Bench {
        lab,
        ftds,
        mut report,
        opts,
        ..
    } = b;
    drop(ftds);
    say("tearing the lab down");
    if let Err(e) = lab.shutdown() {
        report.note(format!("tear-down: {e:#}"));
    }
    report.meta.push((
        "took".into(),
        format!("{:.0} s", t0.elapsed().as_secs_f64()),
    ));
    for n in NOTES {
        report.note(*n);
    }
    let json = serde_json::to_string_pretty(&report.json())?;
    if let Some(dir) = opts.json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&opts.json, json).with_context(|| format!("writing {}", opts.json.display()))?;
    println!();
    for (k, v) in &report.meta {
        println!("{k}: {v}");
    }
    println!();
    print!("{}", report.table());
    println!();
    for n in &report.notes {
        println!("- {n}");
    }
    println!();
    println!("JSON: {}", opts.json.display());
    println!("{}", report.bench_line());
    Ok(if failed.is_empty() { 0 } else { 1 })
}

/// How each figure is measured, printed under the table.
const NOTES: &[&str] = &[
    "median and spread (min, max) over the runs; a target is judged on the median",
    "overhead: the same guest, each workload on a new TCP connection from the client namespace, unprotected then protected in the same run; ratios are per run, protected/unprotected throughput",
    "failover: one client connection writing every ~50 ms; detection and takeover split by the survivor's ftd log (microsecond timestamps)",
    "HA: unprotected guest; after the kill, the same 200 ms detection, then the survivor's libvirtd defines and starts the domain from the same disk image; first reply on a new connection",
    "checkpoints: STOP/RESUME events of the primary's QEMU (as ftd counts them), pause = RESUME - STOP",
    "protect: Enable until a's ftd logs Protected; migration: virsh migrate --live --copy-storage-all, client-driven, over the replication network",
    "ftd: VmRSS (largest in the window) and utime+stime over the window, both hosts' ftd",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(a: &[&str]) -> Result<Option<Opts>> {
        parse_args(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn options() {
        let o = parse(&[]).unwrap().unwrap();
        assert_eq!((o.runs, o.phases.len()), (5, 5));
        let o = parse(&["--quick", "--runs", "3", "--only", "ha,protect"])
            .unwrap()
            .unwrap();
        assert_eq!(o.runs, 3);
        assert_eq!(o.phases, ["ha", "protect"]);
        assert!(o.rr < Opts::full(1).rr);
        assert!(parse(&["--help"]).unwrap().is_none());
        for bad in [
            &["--runs", "0"][..],
            &["--runs"],
            &["--only", "x"],
            &["--what"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
