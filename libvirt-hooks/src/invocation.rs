//! How libvirtd calls a qemu hook: `HOOK DOMAIN OPERATION SUB-OPERATION EXTRA`, the
//! domain XML on stdin. The XML is read bounded in size and in time: the hook must
//! never hold up libvirtd, whatever it is fed.

use std::ffi::OsString;
use std::io::Read;
use std::sync::mpsc;
use std::time::Duration;

/// The most domain XML the hook reads (real ones are a few KiB).
pub const MAX_XML: usize = 4 << 20;
/// How long the hook waits for libvirtd to write and close stdin.
pub const STDIN_DEADLINE: Duration = Duration::from_millis(1000);

/// libvirt's qemu hook operations (see libvirt's hooks documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Before resources are allocated for a start.
    Prepare,
    /// Before QEMU is launched.
    Start,
    /// QEMU runs and the domain was started (CPUs running unless started paused).
    Started,
    /// QEMU has exited.
    Stopped,
    /// Resources released after a stop.
    Release,
    /// An incoming migration, on the destination, before it starts.
    Migrate,
    /// Restoring a saved domain.
    Restore,
    /// libvirtd restarted and reconnects to a running domain.
    Reconnect,
    /// libvirtd attaches to a QEMU it did not start.
    Attach,
    /// An operation this hook does not know (a newer libvirt).
    Other(String),
}

impl Operation {
    pub fn parse(s: &str) -> Operation {
        match s {
            "prepare" => Operation::Prepare,
            "start" => Operation::Start,
            "started" => Operation::Started,
            "stopped" => Operation::Stopped,
            "release" => Operation::Release,
            "migrate" => Operation::Migrate,
            "restore" => Operation::Restore,
            "reconnect" => Operation::Reconnect,
            "attach" => Operation::Attach,
            other => Operation::Other(other.to_string()),
        }
    }

    /// libvirt's name of the operation.
    pub fn as_str(&self) -> &str {
        match self {
            Operation::Prepare => "prepare",
            Operation::Start => "start",
            Operation::Started => "started",
            Operation::Stopped => "stopped",
            Operation::Release => "release",
            Operation::Migrate => "migrate",
            Operation::Restore => "restore",
            Operation::Reconnect => "reconnect",
            Operation::Attach => "attach",
            Operation::Other(s) => s,
        }
    }

    /// Does ftvirt act on this operation? Only then is the XML read at all.
    pub fn concerns_ftd(&self) -> bool {
        matches!(
            self,
            Operation::Prepare
                | Operation::Started
                | Operation::Stopped
                | Operation::Release
                | Operation::Migrate
        )
    }
}

/// One call of the hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub domain: String,
    pub operation: Operation,
    /// `begin`, `end` or `-`.
    pub sub_operation: String,
    /// `-` for most operations.
    pub extra: String,
}

/// Why the hook cannot make sense of its call (it then does nothing, successfully).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error(
        "called with {0} arguments; libvirt calls a qemu hook as \
         `HOOK DOMAIN OPERATION SUB-OPERATION EXTRA`"
    )]
    Arguments(usize),
    #[error("argument {0} is not UTF-8")]
    NotUtf8Argument(usize),
    #[error("the domain XML on stdin is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the domain XML on stdin is not UTF-8 (invalid byte at offset {0})")]
    NotUtf8(usize),
    #[error("reading the domain XML from stdin: {0}")]
    Read(String),
    #[error("stdin was not closed within {0:?}")]
    Stalled(Duration),
}

