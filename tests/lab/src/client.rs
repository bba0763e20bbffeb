//! The client: the outside world, talking to guests from the client namespace.
//!
//! Sockets are created by a short-lived thread that has entered the client's
//! network namespace (`setns`); a socket stays in the namespace it was created in,
//! so the test process itself can then use it like any other stream.

use crate::error::{LabError, Result};
use nix::sched::{setns, CloneFlags};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Open a TCP connection from inside the network namespace at `ns`.
pub fn connect_in(ns: &Path, addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
    let ns: PathBuf = ns.to_path_buf();
    std::thread::spawn(move || -> Result<TcpStream> {
        let f = std::fs::File::open(&ns).map_err(|e| LabError::io("opening", &ns, e))?;
        setns(&f, CloneFlags::CLONE_NEWNET)
            .map_err(|e| LabError::io("entering network namespace", &ns, e.into()))?;
        TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| LabError::Guest(format!("connecting to {addr}: {e}")))
    })
    .join()
    .map_err(|_| LabError::Guest("client thread panicked".into()))?
}

/// One long-lived connection to a guest's line service (`tests/guest-agent`).
#[derive(Debug)]
pub struct GuestConn {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// `INFO` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestInfo {
    pub nproc: u32,
    pub boot_id: String,
    pub uptime_ms: u64,
    pub last: u64,
}

/// `CPU` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuRun {
    pub cpus: u32,
    pub ms: u64,
    pub ran_on: Vec<u32>,
}

impl GuestConn {
    pub fn open(ns: &Path, addr: SocketAddr, timeout: Duration) -> Result<GuestConn> {
        let s = connect_in(ns, addr, timeout)?;
        s.set_nodelay(true).ok();
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let reader = BufReader::new(s.try_clone().map_err(|e| LabError::Guest(e.to_string()))?);
        Ok(GuestConn {
            addr,
            reader,
            writer: s,
        })
    }

    /// How long a reply may take before the request fails.
    pub fn set_timeout(&self, t: Duration) {
        self.writer.set_read_timeout(Some(t)).ok();
    }

    /// Send one line, read one line (the reply), with the round-trip time.
    pub fn request_timed(&mut self, line: &str) -> Result<(String, Duration)> {
        let t0 = Instant::now();
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| LabError::Guest(format!("{}: sending {line:?}: {e}", self.addr)))?;
        let mut r = String::new();
        let n = self.reader.read_line(&mut r).map_err(|e| {
            LabError::Guest(format!(
                "{}: waiting for the reply to {line:?}: {e}",
                self.addr
            ))
        })?;
        if n == 0 {
            return Err(LabError::Guest(format!(
                "{}: connection closed before replying to {line:?}",
                self.addr
            )));
        }
        Ok((r.trim_end().to_string(), t0.elapsed()))
    }

    pub fn request(&mut self, line: &str) -> Result<String> {
        self.request_timed(line).map(|(r, _)| r)
    }

    fn expect(&mut self, line: &str, prefix: &str) -> Result<String> {
        let r = self.request(line)?;
        if !r.starts_with(prefix) {
            return Err(LabError::Guest(format!(
                "{line:?} got {r:?}, expected {prefix:?}..."
            )));
        }
        Ok(r)
    }

    pub fn info(&mut self) -> Result<GuestInfo> {
        let r = self.expect("INFO", "INFO ")?;
        let f = |k: &str| {
            field(&r, k).ok_or_else(|| LabError::Guest(format!("INFO reply lacks {k}: {r:?}")))
        };
        Ok(GuestInfo {
            nproc: num(&f("nproc")?)?,
            boot_id: f("boot_id")?,
            uptime_ms: num(&f("uptime_ms")?)?,
            last: num(&f("last")?)?,
        })
    }

    /// `SEQ n`: returns the connection-local request count the guest saw.
    pub fn seq(&mut self, n: u64) -> Result<u64> {
        let r = self.expect(&format!("SEQ {n}"), &format!("SEQ {n} "))?;
        num(&field(&r, "conn")
            .ok_or_else(|| LabError::Guest(format!("SEQ reply lacks conn: {r:?}")))?)
    }

    /// `PUT n payload`: returns once the guest says the record is durable.
    pub fn put(&mut self, n: u64, payload: &str) -> Result<()> {
        self.expect(&format!("PUT {n} {payload}"), &format!("DURABLE {n}"))?;
        Ok(())
    }

    /// `LAST`: highest durable record, read back from the guest's disk.
    pub fn last(&mut self) -> Result<u64> {
        let r = self.expect("LAST", "LAST ")?;
        num(r.trim_start_matches("LAST ").trim())
    }

    /// `CPU iterations`: CPU-bound work on every vCPU in parallel.
    pub fn cpu(&mut self, iterations: u64) -> Result<CpuRun> {
        let r = self.expect(&format!("CPU {iterations}"), "CPU ")?;
        let f = |k: &str| {
            field(&r, k).ok_or_else(|| LabError::Guest(format!("CPU reply lacks {k}: {r:?}")))
        };
        let ran_on = f("ran_on")?
            .split(',')
            .map(num::<u32>)
            .collect::<Result<Vec<u32>>>()?;
        Ok(CpuRun {
            cpus: num(&f("cpus")?)?,
            ms: num(&f("ms")?)?,
            ran_on,
        })
    }
}

/// `key=value` out of a reply line.
pub fn field(line: &str, key: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .map(String::from)
}

fn num<T: std::str::FromStr>(s: &str) -> Result<T> {
    s.parse::<T>()
        .map_err(|_| LabError::Guest(format!("not a number: {s:?}")))
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_are_found_by_key() {
        let l = "INFO nproc=2 boot_id=ab-cd uptime_ms=1234 last=7";
        assert_eq!(field(l, "nproc").as_deref(), Some("2"));
        assert_eq!(field(l, "boot_id").as_deref(), Some("ab-cd"));
        assert_eq!(field(l, "last").as_deref(), Some("7"));
        assert_eq!(field(l, "missing"), None);
        // A key is not matched by a longer key that starts with it.
        assert_eq!(field("x uptime_ms=5", "uptime"), None);
    }
}
