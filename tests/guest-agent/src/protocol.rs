//! The line protocol: parsing one request line into a [`Request`].
//!
//! One request per line (`\n`, an optional `\r` before it is dropped), one reply line per
//! request, in order. Command words are matched case-insensitively. Requests and their
//! replies (formatted by [`crate::server`]):
//!
//! | request                 | reply                                                              |
//! |-------------------------|--------------------------------------------------------------------|
//! | `INFO`                  | `INFO nproc=<n> boot_id=<uuid> uptime_ms=<n> last=<n>`              |
//! | `SEQ <n>`               | `SEQ <n> conn=<k>` (k: requests so far on this connection, from 1) |
//! | `PUT <n> <payload...>`  | `DURABLE <n>` after fdatasync, or `ERR expected <last+1> got <n>`  |
//! | `LAST`                  | `LAST <n>` (read back from the disk)                               |
//! | `GET <n>`               | `REC <n> <payload>` or `ERR no record <n>`                         |
//! | `CPU <iterations>`      | `CPU cpus=<n> ms=<n> ran_on=<cpu,cpu,...> sum=<16 hex digits>`     |
//! | `QUIT`                  | `BYE`, then the agent closes the connection                        |
//!
//! The `PUT` payload is everything after the single space that follows `<n>` (inner and
//! trailing spaces kept, may be empty), at most [`MAX_PAYLOAD`] bytes, any bytes but
//! newline. Every error reply starts with `ERR `.

use crate::record::MAX_PAYLOAD;
use std::fmt;

/// Largest `CPU` iteration count accepted (minutes of TCG time; a typo guard).
pub const MAX_CPU_ITERATIONS: u64 = 10_000_000_000;

/// One parsed request line. `PUT` borrows its payload from the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    Info,
    Seq(u64),
    Put { n: u64, payload: &'a [u8] },
    Last,
    Get(u64),
    Cpu(u64),
    Quit,
}

/// Why a line is not a request; `Display` is the reply text after `ERR `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// An empty (or all-blank) line.
    Empty,
    /// The first word is not a command.
    Unknown(String),
    /// A known command with missing, extra or malformed arguments.
    Usage(&'static str),
    /// A `PUT` payload over [`MAX_PAYLOAD`] bytes.
    PayloadTooLong(usize),
}

const COMMANDS: &str = "try INFO, SEQ, PUT, LAST, GET, CPU, QUIT";

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => write!(f, "empty request; {COMMANDS}"),
            ParseError::Unknown(w) => write!(f, "unknown command: {w}; {COMMANDS}"),
            ParseError::Usage(u) => write!(f, "usage: {u}"),
            ParseError::PayloadTooLong(n) => {
                write!(f, "payload too long: {n} bytes (max {MAX_PAYLOAD})")
            }
        }
    }
}

/// Parse one line (without its `\n`; a trailing `\r` is ignored).
pub fn parse(line: &[u8]) -> Result<Request<'_>, ParseError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (word, rest) = split_word(line);
    if word.is_empty() {
        return Err(ParseError::Empty);
    }
    let is = |name: &str| word.eq_ignore_ascii_case(name.as_bytes());
    if is("INFO") {
        no_args(rest, "INFO").map(|()| Request::Info)
    } else if is("SEQ") {
        one_number(rest, "SEQ <n>", u64::MAX).map(Request::Seq)
    } else if is("PUT") {
        parse_put(rest)
    } else if is("LAST") {
        no_args(rest, "LAST").map(|()| Request::Last)
    } else if is("GET") {
        one_number(rest, "GET <n>", u64::MAX).map(Request::Get)
    } else if is("CPU") {
        one_number(
            rest,
            "CPU <iterations> (0..=10000000000)",
            MAX_CPU_ITERATIONS,
        )
        .map(Request::Cpu)
    } else if is("QUIT") {
        no_args(rest, "QUIT").map(|()| Request::Quit)
    } else {
        Err(ParseError::Unknown(
            String::from_utf8_lossy(word).into_owned(),
        ))
    }
}