impl Invocation {
    /// From the arguments after the program name. libvirt always passes four;
    /// two (domain, operation) are enough for a hand-run test.
    pub fn from_args(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, InputError> {
        let args: Vec<OsString> = args.into_iter().collect();
        if !(2..=4).contains(&args.len()) {
            return Err(InputError::Arguments(args.len()));
        }
        let mut s = Vec::with_capacity(4);
        for (i, a) in args.into_iter().enumerate() {
            s.push(
                a.into_string()
                    .map_err(|_| InputError::NotUtf8Argument(i + 1))?,
            );
        }
        s.resize(4, "-".to_string());
        let mut s = s.into_iter();
        let mut next = || s.next().unwrap_or_default();
        Ok(Invocation {
            domain: next(),
            operation: Operation::parse(&next()),
            sub_operation: next(),
            extra: next(),
        })
    }
}

/// Read all of `r` as UTF-8, at most `limit` bytes.
pub fn read_bounded(r: impl Read, limit: usize) -> Result<String, InputError> {
    let mut buf = Vec::new();
    r.take(limit as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| InputError::Read(e.to_string()))?;
    if buf.len() > limit {
        return Err(InputError::TooLarge(limit));
    }
    String::from_utf8(buf).map_err(|e| InputError::NotUtf8(e.utf8_error().valid_up_to()))
}

/// [`read_bounded`], giving up after `deadline` (the reading thread is abandoned;
/// the process exits soon after).
pub fn read_with_deadline<R: Read + Send + 'static>(
    r: R,
    limit: usize,
    deadline: Duration,
) -> Result<String, InputError> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let _ = tx.send(read_bounded(r, limit));
        })
        .map_err(|e| InputError::Read(e.to_string()))?;
    rx.recv_timeout(deadline)
        .unwrap_or(Err(InputError::Stalled(deadline)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn libvirt_arguments_are_read() {
        let i = Invocation::from_args(args(&["g", "started", "begin", "-"])).unwrap();
        assert_eq!(
            i,
            Invocation {
                domain: "g".into(),
                operation: Operation::Started,
                sub_operation: "begin".into(),
                extra: "-".into(),
            }
        );
        let i = Invocation::from_args(args(&["g", "stopped"])).unwrap();
        assert_eq!((i.sub_operation.as_str(), i.extra.as_str()), ("-", "-"));
        let i = Invocation::from_args(args(&["g", "something-new", "begin", "-"])).unwrap();
        assert_eq!(i.operation, Operation::Other("something-new".into()));
        assert_eq!(i.operation.as_str(), "something-new");
    }

    #[test]
    fn wrong_arguments_are_errors() {
        assert_eq!(
            Invocation::from_args(args(&[])),
            Err(InputError::Arguments(0))
        );
        assert_eq!(
            Invocation::from_args(args(&["g"])),
            Err(InputError::Arguments(1))
        );
        let five = args(&["g", "started", "begin", "-", "x"]);
        assert_eq!(Invocation::from_args(five), Err(InputError::Arguments(5)));
        use std::os::unix::ffi::OsStringExt;
        let bad = vec![OsString::from("g"), OsString::from_vec(vec![0xff, 0xfe])];
        assert_eq!(
            Invocation::from_args(bad),
            Err(InputError::NotUtf8Argument(2))
        );
    }

    #[test]
    fn operations_round_trip_and_only_four_concern_ftd() {
        let all = [
            "prepare",
            "start",
            "started",
            "stopped",
            "release",
            "migrate",
            "restore",
            "reconnect",
            "attach",
        ];
        for name in all {
            let op = Operation::parse(name);
            assert_eq!(op.as_str(), name);
            assert!(!matches!(op, Operation::Other(_)), "{name}");
            assert_eq!(
                op.concerns_ftd(),
                ["prepare", "started", "stopped", "release", "migrate"].contains(&name),
                "{name}"
            );
        }
    }

    #[test]
    fn stdin_is_bounded_and_must_be_utf8() {
        assert_eq!(read_bounded(&b"<domain/>"[..], 9).unwrap(), "<domain/>");
        assert_eq!(
            read_bounded(&b"<domain/>"[..], 8),
            Err(InputError::TooLarge(8))
        );
        assert_eq!(read_bounded(&b""[..], 8).unwrap(), "");
        assert_eq!(
            read_bounded(&b"<dom\xffain/>"[..], 100),
            Err(InputError::NotUtf8(4))
        );
        // A huge stream is not read past the limit.
        let endless = std::io::repeat(b'x');
        assert_eq!(
            read_bounded(endless, MAX_XML),
            Err(InputError::TooLarge(MAX_XML))
        );
    }

    #[test]
    fn a_stdin_that_never_closes_is_given_up() {
        let (r, w) = std::io::pipe().unwrap();
        let t0 = Instant::now();
        let e = read_with_deadline(r, MAX_XML, Duration::from_millis(100)).unwrap_err();
        assert_eq!(e, InputError::Stalled(Duration::from_millis(100)));
        assert!(t0.elapsed() < Duration::from_millis(500));
        drop(w);
        let (r, mut w) = std::io::pipe().unwrap();
        std::io::Write::write_all(&mut w, b"<domain/>").unwrap();
        drop(w);
        assert_eq!(
            read_with_deadline(r, MAX_XML, Duration::from_secs(5)).unwrap(),
            "<domain/>"
        );
    }
}
