//! Phases 1, 4 and 6: the same guest and the same workloads unprotected and then
//! protected, run after run (Enable and Disable in between); the checkpoints the
//! primary's QEMU made meanwhile; and ftd's footprint idle and protecting.
//!
//! Per run: request/response, durable writes, CPU-bound (unprotected); Enable;
//! the same three protected, then an idle window in which ftd's footprint is
//! sampled; Disable. Ratios are computed per run (protected over unprotected
//! throughput; for the CPU run, unprotected time over protected time).

use crate::bench::{say, sections, Bench};
use crate::checkpoints::{Checkpoints, Window};
use crate::footprint::{self, Footprint};
use crate::report::{ids, Target};
use crate::stats::{ms, percentile, percentile_ms};
use crate::workload::{self, RequestRun};
use anyhow::Result;
use std::time::{Duration, SystemTime};

const DOMAIN: &str = "bench";

/// One workload set on one side of the comparison.
#[derive(Debug, Default)]
struct Set {
    rr: RequestRun,
    writes: RequestRun,
    cpu_s: f64,
    /// The same CPU run by the guest's own clock.
    cpu_guest_s: f64,
    /// Checkpoints in each workload's window (protected only): rr, writes, cpu, idle.
    cps: Vec<Window>,
}

#[derive(Debug, Default)]
struct Samples {
    un: Vec<Set>,
    pr: Vec<Set>,
    protect_ms: Vec<f64>,
    fp_primary: Vec<Footprint>,
    fp_secondary: Vec<Footprint>,
}

pub fn run(b: &mut Bench) -> Result<()> {
    let g = b.boot("a", DOMAIN, 0, 512)?;
    let mut conn = b.connect(&g)?;
    footprint_idle(b)?;
    let iters = workload::calibrate_cpu(&mut conn, b.opts.cpu)?;
    say(&format!(
        "CPU workload: {iters} iterations per vCPU (about {:?} unprotected)",
        b.opts.cpu
    ));
    let mut cp = Checkpoints::watch(&b.lab.host("a")?.uri());
    let mut s = Samples::default();
    let result = (|| -> Result<()> {
        for run in 1..=b.opts.runs {
            say(&format!("overhead run {run}/{}: unprotected", b.opts.runs));
            let un = workloads(b, &g, iters, None)?;
            let t = b.protect(DOMAIN, "a", "b")?;
            say(&format!(
                "protected in {} ms; the same workloads protected",
                t.as_millis()
            ));
            let mut set = workloads(b, &g, iters, Some(&mut cp))?;
            let pids = [b.ftd_pid("a")?, b.ftd_pid("b")?];
            let t0 = SystemTime::now();
            let fp = footprint::measure(&pids, b.opts.idle);
            let t1 = SystemTime::now();
            std::thread::sleep(EVENT_LAG);
            set.cps.push(cp.window(DOMAIN, t0, t1));
            still_protected(b)?;
            s.un.push(un);
            s.protect_ms.push(ms(t));
            s.fp_primary.extend(fp[0]);
            s.fp_secondary.extend(fp[1]);
            s.pr.push(set);
            b.unprotect(DOMAIN, "a", "b")?;
        }
        Ok(())
    })();
    drop(conn);
    b.remove(DOMAIN);
    add_figures(b, &s);
    result
}

/// A run counts only if protection held throughout: a and b must still be
/// `protected` and `secondary` (a false failover ends the phase, with its cause).
fn still_protected(b: &Bench) -> Result<()> {
    let (sa, sb) = (
        b.ftds.status(&b.lab, "a", DOMAIN)?,
        b.ftds.status(&b.lab, "b", DOMAIN)?,
    );
    if sa.state != "protected" || sb.state != "secondary" {
        anyhow::bail!(
            "protection broke during the protected workloads: a is {} ({}), b is {} ({}); \
             see both hosts' ftd logs",
            sa.state,
            sa.last_failover,
            sb.state,
            sb.last_failover
        );
    }
    Ok(())
}

