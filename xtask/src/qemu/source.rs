//! Getting the source to build: Debian's `qemu` source package at exactly the
//! installed version (`apt-get source`, from a temporary deb-src list so the system's
//! apt sources are never changed), and applying `qemu/*.patch` to it strictly.

use super::process::logged;
use super::{file_name, PHASE, SOURCE_PACKAGE};
use crate::util;
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Temporary deb-src list for `apt-get source` (bookworm, its point-release updates
/// and security). It lives in the build directory and is passed to apt with
/// `-o Dir::Etc::sourcelist=`, so the system's apt sources are never changed.
const DEB_SRC_LIST: &str = "\
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

/// Deletes a file when dropped (the temporary deb-src list, also on errors).
#[derive(Debug)]
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// `apt-get update` restricted to a temporary deb-src list, then `apt-get source`.
pub(super) fn fetch_source(work: &Path, log: &Path, version: &str) -> Result<()> {
    let list = work.join("deb-src.sources");
    let _remove = RemoveOnDrop(list.clone());
    fs::write(&list, DEB_SRC_LIST).with_context(|| format!("writing {}", list.display()))?;
    let apt_opts = [
        "-o".to_string(),
        format!("Dir::Etc::sourcelist={}", list.display()),
        "-o".to_string(),
        "Dir::Etc::sourceparts=-".to_string(),
        // Keep the other lists: this update only knows about deb-src.
        "-o".to_string(),
        "APT::Get::List-Cleanup=0".to_string(),
        // Downloads go to a root-owned directory; do not warn about it.
        "-o".to_string(),
        "APT::Sandbox::User=root".to_string(),
    ];
    let mut update = Command::new("apt-get");
    update.args(&apt_opts).args(["-q", "update"]);
    logged(&mut update, log, "apt-get update (deb-src)").context(
        "could not fetch the Debian source index; check network access to deb.debian.org",
    )?;

    let mut source = Command::new("apt-get");
    source
        .current_dir(work)
        .args(&apt_opts)
        .args(["-q", "source", "--only-source"])
        .arg(format!("{SOURCE_PACKAGE}={version}"))
        .env("DEBIAN_FRONTEND", "noninteractive");
    logged(&mut source, log, "apt-get source").with_context(|| {
        format!(
            "could not fetch source {SOURCE_PACKAGE}={version}: if Debian no longer carries it, \
             upgrade qemu-system-x86 (re-run the package step) and re-run `cargo xtask setup`"
        )
    })?;
    Ok(())
}

/// The unpacked source tree (`qemu-7.2+dfsg/`).
pub(super) fn find_source_dir(work: &Path) -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && file_name(p).starts_with("qemu-"))
        .collect();
    dirs.sort();
    match dirs.as_slice() {
        [d] => Ok(d.clone()),
        _ => bail!(
            "expected one unpacked qemu-* tree in {}, found {dirs:?}",
            work.display()
        ),
    }
}

/// `patch -p1`, strictly: no fuzz (offsets are fine and reported), no reversed hunks.
pub(super) fn apply_patch(src: &Path, patch: &Path, version: &str) -> Result<()> {
    let name = file_name(patch);
    let out = Command::new("patch")
        .args(["-p1", "--forward", "--batch", "--fuzz=0", "-i"])
        .arg(patch)
        .current_dir(src)
        .output()
        .context("could not run patch (package `patch`)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        util::step(PHASE, &format!("{name}: {line}"));
    }
    if !out.status.success() {
        bail!(
            "{} does not apply to Debian qemu {version} (see patch's output above); refresh it \
             against that source (`apt-get source qemu={version}`)",
            patch.display()
        );
    }
    Ok(())
}
