//! Running the build's tools: with output appended to the build log (and its tail
//! in the error), with stdout and stderr together, or with a time limit.

use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Wait for `child` at most `limit`; kill it when it takes longer. Returns
/// (exited successfully, stdout, stderr). Both pipes are drained on threads while it
/// runs: read only after it exits, a child printing more than a pipe buffer (64 KiB)
/// would block on the full pipe until the limit.
pub(super) fn wait_with_timeout(
    mut child: Child,
    limit: Duration,
) -> Result<(bool, String, String)> {
    let t0 = Instant::now();
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The pipes end when the child is gone, unless a process it started still holds
    // them: read until the limit, or until OUTPUT_GRACE after the end if that is later.
    let until = (t0 + limit).max(Instant::now() + OUTPUT_GRACE);
    let collect = |rx: Receiver<String>| {
        rx.recv_timeout(until.saturating_duration_since(Instant::now()))
            .ok()
    };
    match (status, collect(out), collect(err)) {
        (Some(st), Some(out), Some(err)) => Ok((st.success(), out, err)),
        (Some(st), out, err) => bail!(
            "the process exited ({st}) but its stdout or stderr stayed open past the {limit:?} \
             limit: a process it started still holds them; stdout: {} stderr: {}",
            out.unwrap_or_default(),
            err.unwrap_or_default()
        ),
        (None, out, err) => bail!(
            "timed out after {limit:?}; stdout: {} stderr: {}",
            out.unwrap_or_default(),
            err.unwrap_or_default()
        ),
    }
}

/// How long [`wait_with_timeout`] still reads the pipes after the child ended (its
/// last output, or a grandchild's), when that is past the limit.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// Read `pipe` to its end on a thread; its text (lossy UTF-8) arrives on the channel.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    match pipe {
        Some(mut pipe) => {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = pipe.read_to_end(&mut buf);
                let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
            });
        }
        None => {
            let _ = tx.send(String::new());
        }
    }
    rx
}

/// Run a command; its stdout and stderr together (QEMU prints some help on either).
pub(super) fn output_all(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start {cmd:?}"))?;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("{cmd:?} failed with {}: {}", out.status, text.trim());
    }
    Ok(text)
}

/// Run with stdout and stderr appended to `log`; on failure, the log's tail.
pub(super) fn logged(cmd: &mut Command, log: &Path, what: &str) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    writeln!(f, "\n$ {cmd:?}")?;
    cmd.stdout(f.try_clone()?).stderr(f);
    let st = cmd
        .status()
        .with_context(|| format!("could not start {what} ({cmd:?})"))?;
    if !st.success() {
        bail!(
            "{what} failed with {st}; last lines of {}:\n{}",
            log.display(),
            tail(log, 30)
        );
    }
    Ok(())
}

pub(super) fn tail(path: &Path, n: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    fn sh(script: &str) -> Child {
        Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    #[test]
    fn output_larger_than_a_pipe_buffer_does_not_stall() {
        // 1 MiB on each stream: far beyond a 64 KiB pipe buffer, so the child can only
        // finish if both pipes are drained while it runs.
        let child = sh("head -c 1048576 /dev/zero | tr '\\0' o; \
                        head -c 1048576 /dev/zero | tr '\\0' e >&2");
        let limit = Duration::from_secs(20);
        let t0 = Instant::now();
        let (ok, out, err) = wait_with_timeout(child, limit).unwrap();
        let took = t0.elapsed();
        assert!(ok);
        assert_eq!(out.len(), 1 << 20);
        assert!(out.bytes().all(|b| b == b'o'));
        assert_eq!(err.len(), 1 << 20);
        assert!(err.bytes().all(|b| b == b'e'));
        assert!(took < limit / 4, "took {took:?} of a {limit:?} limit");
    }

    #[test]
    fn exit_status_and_output_of_a_failing_child() {
        let (ok, out, err) = wait_with_timeout(
            sh("echo out; echo err >&2; exit 3"),
            Duration::from_secs(20),
        )
        .unwrap();
        assert!(!ok);
        assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
    }

    #[test]
    fn a_child_over_the_limit_is_killed_with_its_output_in_the_error() {
        let t0 = Instant::now();
        let e = wait_with_timeout(
            sh("echo partial; exec sleep 30"),
            Duration::from_millis(300),
        )
        .unwrap_err()
        .to_string();
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        assert!(e.contains("timed out after 300ms"), "{e}");
        assert!(e.contains("stdout: partial"), "{e}");
    }

    #[test]
    fn pipes_held_open_by_a_grandchild_end_at_the_limit() {
        // The shell exits at once; the background sleep keeps stdout and stderr open.
        let t0 = Instant::now();
        let e = wait_with_timeout(sh("sleep 10 & echo started"), Duration::from_millis(300))
            .unwrap_err()
            .to_string();
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert!(e.contains("a process it started still holds them"), "{e}");
    }
}