/// ftd on both hosts with one unprotected domain running and nothing protected.
fn footprint_idle(b: &mut Bench) -> Result<()> {
    let pids = [b.ftd_pid("a")?, b.ftd_pid("b")?];
    say(&format!(
        "ftd footprint idle for {:?} (a and b)",
        b.opts.idle
    ));
    let fp: Vec<Footprint> = footprint::measure(&pids, b.opts.idle)
        .into_iter()
        .flatten()
        .collect();
    let f = sections::FOOTPRINT;
    b.report.add(
        f,
        "ftd.rss_idle",
        "RSS idle (a, b)",
        "MiB",
        fp.iter().map(|f| f.rss_mib).collect(),
        Some(Target::Below(20.0)),
    );
    b.report.add(
        f,
        "ftd.anon_idle",
        "  of which anonymous (heap, stacks)",
        "MiB",
        fp.iter().map(|f| f.anon_mib).collect(),
        None,
    );
    b.report.add(
        f,
        "ftd.cpu_idle",
        "CPU idle (a, b)",
        "% core",
        fp.iter().map(|f| f.cpu_pct).collect(),
        Some(Target::Below(1.0)),
    );
    Ok(())
}

/// Request/response, durable writes, CPU-bound, each on a new connection; with
/// `cp`, the checkpoints of each workload's window too.
fn workloads(
    b: &Bench,
    g: &ftvirt_lab::Guest,
    iters: u64,
    cp: Option<&mut Checkpoints>,
) -> Result<Set> {
    let mut set = Set::default();
    let mut windows = Vec::new();
    let mut c = b.connect(g)?;
    let t0 = SystemTime::now();
    set.rr = workload::request_response(&mut c, b.opts.rr)?;
    windows.push((t0, SystemTime::now()));
    let mut c = b.connect(g)?;
    let t0 = SystemTime::now();
    set.writes = workload::durable_writes(&mut c, b.opts.writes)?;
    windows.push((t0, SystemTime::now()));
    let mut c = b.connect(g)?;
    let t0 = SystemTime::now();
    let cpu = workload::cpu(&mut c, iters)?;
    windows.push((t0, SystemTime::now()));
    set.cpu_s = cpu.wall.as_secs_f64();
    set.cpu_guest_s = cpu.guest_ms as f64 / 1000.0;
    if let Some(cp) = cp {
        std::thread::sleep(EVENT_LAG);
        set.cps = windows
            .into_iter()
            .map(|(t0, t1)| cp.window(DOMAIN, t0, t1))
            .collect();
    }
    say(&format!(
        "  {:.0} req/s (p50 {:.1} ms, p99 {:.1} ms), {:.0} durable writes/s, CPU run {:.2} s (guest clock {:.2} s)",
        set.rr.per_sec(),
        percentile_ms(&set.rr.rtts, 50.0),
        percentile_ms(&set.rr.rtts, 99.0),
        set.writes.per_sec(),
        set.cpu_s,
        set.cpu_guest_s
    ));
    Ok(set)
}

/// How long QEMU's events may take to reach us through libvirtd.
const EVENT_LAG: Duration = Duration::from_millis(300);

