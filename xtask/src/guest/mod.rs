//! The test guest: Debian's own kernel plus a small busybox initramfs whose `/init`
//! (`tests/guest-agent/init.sh`) starts the guest agent (`tests/guest-agent`).
//!
//! No root file system: the initramfs holds
//! - `/bin/busybox` (from `busybox-static`) and a symlink per applet,
//! - the virtio modules the guest needs, decompressed, in `/lib/ftvirt-modules`
//!   (the list and its load order: [`MODULES`]),
//! - `/bin/ftvirt-guest-agent`, built static for x86_64 in its own target directory
//!   (`target/guest`) so the main build cache keeps its flags,
//! - `/init`.
//!
//! The result is cached in `<cache>/guest/<hash>/{vmlinuz,initrd.img}`, the hash
//! covering everything that goes in (kernel version and image, busybox, the agent
//! binary, `init.sh`, the modules). A new image is assembled in a scratch directory
//! and renamed into place, so a cache directory is always complete. The agent is
//! rebuilt with `cargo build` every time (a no-op when up to date), which is how a
//! source change reaches the hash.
//!
//! This module owns the entry point ([`build_guest`]: cache hit or assembly),
//! [`GuestImage`] and the module list. The pieces:
//! - [`kernel`]: the newest installed kernel and its virtio modules;
//! - [`agent`]: the static guest agent (`cargo build`);
//! - [`initrd`]: busybox, the initramfs tree, `cpio` and `gzip`;
//! - [`cache`]: the cache key and the scratch directory.

mod agent;
mod cache;
mod initrd;
mod kernel;

use crate::util::step;
use anyhow::{Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

const PHASE: &str = "guest";

/// Virtio modules in load order (dependencies first: `virtio` before `virtio_ring`
/// fails with "unknown symbol"). `init.sh` loads the same list in the same order.
pub const MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "virtio_blk",
    "failover",
    "net_failover",
    "virtio_net",
];

const INIT_SCRIPT: &str = "tests/guest-agent/init.sh";

/// A built guest, as the lab boots it (`-kernel`, `-initrd`).
#[derive(Debug)]
pub struct GuestImage {
    /// `<cache>/guest/<hash>/vmlinuz`, a copy of `/boot/vmlinuz-<kernel_version>`.
    pub kernel: PathBuf,
    /// `<cache>/guest/<hash>/initrd.img`, gzip'd cpio (newc).
    pub initrd: PathBuf,
    /// e.g. `6.1.0-56-amd64`.
    pub kernel_version: String,
}

/// Build (or find in the cache) the guest kernel + initramfs.
pub fn build_guest(root: &Path, cache: &Path) -> Result<GuestImage> {
    let kernel = kernel::newest_kernel(Path::new("/boot"), Path::new("/lib/modules"))?;
    step(
        PHASE,
        &format!("kernel {} ({})", kernel.version, kernel.image.display()),
    );
    let busybox = initrd::find_busybox()?;
    let agent = agent::build_agent(root)?;
    let init_path = root.join(INIT_SCRIPT);
    let init = fs::read(&init_path).with_context(|| format!("reading {}", init_path.display()))?;
    let modules = kernel::find_modules(&kernel.modules)?;

    let kernel_bytes =
        fs::read(&kernel.image).with_context(|| format!("reading {}", kernel.image.display()))?;
    let busybox_bytes = fs::read(&busybox)?;
    let agent_bytes = fs::read(&agent)?;
    let mut module_bytes = Vec::new();
    for m in &modules {
        module_bytes.push((m.name, kernel::decompressed_module(&m.source)?));
    }

    let hash = cache::image_key(
        &kernel.version,
        &kernel_bytes,
        &busybox_bytes,
        &agent_bytes,
        &init,
        &module_bytes,
    );

    let guest_dir = cache.join("guest");
    let dir = guest_dir.join(&hash[..16]);
    let image = GuestImage {
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.img"),
        kernel_version: kernel.version.clone(),
    };
    if image.kernel.is_file() && image.initrd.is_file() {
        step(PHASE, &format!("cached: {}", dir.display()));
        return Ok(image);
    }

    step(
        PHASE,
        &format!("assembling the initramfs in {}", dir.display()),
    );
    fs::create_dir_all(&guest_dir).with_context(|| format!("creating {}", guest_dir.display()))?;
    let work = cache::WorkDir::new(guest_dir.join(format!(
        ".build-{}-{}",
        &hash[..16],
        std::process::id()
    )))?;
    let tree = work.0.join("root");
    let out = work.0.join("out");
    fs::create_dir_all(&out)?;
    initrd::stage_tree(
        &tree,
        &busybox,
        &busybox_bytes,
        &agent_bytes,
        &init,
        &module_bytes,
    )?;
    let cpio = work.0.join("initrd.cpio");
    initrd::pack_cpio(&tree, &cpio)?;
    initrd::gzip(&cpio, &out.join("initrd.img"))?;
    fs::write(out.join("vmlinuz"), &kernel_bytes)?;
    if let Err(e) = fs::rename(&out, &dir) {
        // Another set-up finished the same image first: theirs is as good as ours.
        if !(image.kernel.is_file() && image.initrd.is_file()) {
            return Err(e)
                .with_context(|| format!("renaming {} to {}", out.display(), dir.display()));
        }
    }
    let size = fs::metadata(&image.initrd)?.len();
    step(
        PHASE,
        &format!(
            "wrote {} ({:.2} MiB) and {}",
            image.initrd.display(),
            size as f64 / (1024.0 * 1024.0),
            image.kernel.display()
        ),
    );
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_script_loads_the_same_modules_in_order() {
        let init = include_str!("../../../tests/guest-agent/init.sh");
        let list = MODULES.join(" ");
        let flat: String = init
            .replace("\\\n", " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(flat.contains(&list), "init.sh must insmod {list}");
    }
}
