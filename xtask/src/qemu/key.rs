//! The cache key of the patched QEMU and what a cache hit must match: the Debian
//! source version of the installed `qemu-system-x86`, the sha256 of `qemu/*.patch`
//! (together they name the cache directory), and the configure flags recorded in
//! `BUILD-INFO`. A change to any of them means a new build (about 3 minutes), so the
//! computations here are pinned by tests.

use super::QemuBuild;
use crate::util;
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `configure` flags: x86_64 only, with block replication (COLO), without the
/// front-ends and optional libraries we do not need. `--firmwarepath` is Debian's
/// own search path, so the binary finds the BIOS (seabios) and the option ROMs
/// (ipxe-qemu, qemu-system-data) without `-L`. The guests then get the same ROMs as
/// with the stock binary.
pub(super) const CONFIGURE_FLAGS: &[&str] = &[
    "--target-list=x86_64-softmmu",
    "--enable-replication",
    "--disable-docs",
    "--disable-werror",
    "--disable-xen",
    "--disable-gtk",
    "--disable-sdl",
    "--disable-vnc",
    "--disable-spice",
    "--disable-opengl",
    "--disable-capstone",
    "--firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu",
];

/// [`CONFIGURE_FLAGS`] plus `--with-pkgversion`, which names the build in
/// `--version` and in QMP's `query-version` (`package`), e.g.
/// `7.2.22 (ftvirt 1:7.2+dfsg-7+deb12u18 patches 950f82366fd8)`, so that reports can
/// tell it from Debian's binary (`Debian 1:7.2+dfsg-7+deb12u18+b3`).
pub(super) fn configure_args(build: &QemuBuild) -> Vec<String> {
    let mut v: Vec<String> = CONFIGURE_FLAGS.iter().map(|s| s.to_string()).collect();
    let short = &build.patch_sha256[..build.patch_sha256.len().min(12)];
    v.push(format!(
        "--with-pkgversion=ftvirt {} patches {short}",
        build.source_version
    ));
    v
}

/// The `configure:` line of a BUILD-INFO file.
pub(super) fn recorded_configure(info: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix("configure: "))
        .map(str::to_string)
}

/// `${source:Version}` of the installed `qemu-system-x86`, e.g. `1:7.2+dfsg-7+deb12u18`.
pub(super) fn installed_source_version() -> Result<String> {
    let v = util::output(Command::new("dpkg-query").args([
        "-W",
        "-f=${source:Version}",
        "qemu-system-x86",
    ]))
    .context(
        "qemu-system-x86 is not installed; the package step of `cargo xtask setup` installs it",
    )?;
    if v.is_empty() {
        bail!("dpkg-query reports no source version for qemu-system-x86; reinstall it");
    }
    Ok(v)
}

/// The `*.patch` files of `dir`, sorted by file name (= application order).
pub(super) fn patch_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.is_file() && p.extension().is_some_and(|x| x == "patch") {
            v.push(p);
        }
    }
    v.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(v)
}

/// sha256 (lowercase hex) of the files' contents, concatenated in the given order.
pub(super) fn patch_sha256(files: &[PathBuf]) -> Result<String> {
    let mut h = Sha256::new();
    for f in files {
        h.update(fs::read(f).with_context(|| format!("reading {}", f.display()))?);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// `<sanitised source version>-<first 12 hex digits of the patch hash>`.
pub(super) fn cache_dir_name(source_version: &str, patch_sha256: &str) -> String {
    let short = &patch_sha256[..patch_sha256.len().min(12)];
    format!("{}-{short}", sanitise(source_version))
}

/// A Debian version as a file name: `:` (the epoch) and anything unusual become `_`.
fn sanitise(version: &str) -> String {
    version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".+-~_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// First line of `bin --version` when `bin` exists and runs.
pub(super) fn version_line(bin: &Path) -> Option<String> {
    if !bin.is_file() {
        return None;
    }
    let out = util::output(Command::new(bin).arg("--version")).ok()?;
    out.lines().next().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::super::{file_name, STOCK_BINARY};
    use super::*;

    /// A fresh, empty directory under the system temp dir.
    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xtask-qemu-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn cache_dir_name_from_version_and_hash() {
        let hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            cache_dir_name("1:7.2+dfsg-7+deb12u18", hash),
            "1_7.2+dfsg-7+deb12u18-0123456789ab"
        );
        assert_eq!(
            cache_dir_name("1:10.0.2+ds-2~bpo12+1", hash),
            "1_10.0.2+ds-2~bpo12+1-0123456789ab"
        );
        assert_eq!(sanitise("a/b c:d"), "a_b_c_d");
    }

    #[test]
    fn patch_hash_is_over_sorted_patch_files_only() {
        let d = scratch("hash");
        // Written out of order; only *.patch counts, in file-name order.
        fs::write(d.join("2-second.patch"), "bc").unwrap();
        fs::write(d.join("1-first.patch"), "a").unwrap();
        fs::write(d.join("README.md"), "not a patch").unwrap();
        fs::create_dir(d.join("dir.patch")).unwrap();
        let files = patch_files(&d).unwrap();
        let names: Vec<String> = files.iter().map(|p| file_name(p)).collect();
        assert_eq!(names, ["1-first.patch", "2-second.patch"]);
        // sha256("abc"), the FIPS 180-2 test vector.
        assert_eq!(
            patch_sha256(&files).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Renaming to swap the order changes the hash.
        fs::rename(d.join("1-first.patch"), d.join("3-first.patch")).unwrap();
        let swapped = patch_sha256(&patch_files(&d).unwrap()).unwrap();
        assert_ne!(
            swapped,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn project_patch_is_present_and_touches_colo() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let files = patch_files(&root.join("qemu")).unwrap();
        assert!(!files.is_empty());
        let text = fs::read_to_string(&files[0]).unwrap();
        assert!(text.contains("+++ b/migration/colo.c"));
        assert!(text.contains("+    tb_flush(first_cpu);"));
        assert!(text.contains("+    qemu_mutex_lock_iothread();"));
    }

    #[test]
    fn configure_args_name_the_build_and_are_recorded() {
        let b = QemuBuild {
            binary: PathBuf::from("/x/qemu-system-x86_64"),
            stock_binary: PathBuf::from(STOCK_BINARY),
            source_version: "1:7.2+dfsg-7+deb12u18".into(),
            patch_sha256: "950f82366fd8f1735434a3a41fab06138eb6443f8de4bf22b900e7cd5def5fc3".into(),
        };
        let args = configure_args(&b);
        assert_eq!(&args[..CONFIGURE_FLAGS.len()], CONFIGURE_FLAGS);
        assert_eq!(
            args.last().unwrap(),
            "--with-pkgversion=ftvirt 1:7.2+dfsg-7+deb12u18 patches 950f82366fd8"
        );
        let info = format!(
            "qemu-version: x\nconfigure: {}\nbuilt-at: y\n",
            args.join(" ")
        );
        assert_eq!(recorded_configure(&info), Some(args.join(" ")));
        assert_eq!(recorded_configure("qemu-version: x\n"), None);
    }
}
