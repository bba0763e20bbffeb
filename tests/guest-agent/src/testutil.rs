//! Test helpers: a scratch "disk" file that removes itself.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A sparse regular file standing in for `/dev/vda`, removed on drop.
#[derive(Debug)]
pub struct TempDisk {
    path: PathBuf,
}

impl TempDisk {
    pub fn new(name: &str, size: u64) -> Self {
        let path = std::env::temp_dir().join(format!(
            "ftvirt-guest-agent-{}-{name}.img",
            std::process::id()
        ));
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(size).unwrap();
        TempDisk { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Overwrite bytes behind the log's back (corruption tests).
    pub fn poke(&self, offset: u64, bytes: &[u8]) {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .unwrap();
        f.write_all_at(bytes, offset).unwrap();
        f.sync_data().unwrap();
    }
}

impl Drop for TempDisk {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
