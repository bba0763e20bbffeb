//! `ftvirt-demo` (run by `cargo xtask demo`): the fault-tolerance demo.
//!
//! A lab of two hosts, a and b, each with its own libvirtd, system bus and ftd. The
//! 2-vCPU guest boots on a and is protected with b as its peer over ftd's D-Bus API;
//! a client keeps one TCP connection to it and makes numbered durable writes. Host a
//! is power-cut: b takes over by itself, and the client carries on against the same
//! address, on the same connection, with every acknowledged write on the disk and no
//! reboot. Host a comes back, b re-protects onto it, and a planned failover brings
//! the guest home. See [`flow`] for the phases.
//!
//! Progress goes to stderr; the table and a last line for scripts go to stdout:
//! `RESULT ok vcpus=2 failover_ms=N acked=N lost=0 tcp_kept=yes reprotect_ms=N failback=yes`,
//! or `RESULT fail reason=...` and exit status 1 when any guarantee broke.

mod flow;

use ftvirt_demo::{ftd, report};
use ftvirt_lab::writer;

use anyhow::Context;
use ftvirt_lab::{wait_until, Lab, Look};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: ftvirt-demo\n\
\n\
Runs the fault-tolerance demo in a lab of two simulated hosts (needs root, the\n\
artifacts of `cargo xtask setup`, and ftd next to this program or in FTVIRT_FTD_BIN).\n\
Prints a table and `RESULT ok ...` or `RESULT fail reason=...` (exit status 1).\n";

pub fn say(msg: &str) {
    eprintln!("[demo] {msg}");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("-h" | "--help") => {
            print!("{USAGE}");
            return;
        }
        Some(other) => {
            eprint!("ftvirt-demo: unknown argument {other:?}\n{USAGE}");
            println!("RESULT fail reason=usage");
            std::process::exit(2);
        }
    }
    // A bug must still end in a RESULT line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("[demo] internal error: {info}");
    }));
    let code = std::panic::catch_unwind(run).unwrap_or_else(|_| {
        println!("RESULT fail reason=internal_error");
        1
    });
    std::process::exit(code);
}

/// The whole demo; returns the exit status after printing the RESULT line.
fn run() -> i32 {
    let t0 = Instant::now();
    let started = ftd::binary().and_then(|bin| {
        say("starting the lab: hosts a and b (own netns, mount ns, virtlogd, libvirtd), the witness w (etcd), client namespace");
        let lab = Lab::start(ftd::lab_config()).context("starting the lab")?;
        say(&format!("lab {} up in {:.1}s", lab.id, lab.startup.as_secs_f64()));
        say(&ftd::arbiter_line(&lab));
        say(&format!("QEMU: {} ({})", lab.qemu.label, lab.qemu.path.display()));
        say(&format!("accelerator: {}", lab.accel));
        say(&format!("ftd: {}", bin.display()));
        Ok(flow::Demo::new(lab, ftd::Ftds::new()?, bin))
    });
    let mut demo = match started {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let outcome = demo.run();
    if let Err(e) = &outcome {
        say(&format!("FAILED: {e:#}"));
        demo.diagnose();
    }
    let end = Instant::now();
    let stats = demo
        .writer
        .take()
        .map(writer::Writer::stop)
        .unwrap_or_default();
    let flow::Demo {
        lab, report, ftds, ..
    } = demo;
    drop(ftds);
    let id = lab.id.clone();
    say("tearing the lab down");
    let down = lab
        .shutdown()
        .context("tearing the lab down")
        .and_then(|()| no_namespace_left(&id));

    println!();
    print!("{}", report.table(&stats, end, outcome.is_err()));
    println!();
    println!("{}", report::LEGEND);
    println!();
    say(&format!("demo took {:.1}s", t0.elapsed().as_secs_f64()));
    let summary = match (outcome, down) {
        (Err(e), down) => {
            if let Err(d) = down {
                say(&format!("also: {d:#}"));
            }
            return fail(&e);
        }
        (Ok(_), Err(e)) => return fail(&e),
        (Ok(s), Ok(())) => s,
    };
    if let Some(why) = &stats.broken {
        return fail(&report::broken("connection_lost", why.clone()));
    }
    println!(
        "RESULT ok vcpus={} failover_ms={} acked={} lost={} tcp_kept=yes reprotect_ms={} failback=yes",
        summary.vcpus, summary.failover_ms, stats.acked, summary.lost, summary.reprotect_ms
    );
    0
}

fn fail(e: &anyhow::Error) -> i32 {
    say(&format!("demo failed: {e:#}"));
    println!("RESULT fail reason={}", report::reason_of(e));
    1
}

/// The lab's namespaces are gone (its reaper may take a moment).
fn no_namespace_left(id: &str) -> anyhow::Result<()> {
    let prefix = format!("{}{id}-", ftvirt_lab::netns::PREFIX);
    let left = || -> Vec<String> {
        std::fs::read_dir("/run/netns")
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default()
    };
    wait_until(
        "the lab's namespaces to be gone",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let left = left();
            Look::holds(left.is_empty(), || format!("{left:?}"))
        },
    )
    .map_err(|e| report::broken("namespaces_left", format!("after tear-down: {e}")))
}
