//! The guest cache: `<cache>/guest/<first 16 hex digits of the key>/`, the key a
//! sha256 over every input of the image ([`image_key`]), and the scratch directory
//! a new image is assembled in before it is renamed into place.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::PathBuf;

/// Bump when the image layout changes without any input changing.
const LAYOUT_VERSION: &str = "ftvirt-guest-image-1";

/// The cache key: sha256 (lowercase hex) over everything that goes into the image,
/// as labelled, length-prefixed parts in a fixed order. The cache directory is its
/// first 16 hex digits; changing the parts or their order rebuilds every cache.
pub(super) fn image_key(
    kernel_version: &str,
    kernel: &[u8],
    busybox: &[u8],
    agent: &[u8],
    init: &[u8],
    modules: &[(&str, Vec<u8>)],
) -> String {
    let mut h = Hasher::default();
    h.part("layout", LAYOUT_VERSION.as_bytes());
    h.part("kernel-version", kernel_version.as_bytes());
    h.part("kernel-image", kernel);
    h.part("busybox", busybox);
    h.part("agent", agent);
    h.part("init", init);
    for (name, bytes) in modules {
        h.part(name, bytes);
    }
    h.hex()
}

/// sha256 over labelled, length-prefixed parts.
#[derive(Default)]
struct Hasher(Sha256);

impl Hasher {
    fn part(&mut self, label: &str, bytes: &[u8]) {
        for b in [label.as_bytes(), bytes] {
            self.0.update((b.len() as u64).to_le_bytes());
            self.0.update(b);
        }
    }

    fn hex(self) -> String {
        self.0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A scratch directory removed on drop (success or failure).
#[derive(Debug)]
pub(super) struct WorkDir(pub(super) PathBuf);

impl WorkDir {
    pub(super) fn new(path: PathBuf) -> Result<Self> {
        if path.exists() {
            fs::remove_dir_all(&path)?;
        }
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(WorkDir(path))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_key_is_stable() {
        // Pinned: a different value means every machine rebuilds its guest image.
        let modules = vec![("virtio_ring", b"ring".to_vec()), ("virtio", b"v".to_vec())];
        let key = image_key(
            "6.1.0-57-amd64",
            b"kernel",
            b"bb",
            b"agent",
            b"init",
            &modules,
        );
        assert_eq!(
            key,
            "4ad7c6f81414783ebceff61f955b99215107f9246e7ea84ca6c8f7441dda244f"
        );
        // Moving bytes from one part to the next changes the key (length prefixes).
        let shifted = image_key(
            "6.1.0-57-amd64",
            b"kerne",
            b"lbb",
            b"agent",
            b"init",
            &modules,
        );
        assert_ne!(shifted, key);
    }
}
