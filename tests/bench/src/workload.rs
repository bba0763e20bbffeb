//! The guest workloads, each on a connection of its own from the client namespace:
//! request/response (`SEQ n` back to back), durable writes (`PUT n`, each
//! `fdatasync`ed by the guest before it answers) and CPU-bound work (`CPU k`, a
//! checksum loop on both vCPUs). Times are the client's.

use anyhow::{Context, Result};
use ftvirt_lab::GuestConn;
use std::time::{Duration, Instant};

/// Request/response: how many, how fast, and every round trip.
#[derive(Debug, Clone, Default)]
pub struct RequestRun {
    pub count: u64,
    pub elapsed: Duration,
    pub rtts: Vec<Duration>,
}

impl RequestRun {
    pub fn per_sec(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// `SEQ n` back to back for `dur`.
pub fn request_response(conn: &mut GuestConn, dur: Duration) -> Result<RequestRun> {
    let mut run = RequestRun::default();
    let t0 = Instant::now();
    while t0.elapsed() < dur {
        let n = run.count + 1;
        let (reply, rtt) = conn
            .request_timed(&format!("SEQ {n}"))
            .context("request/response workload")?;
        if !reply.starts_with(&format!("SEQ {n} ")) {
            anyhow::bail!("SEQ {n} got {reply:?}");
        }
        run.rtts.push(rtt);
        run.count = n;
    }
    run.elapsed = t0.elapsed();
    Ok(run)
}

/// `PUT n payload` back to back for `dur`, continuing the guest's record sequence.
pub fn durable_writes(conn: &mut GuestConn, dur: Duration) -> Result<RequestRun> {
    let mut n = conn.last().context("LAST before the write workload")?;
    let mut run = RequestRun::default();
    let t0 = Instant::now();
    while t0.elapsed() < dur {
        n += 1;
        let t = Instant::now();
        conn.put(n, &format!("bench-{n}"))
            .context("durable-write workload")?;
        run.rtts.push(t.elapsed());
        run.count += 1;
    }
    run.elapsed = t0.elapsed();
    Ok(run)
}

/// One `CPU iterations` request: the client's time for it and the guest's own.
#[derive(Debug, Clone, Copy)]
pub struct CpuRun {
    pub wall: Duration,
    pub guest_ms: u64,
}

pub fn cpu(conn: &mut GuestConn, iterations: u64) -> Result<CpuRun> {
    let t0 = Instant::now();
    let r = conn.cpu(iterations).context("CPU-bound workload")?;
    if r.cpus != 2 || r.ran_on.len() != 2 {
        anyhow::bail!(
            "CPU ran on {:?} of {} CPUs, expected both vCPUs",
            r.ran_on,
            r.cpus
        );
    }
    Ok(CpuRun {
        wall: t0.elapsed(),
        guest_ms: r.ms,
    })
}

/// Iterations for a CPU run of about `target` on this guest, unprotected.
pub fn calibrate_cpu(conn: &mut GuestConn, target: Duration) -> Result<u64> {
    let mut it: u64 = 1_000_000;
    loop {
        let r = cpu(conn, it)?;
        let ms = r.wall.as_millis() as u64;
        if ms >= 300 || it >= 1 << 40 {
            let scaled = it as f64 * target.as_secs_f64() * 1000.0 / ms.max(1) as f64;
            return Ok(scaled.max(1.0) as u64);
        }
        it *= 8;
    }
}
