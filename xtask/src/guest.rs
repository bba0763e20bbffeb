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

use crate::util::{output, run, step};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

/// Bump when the image layout changes without any input changing.
const LAYOUT_VERSION: &str = "ftvirt-guest-image-1";
const AGENT_PACKAGE: &str = "ftvirt-guest-agent";
const AGENT_TARGET: &str = "x86_64-unknown-linux-gnu";
const INIT_SCRIPT: &str = "tests/guest-agent/init.sh";
const BUSYBOX_CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

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

/// An installed kernel: `/boot/vmlinuz-<version>` with `/lib/modules/<version>`.
#[derive(Debug)]
struct Kernel {
    version: String,
    image: PathBuf,
    modules: PathBuf,
}

/// A module to put in the initramfs: its source file (maybe compressed).
#[derive(Debug)]
struct Module {
    name: &'static str,
    source: PathBuf,
}

/// Build (or find in the cache) the guest kernel + initramfs.
pub fn build_guest(root: &Path, cache: &Path) -> Result<GuestImage> {
    let kernel = newest_kernel(Path::new("/boot"), Path::new("/lib/modules"))?;
    step(
        PHASE,
        &format!("kernel {} ({})", kernel.version, kernel.image.display()),
    );
    let busybox = find_busybox()?;
    let agent = build_agent(root)?;
    let init_path = root.join(INIT_SCRIPT);
    let init = fs::read(&init_path).with_context(|| format!("reading {}", init_path.display()))?;
    let modules = find_modules(&kernel.modules)?;

    let kernel_bytes =
        fs::read(&kernel.image).with_context(|| format!("reading {}", kernel.image.display()))?;
    let busybox_bytes = fs::read(&busybox)?;
    let agent_bytes = fs::read(&agent)?;
    let mut module_bytes = Vec::new();
    for m in &modules {
        module_bytes.push((m.name, decompressed_module(&m.source)?));
    }

    let hash = image_key(
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
    let work =
        WorkDir::new(guest_dir.join(format!(".build-{}-{}", &hash[..16], std::process::id())))?;
    let tree = work.0.join("root");
    let out = work.0.join("out");
    fs::create_dir_all(&out)?;
    stage_tree(
        &tree,
        &busybox,
        &busybox_bytes,
        &agent_bytes,
        &init,
        &module_bytes,
    )?;
    let cpio = work.0.join("initrd.cpio");
    pack_cpio(&tree, &cpio)?;
    gzip(&cpio, &out.join("initrd.img"))?;
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

/// The newest `/boot/vmlinuz-<v>` that has `/lib/modules/<v>` (version order, like
/// `sort -V`).
fn newest_kernel(boot: &Path, lib_modules: &Path) -> Result<Kernel> {
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

fn find_busybox() -> Result<PathBuf> {
    let Some(path) = BUSYBOX_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
    else {
        bail!("busybox not found at {BUSYBOX_CANDIDATES:?}: install busybox-static");
    };
    if !elf_is_static(&fs::read(&path)?).with_context(|| format!("reading {}", path.display()))? {
        bail!(
            "{} is dynamically linked; the guest has no libc: install busybox-static instead of busybox",
            path.display()
        );
    }
    Ok(path)
}

/// `cargo build` the agent as a static binary and return its path.
fn build_agent(root: &Path) -> Result<PathBuf> {
    let target_dir = root.join("target").join("guest");
    step(
        PHASE,
        &format!(
            "building {AGENT_PACKAGE} (static, {AGENT_TARGET}) in {}",
            target_dir.display()
        ),
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            AGENT_PACKAGE,
            "--target",
            AGENT_TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        // RUSTFLAGS rather than config: it applies to the target only (not to build
        // scripts, since --target is given), and this tree alone. The encoded form
        // would win over it, so drop one inherited from an outer cargo.
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS"))?;
    let bin = target_dir
        .join(AGENT_TARGET)
        .join("release")
        .join(AGENT_PACKAGE);
    let bytes = fs::read(&bin).with_context(|| format!("reading {}", bin.display()))?;
    if !elf_is_static(&bytes).with_context(|| format!("checking {}", bin.display()))? {
        bail!(
            "{} is not statically linked (it has a PT_INTERP header)",
            bin.display()
        );
    }
    step(
        PHASE,
        &format!(
            "agent {} ({} KiB, static)",
            bin.display(),
            bytes.len() / 1024
        ),
    );
    Ok(bin)
}

/// True if an x86_64 ELF executable has no program interpreter (`PT_INTERP`), i.e.
/// the kernel runs it without `ld.so` (static or static-pie).
fn elf_is_static(elf: &[u8]) -> Result<bool> {
    const PT_INTERP: u32 = 3;
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" {
        bail!("not an ELF file");
    }
    if elf[4] != 2 || elf[5] != 1 {
        bail!("not a 64-bit little-endian ELF file");
    }
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[32..40].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    for i in 0..phnum {
        let off = phoff + i * phentsize;
        let Some(p_type) = elf.get(off..off + 4) else {
            bail!("truncated program header table");
        };
        if u32::from_le_bytes(p_type.try_into().expect("4 bytes")) == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Locate [`MODULES`] through `modules.dep`. Modules built into the kernel
/// (`modules.builtin`) are left out; `init.sh` skips what is not there.
fn find_modules(dir: &Path) -> Result<Vec<Module>> {
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
fn decompressed_module(path: &Path) -> Result<Vec<u8>> {
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

/// Lay out the initramfs tree under `tree`.
fn stage_tree(
    tree: &Path,
    busybox: &Path,
    busybox_bytes: &[u8],
    agent: &[u8],
    init: &[u8],
    modules: &[(&str, Vec<u8>)],
) -> Result<()> {
    for d in ["bin", "dev", "proc", "sys", "tmp", "lib/ftvirt-modules"] {
        fs::create_dir_all(tree.join(d))?;
    }
    write_file(&tree.join("bin/busybox"), busybox_bytes, 0o755)?;
    let applets = output(Command::new(busybox).arg("--list"))?;
    let mut links = 0;
    for applet in applets.lines().map(str::trim) {
        // `busybox --list` names busybox itself: a link would replace the binary by a
        // symlink to itself (colo-recipe.md §2 pitfall).
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        std::os::unix::fs::symlink("busybox", tree.join("bin").join(applet))
            .with_context(|| format!("linking applet {applet}"))?;
        links += 1;
    }
    write_file(&tree.join("bin").join(AGENT_PACKAGE), agent, 0o755)?;
    write_file(&tree.join("init"), init, 0o755)?;
    for (name, bytes) in modules {
        write_file(
            &tree.join(format!("lib/ftvirt-modules/{name}.ko")),
            bytes,
            0o644,
        )?;
    }
    step(
        PHASE,
        &format!(
            "staged busybox + {links} applets, {} modules, agent, /init",
            modules.len()
        ),
    );
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Every path under `tree`, relative, parents before children, sorted (no symlinks
/// followed).
fn tree_entries(tree: &Path) -> Result<Vec<PathBuf>> {
    fn walk(tree: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let mut names: Vec<_> = fs::read_dir(tree.join(rel))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for name in names {
            let r = rel.join(name);
            out.push(r.clone());
            if fs::symlink_metadata(tree.join(&r))?.is_dir() {
                walk(tree, &r, out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(tree, Path::new(""), &mut out)?;
    Ok(out)
}

/// `cpio -o -H newc` of `tree` into `dest`, every entry owned by root.
fn pack_cpio(tree: &Path, dest: &Path) -> Result<()> {
    let mut list = Vec::new();
    for e in tree_entries(tree)? {
        list.extend_from_slice(e.as_os_str().as_encoded_bytes());
        list.push(b'\n');
    }
    let mut child = Command::new("cpio")
        .args(["-o", "-H", "newc", "-R", "0:0", "--quiet"])
        .current_dir(tree)
        .stdin(Stdio::piped())
        .stdout(fs::File::create(dest).with_context(|| format!("creating {}", dest.display()))?)
        .spawn()
        .context("starting cpio (install the cpio package)")?;
    // The list is a few KiB: it fits the pipe, so writing before waiting is safe.
    let write = child.stdin.take().expect("piped stdin").write_all(&list);
    let status = child.wait()?;
    write.context("writing the file list to cpio")?;
    if !status.success() {
        bail!("cpio -o -H newc failed with {status}");
    }
    Ok(())
}

fn gzip(src: &Path, dest: &Path) -> Result<()> {
    let out = fs::File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    run(Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .arg(src)
        .stdout(out))
}

/// The cache key: sha256 (lowercase hex) over everything that goes into the image,
/// as labelled, length-prefixed parts in a fixed order. The cache directory is its
/// first 16 hex digits; changing the parts or their order rebuilds every cache.
fn image_key(
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
struct WorkDir(PathBuf);

impl WorkDir {
    fn new(path: PathBuf) -> Result<Self> {
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

    #[test]
    fn static_detection() {
        // The test binary itself is dynamically linked (default gnu target).
        let me = fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(!elf_is_static(&me).unwrap());
        assert!(elf_is_static(b"not an elf").is_err());
        // A minimal ELF64 header with no program headers: static.
        let mut hdr = vec![0u8; 64];
        hdr[..4].copy_from_slice(b"\x7fELF");
        hdr[4] = 2;
        hdr[5] = 1;
        assert!(elf_is_static(&hdr).unwrap());
    }

    #[test]
    fn init_script_loads_the_same_modules_in_order() {
        let init = include_str!("../../tests/guest-agent/init.sh");
        let list = MODULES.join(" ");
        let flat: String = init
            .replace("\\\n", " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(flat.contains(&list), "init.sh must insmod {list}");
    }
}
