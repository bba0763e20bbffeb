//! Running the build's tools: with output appended to the build log (and its tail
//! in the error), with stdout and stderr together, or with a time limit.

use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Wait for `child` at most `limit`; kill it when it takes longer. Returns
/// (exited successfully, stdout, stderr).
pub(super) fn wait_with_timeout(
    mut child: Child,
    limit: Duration,
) -> Result<(bool, String, String)> {
    let t0 = Instant::now();
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
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    match status {
        Some(st) => Ok((st.success(), out, err)),
        None => bail!("timed out after {limit:?}; stdout: {out} stderr: {err}"),
    }
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
