//! The guest's kernel: the newest installed Debian kernel (`/boot/vmlinuz-<v>` with
//! `/lib/modules/<v>`), and the virtio modules of [`MODULES`] found through its
//! `modules.dep` and decompressed for busybox `insmod`.

use super::{MODULES, PHASE};
use crate::util::{newest_version, step};
use anyhow::{bail, Context, Result};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An installed kernel: `/boot/vmlinuz-<version>` with `/lib/modules/<version>`.
#[derive(Debug)]
pub(super) struct Kernel {
    pub(super) version: String,
    pub(super) image: PathBuf,
    pub(super) modules: PathBuf,
}

/// A module to put in the initramfs: its source file (maybe compressed).
#[derive(Debug)]
pub(super) struct Module {
    pub(super) name: &'static str,
    pub(super) source: PathBuf,
}

/// The newest `/boot/vmlinuz-<v>` that has `/lib/modules/<v>`, in Debian's version
/// order ([`newest_version`], as for the QEMU packages).
pub(super) fn newest_kernel(boot: &Path, lib_modules: &Path) -> Result<Kernel> {
    let mut found = Vec::new();
    for entry in fs::read_dir(boot).with_context(|| format!("listing {}", boot.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(version) = name.strip_prefix("vmlinuz-") {
            if lib_modules.join(version).is_dir() {
                found.push(version.to_string());
            }
        }
    }
    let Some(version) = newest_version(found)? else {
        bail!(
            "no kernel in {} with modules in {}: install linux-image-amd64",
            boot.display(),
            lib_modules.display()
        );
    };
    Ok(Kernel {
        image: boot.join(format!("vmlinuz-{version}")),
        modules: lib_modules.join(&version),
        version,
    })
}

/// Locate [`MODULES`] through `modules.dep`. Modules built into the kernel
/// (`modules.builtin`) are left out; `init.sh` skips what is not there.
pub(super) fn find_modules(dir: &Path) -> Result<Vec<Module>> {
    let dep_path = dir.join("modules.dep");
    let dep = fs::read_to_string(&dep_path).with_context(|| {
        format!(
            "reading {} (run depmod, or reinstall the kernel package)",
            dep_path.display()
        )
    })?;
    let builtin: HashSet<String> = fs::read_to_string(dir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(module_name)
        .collect();
    let by_name: HashMap<String, &str> = dep
        .lines()
        .filter_map(|l| l.split_once(':').map(|(p, _)| p))
        .filter_map(|p| module_name(p).map(|n| (n, p)))
        .collect();
    let mut out = Vec::new();
    for &name in MODULES {
        match by_name.get(name) {
            Some(rel) => out.push(Module {
                name,
                source: dir.join(rel),
            }),
            None if builtin.contains(name) => {
                step(PHASE, &format!("module {name} is built into the kernel"));
            }
            None => bail!("module {name} is not in {}", dep_path.display()),
        }
    }
    Ok(out)
}

/// `kernel/drivers/virtio/virtio_pci.ko.xz` -> `virtio_pci` (dashes as underscores).
fn module_name(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))?;
    Some(stem.replace('-', "_"))
}

/// The module's bytes, decompressed (busybox `insmod` wants a plain `.ko`).
pub(super) fn decompressed_module(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".ko.xz") {
        "xz"
    } else if name.ends_with(".ko.zst") {
        "zstd"
    } else if name.ends_with(".ko.gz") {
        "gzip"
    } else {
        return fs::read(path).with_context(|| format!("reading {name}"));
    };
    let out = Command::new(tool)
        .args(["-d", "-c"])
        .arg(path)
        .output()
        .with_context(|| format!("running {tool} to decompress {name}"))?;
    if !out.status.success() {
        bail!(
            "{tool} -d -c {name} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_kernel_with_modules_in_version_order() {
        let d =
            std::env::temp_dir().join(format!("xtask-guest-test-{}-kernel", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let (boot, lib) = (d.join("boot"), d.join("modules"));
        fs::create_dir_all(&boot).unwrap();
        fs::create_dir_all(&lib).unwrap();
        assert!(newest_kernel(&boot, &lib)
            .unwrap_err()
            .to_string()
            .contains("install linux-image-amd64"));
        // 100 > 56 > 9 as numbers; 6.12 has the highest version but no modules.
        for v in ["6.1.0-9-amd64", "6.1.0-100-amd64", "6.1.0-56-amd64"] {
            fs::write(boot.join(format!("vmlinuz-{v}")), "").unwrap();
            fs::create_dir(lib.join(v)).unwrap();
        }
        fs::write(boot.join("vmlinuz-6.12.0-1-amd64"), "").unwrap();
        fs::write(boot.join("config-6.13.0-1-amd64"), "").unwrap();
        let k = newest_kernel(&boot, &lib).unwrap();
        assert_eq!(k.version, "6.1.0-100-amd64");
        assert_eq!(k.image, boot.join("vmlinuz-6.1.0-100-amd64"));
        assert_eq!(k.modules, lib.join("6.1.0-100-amd64"));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn module_names() {
        assert_eq!(
            module_name("kernel/drivers/virtio/virtio_pci.ko").as_deref(),
            Some("virtio_pci")
        );
        assert_eq!(
            module_name("kernel/net/core/failover.ko.zst").as_deref(),
            Some("failover")
        );
        assert_eq!(
            module_name("kernel/x/net-failover.ko.xz").as_deref(),
            Some("net_failover")
        );
        assert_eq!(module_name("modules.order"), None);
    }
}
