//! Small helpers shared by the set-up steps: progress lines and running commands.

use anyhow::{bail, Context, Result};
use std::process::Command;

/// One progress line on stderr: `[xtask setup] message`.
pub fn step(phase: &str, msg: &str) {
    eprintln!("[xtask {phase}] {msg}");
}

/// Run a command, fail with its command line and exit status when it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let st = cmd
        .status()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed with {st}");
    }
    Ok(())
}

/// Run a command and return its stdout (trimmed); fail with its stderr.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The lab creates network namespaces and runs libvirtd: it needs root.
pub fn require_root() -> Result<()> {
    // SAFETY-free: geteuid via `id -u` keeps this crate without libc.
    let uid = output(Command::new("id").arg("-u"))?;
    if uid != "0" {
        bail!("cargo xtask must run as root (it installs packages and creates network namespaces); run it with sudo");
    }
    Ok(())
}
