//! The `CPU` command: a CPU-bound checksum loop run in parallel on every online CPU.
//!
//! One thread per CPU, each pinned to its CPU with `sched_setaffinity`, runs
//! `iterations` steps of an xorshift64 generator folded into an FNV-1a style hash. At
//! the end each thread asks `sched_getcpu` where it is, so the reply's `ran_on` proves
//! that every vCPU did work (and that the pinning held). The sum is the wrapping sum
//! of the per-thread hashes (each thread seeded with its CPU number), so it is the
//! same for the same iterations and CPU set.

use std::fmt;
use std::time::Instant;

/// What a `CPU` run did; `Display` is the reply line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuReport {
    /// Number of threads (= CPUs asked for).
    pub cpus: usize,
    /// Wall-clock time of the whole run, spawn to last join.
    pub ms: u128,
    /// Per thread, in CPU order: the CPU `sched_getcpu` reported at the end
    /// (`None` if the call failed).
    pub ran_on: Vec<Option<usize>>,
    /// Combined checksum.
    pub sum: u64,
}

impl fmt::Display for CpuReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ran_on: Vec<String> = self
            .ran_on
            .iter()
            .map(|c| c.map_or_else(|| "?".to_string(), |c| c.to_string()))
            .collect();
        write!(
            f,
            "CPU cpus={} ms={} ran_on={} sum={:016x}",
            self.cpus,
            self.ms,
            ran_on.join(","),
            self.sum
        )
    }
}

/// Run the loop on each CPU of `cpus` in parallel and wait for all of them.
pub fn run(iterations: u64, cpus: &[usize]) -> CpuReport {
    let t0 = Instant::now();
    let handles: Vec<_> = cpus
        .iter()
        .map(|&cpu| {
            std::thread::spawn(move || {
                if let Err(e) = pin_to(cpu) {
                    eprintln!("FTVIRT-GUEST: warning: cannot pin a CPU thread to cpu {cpu}: {e}");
                }
                let sum = work(cpu as u64, iterations);
                (current_cpu(), sum)
            })
        })
        .collect();
    let mut ran_on = Vec::with_capacity(cpus.len());
    let mut sum = 0u64;
    for h in handles {
        // The work loop cannot panic; a failed join would be a bug worth seeing.
        let (cpu, s) = h.join().expect("CPU work thread panicked");
        ran_on.push(cpu);
        sum = sum.wrapping_add(s);
    }
    CpuReport {
        cpus: cpus.len(),
        ms: t0.elapsed().as_millis(),
        ran_on,
        sum,
    }
}

/// The checksum loop: `iterations` xorshift64 steps, each folded into the hash.
pub fn work(seed: u64, iterations: u64) -> u64 {
    let mut x = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut h = crate::record::fnv1a64_start();
    for _ in 0..std::hint::black_box(iterations) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        h = (h ^ x).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Pin the calling thread to one CPU.
fn pin_to(cpu: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: cpu is below CPU_SETSIZE, checked above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; the size matches the set we pass.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The CPU the calling thread runs on now.
fn current_cpu() -> Option<usize> {
    // SAFETY: no arguments, no memory access.
    let c = unsafe { libc::sched_getcpu() };
    usize::try_from(c).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_format() {
        let r = CpuReport {
            cpus: 2,
            ms: 1234,
            ran_on: vec![Some(0), Some(1)],
            sum: 0xabc,
        };
        assert_eq!(
            r.to_string(),
            "CPU cpus=2 ms=1234 ran_on=0,1 sum=0000000000000abc"
        );
        let r = CpuReport {
            cpus: 1,
            ms: 0,
            ran_on: vec![None],
            sum: u64::MAX,
        };
        assert_eq!(
            r.to_string(),
            "CPU cpus=1 ms=0 ran_on=? sum=ffffffffffffffff"
        );
    }

    #[test]
    fn work_is_deterministic_and_seeded() {
        assert_eq!(work(0, 1000), work(0, 1000));
        assert_ne!(work(0, 1000), work(1, 1000));
        assert_ne!(work(0, 1000), work(0, 1001));
    }

    #[test]
    fn runs_pinned_on_every_cpu() {
        let cpus = crate::sysinfo::online_cpus();
        assert!(!cpus.is_empty());
        let r = run(100_000, &cpus);
        assert_eq!(r.cpus, cpus.len());
        let expected: Vec<Option<usize>> = cpus.iter().map(|&c| Some(c)).collect();
        assert_eq!(r.ran_on, expected);
        let sum = cpus
            .iter()
            .fold(0u64, |s, &c| s.wrapping_add(work(c as u64, 100_000)));
        assert_eq!(r.sum, sum);
    }
}
