//! What `cargo xtask setup` built: read from `$FTVIRT_CACHE/artifacts.json`
//! (default `/var/cache/ftvirt`), and which QEMU binary the lab uses.
//!
//! `FTVIRT_QEMU` chooses the emulator: `patched` (default: Debian's QEMU with the
//! project's COLO/TCG fix, see `qemu/`), `stock` (`/usr/bin/qemu-system-x86_64`, for
//! hosts with working KVM) or an absolute path.

use crate::error::{LabError, Result};
use serde::Deserialize;
use std::path::PathBuf;

/// Field-compatible with `xtask`'s `Artifacts`.
#[derive(Debug, Clone, Deserialize)]
pub struct Artifacts {
    pub qemu_patched: PathBuf,
    pub qemu_stock: PathBuf,
    pub qemu_source_version: String,
    pub qemu_patch_sha256: String,
    pub guest_kernel: PathBuf,
    pub guest_initrd: PathBuf,
    pub guest_kernel_version: String,
}

pub fn cache_dir() -> PathBuf {
    std::env::var_os("FTVIRT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/ftvirt"))
}

impl Artifacts {
    pub fn load() -> Result<Artifacts> {
        let p = cache_dir().join("artifacts.json");
        let s = std::fs::read_to_string(&p)
            .map_err(|e| LabError::Artifacts(format!("cannot read {}: {e}", p.display())))?;
        let a: Artifacts = serde_json::from_str(&s).map_err(|e| {
            LabError::Artifacts(format!("{} is not a valid manifest: {e}", p.display()))
        })?;
        for f in [
            &a.qemu_patched,
            &a.qemu_stock,
            &a.guest_kernel,
            &a.guest_initrd,
        ] {
            if !f.exists() {
                return Err(LabError::Artifacts(format!("{} is missing", f.display())));
            }
        }
        Ok(a)
    }

    /// The emulator chosen by `FTVIRT_QEMU`, and a label for reports.
    pub fn qemu(&self) -> Result<QemuChoice> {
        let sel = std::env::var("FTVIRT_QEMU").unwrap_or_else(|_| "patched".into());
        let (path, label) = match sel.as_str() {
            "patched" | "" => (
                self.qemu_patched.clone(),
                format!(
                    "patched {} (+ftvirt COLO/TCG fix {})",
                    self.qemu_source_version,
                    &self.qemu_patch_sha256[..12.min(self.qemu_patch_sha256.len())]
                ),
            ),
            "stock" => (
                self.qemu_stock.clone(),
                format!("stock Debian {}", self.qemu_source_version),
            ),
            p if p.starts_with('/') => (PathBuf::from(p), format!("custom {p}")),
            other => {
                return Err(LabError::Usage(format!(
                    "FTVIRT_QEMU={other:?}: use `patched`, `stock` or an absolute path"
                )))
            }
        };
        if !path.exists() {
            return Err(LabError::Artifacts(format!(
                "QEMU binary {} does not exist",
                path.display()
            )));
        }
        Ok(QemuChoice { path, label })
    }
}

/// The emulator every lab domain uses (`<emulator>`).
#[derive(Debug, Clone)]
pub struct QemuChoice {
    pub path: PathBuf,
    pub label: String,
}
