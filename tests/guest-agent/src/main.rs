//! `ftvirt-guest-agent`: the test service inside the lab guest.
//!
//! A static binary started by the initramfs `/init` (`tests/guest-agent/init.sh`). It
//! serves a line protocol on TCP (see [`protocol`]) that lets the tests check, through
//! a COLO failover, that a long-lived connection survives ([`server`]), that
//! acknowledged writes are on the disk ([`log`], [`disk`], [`record`]) and that every
//! vCPU runs ([`cpu`]).
//!
//! Usage: `ftvirt-guest-agent [--port N] [--disk PATH]` (defaults 7000, `/dev/vda`).
//! On start it prints one line the lab waits for:
//! `FTVIRT-GUEST: READY port=<p> nproc=<n> boot_id=<id> last=<n> uptime_ms=<n>`.

mod cpu;
mod disk;
mod log;
mod protocol;
mod record;
mod server;
mod sysinfo;
#[cfg(test)]
mod testutil;

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

const USAGE: &str = "usage: ftvirt-guest-agent [--port N] [--disk PATH]";

#[derive(Debug)]
struct Args {
    port: u16,
    disk: PathBuf,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        port: 7000,
        disk: PathBuf::from("/dev/vda"),
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "--port" => {
                let v = value()?;
                a.port = v.parse().map_err(|_| format!("bad port {v:?}"))?;
            }
            "--disk" => a.disk = PathBuf::from(value()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

fn main() {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("ftvirt-guest-agent: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("FTVIRT-GUEST: ERROR {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let log = log::DurableLog::open(&args.disk)
        .map_err(|e| format!("cannot open the log disk {}: {e}", args.disk.display()))?;
    if !log.reads_are_direct() {
        eprintln!(
            "FTVIRT-GUEST: note: {} does not support O_DIRECT; LAST/GET read through the page cache",
            args.disk.display()
        );
    }
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, args.port))
        .map_err(|e| format!("cannot listen on port {}: {e}", args.port))?;
    let cpus = sysinfo::online_cpus();
    let boot_id = sysinfo::boot_id().map_err(|e| format!("cannot read the boot id: {e}"))?;
    let last = log.last_durable();
    let agent = Arc::new(server::Agent::new(log, cpus.clone(), boot_id.clone()));
    let uptime = sysinfo::uptime_ms().unwrap_or(0);
    println!(
        "FTVIRT-GUEST: READY port={} nproc={} boot_id={boot_id} last={last} uptime_ms={uptime}",
        args.port,
        cpus.len()
    );
    server::serve(listener, agent).map_err(|e| format!("serving: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Args, String> {
        parse_args(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn args() {
        let a = parse(&[]).unwrap();
        assert_eq!((a.port, a.disk.to_str().unwrap()), (7000, "/dev/vda"));
        let a = parse(&["--port", "17", "--disk=/tmp/x"]).unwrap();
        assert_eq!((a.port, a.disk.to_str().unwrap()), (17, "/tmp/x"));
        assert_eq!(parse(&["--port"]).unwrap_err(), "--port needs a value");
        assert_eq!(parse(&["--port", "x"]).unwrap_err(), "bad port \"x\"");
        assert!(parse(&["--bogus"]).is_err());
    }
}