fn add_figures(b: &mut Bench, s: &Samples) {
    let r = &mut b.report;
    let col = |v: &[Set], f: fn(&Set) -> f64| v.iter().map(f).collect::<Vec<f64>>();
    let ratio = |f: fn(&Set) -> f64| {
        s.un.iter()
            .zip(&s.pr)
            .map(|(u, p)| f(p) / f(u))
            .collect::<Vec<f64>>()
    };
    let o = sections::OVERHEAD;
    let rps = |x: &Set| x.rr.per_sec();
    let p50 = |x: &Set| percentile_ms(&x.rr.rtts, 50.0);
    let p99 = |x: &Set| percentile_ms(&x.rr.rtts, 99.0);
    let wps = |x: &Set| x.writes.per_sec();
    r.add(
        o,
        "overhead.rr_rps_unprotected",
        "request/response, unprotected",
        "req/s",
        col(&s.un, rps),
        None,
    );
    r.add(
        o,
        "overhead.rr_rps_protected",
        "request/response, protected",
        "req/s",
        col(&s.pr, rps),
        None,
    );
    r.add(
        o,
        ids::RR_RATIO,
        "request/response throughput ratio (rr_ratio)",
        "x",
        ratio(rps),
        Some(Target::AtLeast(0.7)),
    );
    r.add(
        o,
        "overhead.rr_p50_unprotected",
        "request latency p50, unprotected",
        "ms",
        col(&s.un, p50),
        None,
    );
    r.add(
        o,
        "overhead.rr_p50_protected",
        "request latency p50, protected",
        "ms",
        col(&s.pr, p50),
        None,
    );
    r.add(
        o,
        "overhead.rr_p99_unprotected",
        "request latency p99, unprotected",
        "ms",
        col(&s.un, p99),
        None,
    );
    r.add(
        o,
        "overhead.rr_p99_protected",
        "request latency p99, protected",
        "ms",
        col(&s.pr, p99),
        None,
    );
    r.add(
        o,
        "overhead.write_ps_unprotected",
        "durable writes, unprotected",
        "writes/s",
        col(&s.un, wps),
        None,
    );
    r.add(
        o,
        "overhead.write_ps_protected",
        "durable writes, protected",
        "writes/s",
        col(&s.pr, wps),
        None,
    );
    r.add(
        o,
        ids::WRITE_RATIO,
        "durable write throughput ratio (write_ratio)",
        "x",
        ratio(wps),
        Some(Target::AtLeast(0.5)),
    );
    r.add(
        o,
        "overhead.cpu_s_unprotected",
        "CPU-bound run, unprotected",
        "s",
        col(&s.un, |x| x.cpu_s),
        None,
    );
    r.add(
        o,
        "overhead.cpu_s_protected",
        "CPU-bound run, protected",
        "s",
        col(&s.pr, |x| x.cpu_s),
        None,
    );
    let cpu =
        s.un.iter()
            .zip(&s.pr)
            .map(|(u, p)| u.cpu_s / p.cpu_s)
            .collect();
    r.add(
        o,
        ids::CPU_RATIO,
        "CPU-bound speed ratio (cpu_ratio = time unprot/prot)",
        "x",
        cpu,
        Some(Target::AtLeast(0.9)),
    );

    let c = sections::CHECKPOINTS;
    for (i, (id_rate, id_pause, what)) in [
        ("cp.per_min_rr", "cp.pause_rr", "request/response"),
        ("cp.per_min_write", "cp.pause_write", "durable writes"),
        ("cp.per_min_cpu", "cp.pause_cpu", "CPU-bound"),
        ("cp.per_min_idle", "cp.pause_idle", "idle"),
    ]
    .into_iter()
    .enumerate()
    {
        let wins: Vec<&Window> = s.pr.iter().filter_map(|x| x.cps.get(i)).collect();
        r.add(
            c,
            id_rate,
            format!("checkpoints per minute, {what}"),
            "/min",
            wins.iter().map(|w| w.per_minute()).collect(),
            None,
        );
        let pauses = wins
            .iter()
            .filter(|w| !w.pauses_ms.is_empty())
            .map(|w| {
                let mut p = w.pauses_ms.clone();
                p.sort_by(f64::total_cmp);
                percentile(&p, 50.0)
            })
            .collect();
        r.add(
            c,
            id_pause,
            format!("guest pause per checkpoint, {what} (run's median)"),
            "ms",
            pauses,
            None,
        );
    }
    let p = sections::PROTECT;
    r.add(
        p,
        "protect.ms_512",
        "Enable -> protected, 512 MiB (overhead runs)",
        "ms",
        s.protect_ms.clone(),
        None,
    );
    let f = sections::FOOTPRINT;
    let rss = |v: &[Footprint]| v.iter().map(|f| f.rss_mib).collect::<Vec<f64>>();
    let cpu = |v: &[Footprint]| v.iter().map(|f| f.cpu_pct).collect::<Vec<f64>>();
    r.add(
        f,
        "ftd.rss_protecting_primary",
        "RSS protecting one domain, primary (a)",
        "MiB",
        rss(&s.fp_primary),
        Some(Target::Below(20.0)),
    );
    r.add(
        f,
        "ftd.rss_protecting_secondary",
        "RSS protecting one domain, secondary (b)",
        "MiB",
        rss(&s.fp_secondary),
        Some(Target::Below(20.0)),
    );
    let anon = |v: &[Footprint]| v.iter().map(|f| f.anon_mib).collect::<Vec<f64>>();
    r.add(
        f,
        "ftd.anon_protecting_primary",
        "  of which anonymous (heap, stacks), primary",
        "MiB",
        anon(&s.fp_primary),
        None,
    );
    r.add(
        f,
        "ftd.pss_protecting_primary",
        "  proportional (PSS: shared libraries split), primary",
        "MiB",
        s.fp_primary.iter().map(|f| f.pss_mib).collect(),
        None,
    );
    r.add(
        f,
        "ftd.cpu_protecting_primary",
        "CPU protecting one domain (idle guest), primary",
        "% core",
        cpu(&s.fp_primary),
        None,
    );
    r.add(
        f,
        "ftd.cpu_protecting_secondary",
        "CPU protecting one domain (idle guest), secondary",
        "% core",
        cpu(&s.fp_secondary),
        None,
    );
}
