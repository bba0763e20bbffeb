//! The TCP service: a thread per connection, one reply line per request line, in order.
//!
//! Connections are long-lived: a client may send any number of requests on one
//! connection, and `SEQ` replies carry the per-connection request count so it can
//! check both ordering and that it is still talking over the same connection (what a
//! COLO failover must preserve). Replies are written with `TCP_NODELAY`, one `write`
//! per reply, so a round-trip time measured by a client is the agent's, not Nagle's.

use crate::cpu;
use crate::log::DurableLog;
use crate::protocol::{self, Request};
use crate::sysinfo;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

/// Longest request line accepted (a `PUT` with the largest payload is ~430 bytes).
pub const MAX_LINE: usize = 1024;

/// Everything the request handlers share.
#[derive(Debug)]
pub struct Agent {
    log: DurableLog,
    cpus: Vec<usize>,
    boot_id: String,
}

/// What to do after a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    KeepOpen,
    Close,
}

impl Agent {
    pub fn new(log: DurableLog, cpus: Vec<usize>, boot_id: String) -> Self {
        Agent { log, cpus, boot_id }
    }

    /// The reply line (without `\n`) to one request line; `conn_count` is this line's
    /// number on its connection, from 1.
    pub fn respond(&self, line: &[u8], conn_count: u64) -> (Vec<u8>, After) {
        let req = match protocol::parse(line) {
            Ok(r) => r,
            Err(e) => return (format!("ERR {e}").into_bytes(), After::KeepOpen),
        };
        let text = match req {
            Request::Info => match sysinfo::uptime_ms() {
                Ok(up) => format!(
                    "INFO nproc={} boot_id={} uptime_ms={up} last={}",
                    self.cpus.len(),
                    self.boot_id,
                    self.log.last_durable()
                ),
                Err(e) => format!("ERR cannot read /proc/uptime: {e}"),
            },
            Request::Seq(n) => format!("SEQ {n} conn={conn_count}"),
            Request::Put { n, payload } => match self.log.append(n, payload) {
                Ok(()) => format!("DURABLE {n}"),
                Err(e) => format!("ERR {e}"),
            },
            Request::Last => match self.log.scan_last() {
                Ok(n) => format!("LAST {n}"),
                Err(e) => format!("ERR disk read failed: {e}"),
            },
            Request::Get(n) => match self.log.get(n) {
                Ok(Some(payload)) => {
                    let mut r = format!("REC {n} ").into_bytes();
                    r.extend_from_slice(&payload);
                    return (r, After::KeepOpen);
                }
                Ok(None) => format!("ERR no record {n}"),
                Err(e) => format!("ERR disk read failed: {e}"),
            },
            Request::Cpu(iterations) => cpu::run(iterations, &self.cpus).to_string(),
            Request::Quit => return (b"BYE".to_vec(), After::Close),
        };
        (text.into_bytes(), After::KeepOpen)
    }
}

