//! Running external programs (`ip`, `virsh`, `qemu-img`, ...) with errors that carry
//! the command line and its stderr.

use crate::error::{LabError, Result};
use std::process::{Command, Output, Stdio};

/// Render a command for messages: program and arguments, space-separated.
pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Run to completion; stdout on success, [`LabError::Command`] otherwise.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = raw(cmd)?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: show(cmd),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Run to completion and return the raw output whatever the exit status.
pub fn raw(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            cmd: show(cmd),
            source,
        })
}

/// `output` for a program and a list of arguments.
pub fn run<I, S>(prog: &str, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    output(Command::new(prog).args(args))
}

/// Poll `f` every `every` until it returns `Some`, or fail after `timeout`.
/// `what` names the awaited condition; `detail` explains the last failure.
pub fn wait_for<T>(
    what: &str,
    timeout: std::time::Duration,
    every: std::time::Duration,
    mut f: impl FnMut() -> std::result::Result<Option<T>, String>,
) -> Result<T> {
    let t0 = std::time::Instant::now();
    let mut last = String::new();
    loop {
        match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = e,
        }
        if t0.elapsed() >= timeout {
            return Err(LabError::Timeout {
                what: what.to_string(),
                secs: t0.elapsed().as_secs_f64(),
                detail: last,
            });
        }
        std::thread::sleep(every);
    }
}
