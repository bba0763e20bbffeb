//! A machine-wide seed for libvirt's QEMU capability cache.
//!
//! Each lab host has its own `/var/cache/libvirt`, so each new libvirtd would probe
//! every emulator again (about 4 s each here). libvirt checks a cached entry itself
//! (emulator path and ctime, libvirt version, host kernel and CPU) and re-probes when
//! it is stale, so copying known entries into a new host is safe. Entries are kept in
//! `$FTVIRT_CACHE/libvirt-qemu-caps/`.

use crate::artifacts::cache_dir;
use std::path::{Path, PathBuf};

fn seed_dir() -> PathBuf {
    cache_dir().join("libvirt-qemu-caps")
}

const SUB: &str = "qemu/capabilities";

/// Copy the seed into a host's libvirt cache directory (before libvirtd starts).
pub fn seed(host_cache: &Path) {
    copy_new(&seed_dir(), &host_cache.join(SUB));
}

/// Copy entries the host probed that the seed lacks.
pub fn save(host_cache: &Path) {
    copy_new(&host_cache.join(SUB), &seed_dir());
}

/// Copy `*.xml` files of `from` missing in `to`, each through a temporary name so
/// that concurrent labs never see a half-written entry. Best effort: a failure only
/// costs a re-probe.
fn copy_new(from: &Path, to: &Path) {
    let Ok(rd) = std::fs::read_dir(from) else {
        return;
    };
    if std::fs::create_dir_all(to).is_err() {
        return;
    }
    for e in rd.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().ends_with(".xml") || to.join(&name).exists() {
            continue;
        }
        let tmp = to.join(format!(
            ".{}.{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        if std::fs::copy(e.path(), &tmp).is_ok() {
            let _ = std::fs::rename(&tmp, to.join(&name));
        } else {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}
