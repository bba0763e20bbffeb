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
