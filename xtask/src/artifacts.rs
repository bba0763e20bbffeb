//! The artifacts manifest: where set-up put the QEMU binaries and the guest, read by
//! the lab (`ftvirt-lab`, `artifacts.rs` there) so tests need no environment.
//!
//! Location: `$FTVIRT_CACHE/artifacts.json`, `FTVIRT_CACHE` defaulting to
//! `/var/cache/ftvirt` (outside the repository, so a fresh clone reuses the cache).

use crate::guest::GuestImage;
use crate::qemu::QemuBuild;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

pub fn cache_dir() -> PathBuf {
    std::env::var_os("FTVIRT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/ftvirt"))
}

pub fn manifest_path(cache: &Path) -> PathBuf {
    cache.join("artifacts.json")
}

/// Must stay field-compatible with `ftvirt_lab::artifacts::Artifacts`.
#[derive(Debug, Serialize)]
pub struct Artifacts {
    pub qemu_patched: PathBuf,
    pub qemu_stock: PathBuf,
    pub qemu_source_version: String,
    pub qemu_patch_sha256: String,
    pub guest_kernel: PathBuf,
    pub guest_initrd: PathBuf,
    pub guest_kernel_version: String,
}

impl Artifacts {
    pub fn new(q: QemuBuild, g: GuestImage) -> Self {
        Artifacts {
            qemu_patched: q.binary,
            qemu_stock: q.stock_binary,
            qemu_source_version: q.source_version,
            qemu_patch_sha256: q.patch_sha256,
            guest_kernel: g.kernel,
            guest_initrd: g.initrd,
            guest_kernel_version: g.kernel_version,
        }
    }

    pub fn write(&self, cache: &Path) -> Result<()> {
        std::fs::create_dir_all(cache)?;
        let p = manifest_path(cache);
        let tmp = p.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &p)?;
        Ok(())
    }
}
