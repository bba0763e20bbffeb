//! Small helpers shared by the set-up steps: progress lines, running commands, and
//! Debian version order.

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

/// `dpkg --compare-versions a gt b`: Debian's version order, used for packages and
/// kernels alike.
pub fn version_gt(a: &str, b: &str) -> Result<bool> {
    let st = Command::new("dpkg")
        .args(["--compare-versions", a, "gt", b])
        .status()
        .context("could not run dpkg --compare-versions")?;
    Ok(st.success())
}

/// The highest of `versions` in Debian's version order ([`version_gt`]); the first
/// of equals. `None` when there are none.
pub fn newest_version(versions: impl IntoIterator<Item = String>) -> Result<Option<String>> {
    let mut best: Option<String> = None;
    for v in versions {
        best = match best {
            Some(b) if !version_gt(&v, &b)? => Some(b),
            _ => Some(v),
        };
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_in_debian_version_order() {
        let newest = |v: &[&str]| newest_version(v.iter().map(|s| s.to_string())).unwrap();
        assert_eq!(newest(&[]), None);
        // Numeric runs compare as numbers, not as text.
        assert_eq!(
            newest(&["6.1.0-56-amd64", "6.1.0-100-amd64", "6.1.0-9-amd64"]).as_deref(),
            Some("6.1.0-100-amd64")
        );
        assert_eq!(
            newest(&["6.12.0-1-amd64", "6.1.0-56-amd64"]).as_deref(),
            Some("6.12.0-1-amd64")
        );
        // Epoch first; `~` sorts before the end (backports below the release).
        assert_eq!(
            newest(&[
                "1:7.2+dfsg-7+deb12u18",
                "10.0.2+ds-2",
                "1:7.2+dfsg-7+deb12u7"
            ])
            .as_deref(),
            Some("1:7.2+dfsg-7+deb12u18")
        );
        assert_eq!(
            newest(&["1:7.2+dfsg-7~bpo12+1", "1:7.2+dfsg-7"]).as_deref(),
            Some("1:7.2+dfsg-7")
        );
        assert!(!version_gt("6.1.0-9-amd64", "6.1.0-9-amd64").unwrap());
    }
}
