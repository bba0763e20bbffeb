//! Facts about the machine the agent runs on: usable CPUs, boot id, uptime.

use std::io;

/// The CPUs this process may run on (its `sched_getaffinity` mask), ascending. In
/// the guest that is every online vCPU; `nproc` is its length.
pub fn online_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the size matches the set we pass.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return fallback_cpus();
    }
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: i is below CPU_SETSIZE.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect();
    if cpus.is_empty() {
        fallback_cpus()
    } else {
        cpus
    }
}

fn fallback_cpus() -> Vec<usize> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..n).collect()
}

/// `/proc/sys/kernel/random/boot_id`: a UUID that changes on every boot, so a client
/// can tell a reboot from a failover (COLO keeps it: the secondary is a copy).
pub fn boot_id() -> io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .to_string())
}

/// Milliseconds since boot, from `/proc/uptime`.
pub fn uptime_ms() -> io::Result<u64> {
    let s = std::fs::read_to_string("/proc/uptime")?;
    parse_uptime_ms(&s)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad /proc/uptime"))
}

fn parse_uptime_ms(s: &str) -> Option<u64> {
    let secs = s.split_whitespace().next()?;
    let (whole, frac) = secs.split_once('.').unwrap_or((secs, "0"));
    let whole: u64 = whole.parse().ok()?;
    // /proc/uptime has two decimals; take up to three as milliseconds.
    let frac3: String = frac.chars().chain("000".chars()).take(3).collect();
    let frac: u64 = frac3.parse().ok()?;
    Some(whole * 1000 + frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_parsing() {
        assert_eq!(parse_uptime_ms("2.53 3.90\n"), Some(2530));
        assert_eq!(parse_uptime_ms("12345.5 1.0"), Some(12_345_500));
        assert_eq!(parse_uptime_ms("7 1"), Some(7000));
        assert_eq!(parse_uptime_ms("x"), None);
    }

    #[test]
    fn host_facts() {
        assert!(!online_cpus().is_empty());
        assert_eq!(boot_id().unwrap().len(), 36);
        assert!(uptime_ms().unwrap() > 0);
    }
}
