//! The guest's kernel: the newest installed Debian kernel (`/boot/vmlinuz-<v>` with
//! `/lib/modules/<v>`), and the virtio modules of [`MODULES`] found through its
//! `modules.dep` and decompressed for busybox `insmod`.

use super::{MODULES, PHASE};
use crate::util::step;
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

/// The newest `/boot/vmlinuz-<v>` that has `/lib/modules/<v>` (version order, like
/// `sort -V`).
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
    let Some(version) = found.into_iter().max_by(|a, b| version_cmp(a, b)) else {
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

/// Compare version strings by runs of digits (numerically) and non-digits (bytes).
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        let b = s.as_bytes();
        for i in 1..=b.len() {
            if i == b.len() || b[i].is_ascii_digit() != b[start].is_ascii_digit() {
                out.push(&s[start..i]);
                start = i;
            }
        }
        out
    }
    let (ra, rb) = (runs(a), runs(b));
    for (x, y) in ra.iter().zip(rb.iter()) {
        let ord = match (x.parse::<u128>(), y.parse::<u128>()) {
            (Ok(nx), Ok(ny)) => nx.cmp(&ny),
            _ => x.cmp(y),
        };
        if ord.is_ne() {
            return ord;
        }
    }
    ra.len().cmp(&rb.len())
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
    use std::cmp::Ordering::*;

    #[test]
    fn version_order() {
        assert_eq!(version_cmp("6.1.0-56-amd64", "6.1.0-100-amd64"), Less);
        assert_eq!(version_cmp("5.10.0-30-amd64", "6.1.0-9-amd64"), Less);
        assert_eq!(version_cmp("6.1.0-9-amd64", "6.1.0-9-amd64"), Equal);
        assert_eq!(version_cmp("6.12.0-1-amd64", "6.1.0-56-amd64"), Greater);
        assert_eq!(version_cmp("6.1.0", "6.1.0-1"), Less);
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
