//! The COLO-patched QEMU: Debian's own QEMU 7.2 source plus `qemu/*.patch`, built
//! for x86_64-softmmu only and cached outside the repository.
//!
//! Why a patched build: stock 7.2 cannot run COLO under TCG; see `qemu/README.md`
//! and the header of `qemu/colo-tcg-fix.patch`.
//!
//! Cache layout: `<cache>/qemu/<source-version>-<patch-hash>/` holds
//! `qemu-system-x86_64` and `BUILD-INFO`, nothing else. `<source-version>` is the
//! Debian source version of the installed `qemu-system-x86`, made safe as a file name
//! (`1_7.2+dfsg-7+deb12u18`). `<patch-hash>` is the first 12 hex digits of the sha256 of
//! the patches concatenated in file-name order (`cat qemu/*.patch | sha256sum`).
//! A new Debian version or a changed patch therefore leads to a new build. The source
//! and build trees (about 1.5 GB) live in a sibling `.build-*` directory that is removed
//! after a successful build.
//!
//! This module owns the entry point ([`build_patched_qemu`]: cache hit or build) and
//! [`QemuBuild`]. The pieces:
//! - [`key`]: the cache key (source version, patch hash) and the configure flags
//!   recorded in `BUILD-INFO`, which a cache hit must match;
//! - [`source`]: `apt-get source` from a temporary deb-src list, and patching;
//! - [`build`]: the work tree, configure, ninja, installing into the cache;
//! - [`verify`]: the checks on the freshly built binary;
//! - [`process`]: running the tools (logged, with a time limit).

mod build;
mod key;
mod process;
mod source;
mod verify;

use crate::util;
use anyhow::{bail, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct QemuBuild {
    /// The patched `qemu-system-x86_64` (cached by source version + patch hash).
    pub binary: PathBuf,
    /// Debian's own `/usr/bin/qemu-system-x86_64`.
    pub stock_binary: PathBuf,
    /// Debian source version, e.g. `1:7.2+dfsg-7+deb12u18`.
    pub source_version: String,
    /// sha256 of `qemu/*.patch` in application order.
    pub patch_sha256: String,
}

const PHASE: &str = "qemu";
const BINARY: &str = "qemu-system-x86_64";
const STOCK_BINARY: &str = "/usr/bin/qemu-system-x86_64";
const BUILD_INFO: &str = "BUILD-INFO";
/// Source package whose version must match the installed `qemu-system-x86`.
const SOURCE_PACKAGE: &str = "qemu";

/// The patched QEMU for the installed Debian QEMU version, built unless cached.
pub fn build_patched_qemu(root: &Path, cache: &Path) -> Result<QemuBuild> {
    let source_version = key::installed_source_version()?;
    let patch_dir = root.join("qemu");
    let patches = key::patch_files(&patch_dir)?;
    if patches.is_empty() {
        bail!(
            "no *.patch in {}: the COLO fix is missing from the checkout",
            patch_dir.display()
        );
    }
    let patch_sha256 = key::patch_sha256(&patches)?;
    let dir = cache
        .join("qemu")
        .join(key::cache_dir_name(&source_version, &patch_sha256));
    let build = QemuBuild {
        binary: dir.join(BINARY),
        stock_binary: PathBuf::from(STOCK_BINARY),
        source_version,
        patch_sha256,
    };

    let configure = key::configure_args(&build);
    if let Some(v) = key::version_line(&build.binary) {
        let recorded = fs::read_to_string(build.binary.with_file_name(BUILD_INFO))
            .ok()
            .and_then(|info| key::recorded_configure(&info));
        if recorded.as_deref() == Some(configure.join(" ").as_str()) {
            util::step(PHASE, &format!("cached: {} ({v})", build.binary.display()));
            return Ok(build);
        }
        util::step(
            PHASE,
            "the cached build used other configure flags; rebuilding",
        );
    }

    let names: Vec<String> = patches.iter().map(|p| file_name(p)).collect();
    util::step(
        PHASE,
        &format!(
            "building {BINARY} from Debian qemu {} + {}; this takes about 3 minutes",
            build.source_version,
            names.join(", ")
        ),
    );
    let t0 = Instant::now();
    build::build_into(&dir, &build, &patches, &configure)?;
    util::step(
        PHASE,
        &format!(
            "built {} in {}",
            build.binary.display(),
            fmt_duration(t0.elapsed())
        ),
    );
    Ok(build)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(fmt_duration(Duration::from_secs(172)), "2m 52s");
        assert_eq!(fmt_duration(Duration::from_millis(4200)), "4.2s");
    }
}