/// The first blank-separated word (leading blanks skipped) and what follows it, with
/// the one separating blank removed.
fn split_word(s: &[u8]) -> (&[u8], &[u8]) {
    let start = s.iter().position(|b| !is_blank(*b)).unwrap_or(s.len());
    let s = &s[start..];
    let end = s.iter().position(|b| is_blank(*b)).unwrap_or(s.len());
    let rest = if end < s.len() {
        &s[end + 1..]
    } else {
        &[][..]
    };
    (&s[..end], rest)
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn no_args(rest: &[u8], usage: &'static str) -> Result<(), ParseError> {
    if rest.iter().all(|b| is_blank(*b)) {
        Ok(())
    } else {
        Err(ParseError::Usage(usage))
    }
}

fn number(word: &[u8], usage: &'static str, max: u64) -> Result<u64, ParseError> {
    let bad = || ParseError::Usage(usage);
    if word.is_empty() || !word.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let n: u64 = std::str::from_utf8(word)
        .map_err(|_| bad())?
        .parse()
        .map_err(|_| bad())?;
    if n > max {
        return Err(bad());
    }
    Ok(n)
}

fn one_number(rest: &[u8], usage: &'static str, max: u64) -> Result<u64, ParseError> {
    let (word, tail) = split_word(rest);
    no_args(tail, usage)?;
    number(word, usage, max)
}

fn parse_put(rest: &[u8]) -> Result<Request<'_>, ParseError> {
    const USAGE: &str = "PUT <n> <payload>";
    let (word, payload) = split_word(rest);
    let n = number(word, USAGE, u64::MAX)?;
    if payload.len() > MAX_PAYLOAD {
        return Err(ParseError::PayloadTooLong(payload.len()));
    }
    Ok(Request::Put { n, payload })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Request<'_> {
        parse(line.as_bytes()).unwrap()
    }

    fn err(line: &str) -> String {
        parse(line.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn simple_commands() {
        assert_eq!(ok("INFO"), Request::Info);
        assert_eq!(ok("info\r"), Request::Info);
        assert_eq!(ok("LAST "), Request::Last);
        assert_eq!(ok("QUIT"), Request::Quit);
        assert_eq!(ok("SEQ 42"), Request::Seq(42));
        assert_eq!(ok("seq 7"), Request::Seq(7));
        assert_eq!(ok("GET 18446744073709551615"), Request::Get(u64::MAX));
        assert_eq!(ok("CPU 1000000"), Request::Cpu(1_000_000));
        assert_eq!(ok("CPU 0"), Request::Cpu(0));
    }

    #[test]
    fn put_payload_keeps_spaces() {
        assert_eq!(
            ok("PUT 3 hello  world "),
            Request::Put {
                n: 3,
                payload: b"hello  world "
            }
        );
        assert_eq!(ok("PUT 4"), Request::Put { n: 4, payload: b"" });
        assert_eq!(ok("PUT 5 "), Request::Put { n: 5, payload: b"" });
        let max = format!("PUT 1 {}", "x".repeat(MAX_PAYLOAD));
        assert!(matches!(ok(&max), Request::Put { n: 1, payload } if payload.len() == 400));
    }

    #[test]
    fn errors() {
        assert_eq!(
            err("HELLO there"),
            "unknown command: HELLO; try INFO, SEQ, PUT, LAST, GET, CPU, QUIT"
        );
        assert_eq!(
            err(""),
            "empty request; try INFO, SEQ, PUT, LAST, GET, CPU, QUIT"
        );
        assert_eq!(
            err("   "),
            "empty request; try INFO, SEQ, PUT, LAST, GET, CPU, QUIT"
        );
        assert_eq!(err("SEQ"), "usage: SEQ <n>");
        assert_eq!(err("SEQ x"), "usage: SEQ <n>");
        assert_eq!(err("SEQ -1"), "usage: SEQ <n>");
        assert_eq!(err("SEQ 1 2"), "usage: SEQ <n>");
        assert_eq!(err("SEQ 99999999999999999999"), "usage: SEQ <n>");
        assert_eq!(err("INFO now"), "usage: INFO");
        assert_eq!(err("PUT x y"), "usage: PUT <n> <payload>");
        assert_eq!(err("PUT"), "usage: PUT <n> <payload>");
        assert_eq!(err("GET"), "usage: GET <n>");
        assert_eq!(
            err("CPU 10000000001"),
            "usage: CPU <iterations> (0..=10000000000)"
        );
        let long = format!("PUT 1 {}", "x".repeat(MAX_PAYLOAD + 1));
        assert_eq!(err(&long), "payload too long: 401 bytes (max 400)");
    }

    #[test]
    fn non_utf8_payload_is_bytes() {
        assert_eq!(
            parse(b"PUT 9 \xff\x00ab").unwrap(),
            Request::Put {
                n: 9,
                payload: b"\xff\x00ab"
            }
        );
        assert!(matches!(parse(b"\xffX"), Err(ParseError::Unknown(_))));
    }
}