/// Accept connections forever, one thread each.
pub fn serve(listener: TcpListener, agent: Arc<Agent>) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                let agent = Arc::clone(&agent);
                std::thread::spawn(move || {
                    if let Err(e) = handle(stream, &agent) {
                        eprintln!("FTVIRT-GUEST: connection from {peer}: {e}");
                    }
                });
            }
            Err(e) => {
                // EMFILE and friends: say so, back off a little, keep serving.
                eprintln!("FTVIRT-GUEST: accept failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

/// Serve one connection until `QUIT`, end of input, an over-long line or an I/O error.
fn handle(stream: TcpStream, agent: &Agent) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    let mut line = Vec::with_capacity(MAX_LINE + 1);
    let mut count = 0u64;
    loop {
        line.clear();
        let got = (&mut input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if got == 0 {
            return Ok(());
        }
        count += 1;
        let complete = line.last() == Some(&b'\n');
        if !complete && line.len() > MAX_LINE {
            out.write_all(format!("ERR line too long (max {MAX_LINE} bytes)\n").as_bytes())?;
            return Ok(());
        }
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        let (mut reply, after) = agent.respond(body, count);
        reply.push(b'\n');
        out.write_all(&reply)?;
        // A last line without `\n` is answered, then the connection ends (EOF).
        if after == After::Close || !complete {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDisk;

    struct Client {
        out: TcpStream,
        input: BufReader<TcpStream>,
    }

    impl Client {
        fn connect(addr: std::net::SocketAddr) -> Self {
            let s = TcpStream::connect(addr).unwrap();
            Client {
                out: s.try_clone().unwrap(),
                input: BufReader::new(s),
            }
        }

        fn ask(&mut self, line: &str) -> String {
            self.out.write_all(format!("{line}\n").as_bytes()).unwrap();
            let mut r = String::new();
            self.input.read_line(&mut r).unwrap();
            assert!(
                r.ends_with('\n'),
                "reply to {line:?} not a full line: {r:?}"
            );
            r.trim_end_matches('\n').to_string()
        }
    }

    fn start(disk: &TempDisk) -> std::net::SocketAddr {
        let log = DurableLog::open(disk.path()).unwrap();
        let agent = Arc::new(Agent::new(
            log,
            sysinfo::online_cpus(),
            "test-boot-id".into(),
        ));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || serve(listener, agent));
        addr
    }

    #[test]
    fn real_server_over_one_connection() {
        let disk = TempDisk::new("server", 4 << 20);
        let addr = start(&disk);
        let mut c = Client::connect(addr);
        let nproc = sysinfo::online_cpus().len();
        let info = c.ask("INFO");
        assert!(
            info.starts_with(&format!(
                "INFO nproc={nproc} boot_id=test-boot-id uptime_ms="
            )),
            "{info}"
        );
        assert!(info.ends_with(" last=0"), "{info}");
        assert_eq!(c.ask("SEQ 10"), "SEQ 10 conn=2");
        assert_eq!(c.ask("PUT 1 first record"), "DURABLE 1");
        assert_eq!(c.ask("PUT 2 second  one "), "DURABLE 2");
        assert_eq!(c.ask("PUT 5 skip"), "ERR expected 3 got 5");
        assert_eq!(c.ask("LAST"), "LAST 2");
        assert_eq!(c.ask("GET 2"), "REC 2 second  one ");
        assert_eq!(c.ask("GET 3"), "ERR no record 3");
        assert_eq!(c.ask("SEQ 11"), "SEQ 11 conn=9");
        assert!(c.ask("INFO").ends_with(" last=2"));
        let cpu = c.ask("CPU 1000");
        assert!(cpu.starts_with(&format!("CPU cpus={nproc} ms=")), "{cpu}");
        assert_eq!(
            c.ask("NOPE 1"),
            "ERR unknown command: NOPE; try INFO, SEQ, PUT, LAST, GET, CPU, QUIT"
        );
        assert_eq!(c.ask("QUIT"), "BYE");
        let mut rest = String::new();
        assert_eq!(c.input.read_line(&mut rest).unwrap(), 0, "closed after BYE");
    }

    #[test]
    fn connections_count_separately_and_share_the_log() {
        let disk = TempDisk::new("server-two", 4 << 20);
        let addr = start(&disk);
        let mut a = Client::connect(addr);
        let mut b = Client::connect(addr);
        assert_eq!(a.ask("SEQ 1"), "SEQ 1 conn=1");
        assert_eq!(b.ask("SEQ 1"), "SEQ 1 conn=1");
        assert_eq!(a.ask("PUT 1 from a"), "DURABLE 1");
        assert_eq!(b.ask("PUT 1 from b"), "ERR expected 2 got 1");
        assert_eq!(b.ask("PUT 2 from b"), "DURABLE 2");
        assert_eq!(a.ask("LAST"), "LAST 2");
        assert_eq!(a.ask("SEQ 2"), "SEQ 2 conn=4");
    }

    #[test]
    fn over_long_line_is_refused_and_closes() {
        let disk = TempDisk::new("server-long", 4 << 20);
        let addr = start(&disk);
        let mut c = Client::connect(addr);
        let long = format!("PUT 1 {}", "x".repeat(MAX_LINE));
        assert_eq!(c.ask(&long), "ERR line too long (max 1024 bytes)");
    }
}
