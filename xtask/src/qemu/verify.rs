//! The checks on a freshly built binary, run at its final location before it enters
//! the cache: it boots a `pc` machine with virtio-net (so the firmware search path
//! works) and has the COLO objects and block drivers.

use super::key::version_line;
use super::process::{output_all, wait_with_timeout};
use super::PHASE;
use crate::util;
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Checks on the freshly built binary, at its final location: it runs, finds the
/// firmware through `--firmwarepath`, and has the COLO pieces. Returns the
/// `--version` line.
pub(super) fn verify(bin: &Path) -> Result<String> {
    let version =
        version_line(bin).with_context(|| format!("{} --version failed", bin.display()))?;

    // A `pc` machine with a virtio-net NIC loads bios-256k.bin (seabios) and
    // efi-virtio.rom (ipxe-qemu) while it is created. QEMU exits with "could not load
    // PC BIOS" / "failed to find romfile" when one is missing, and answers QMP
    // commands only once the machine exists. So a clean `quit` proves both were found.
    let mut child = Command::new(bin)
        .args([
            "-accel",
            "tcg",
            "-machine",
            "pc",
            "-m",
            "128",
            "-display",
            "none",
            "-nodefaults",
            "-device",
            "virtio-net-pci",
            "-S",
            "-qmp",
            "stdio",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {}", bin.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // Write errors mean QEMU already exited; its status tells why.
        let _ = stdin.write_all(b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"quit\"}\n");
    }
    let (ok, stdout, stderr) = wait_with_timeout(child, Duration::from_secs(60))?;
    let firmware_error = ["could not load", "failed to find romfile", "could not find"]
        .iter()
        .any(|s| stderr.contains(s));
    if !ok || firmware_error || !stdout.contains("\"return\"") {
        bail!(
            "{} cannot start a pc machine with virtio-net (firmware search path?):\n{}{}",
            bin.display(),
            stderr.trim(),
            if stderr.trim().is_empty() {
                stdout.trim()
            } else {
                ""
            }
        );
    }

    let objects = output_all(Command::new(bin).args(["-object", "help"]))?;
    for o in [
        "colo-compare",
        "filter-mirror",
        "filter-redirector",
        "filter-rewriter",
    ] {
        if !objects.split_whitespace().any(|w| w == o) {
            bail!("{} has no object type {o}", bin.display());
        }
    }
    let formats = output_all(Command::new(bin).args(["-drive", "format=help"]))?;
    for f in ["replication", "quorum", "nbd", "qcow2"] {
        if !formats.split_whitespace().any(|w| w == f) {
            bail!(
                "{} has no block driver {f} (configure --enable-replication?)",
                bin.display()
            );
        }
    }
    util::step(
        PHASE,
        "checked: boots a pc machine with virtio-net (firmware found), has colo-compare, replication, quorum",
    );
    Ok(version)
}
