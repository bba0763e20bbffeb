//! The initramfs: a static busybox with a symlink per applet, the agent, `/init`
//! and the modules laid out in a tree, packed with `cpio -H newc` (entries owned by
//! root) and compressed with `gzip -9 -n` (no name or time stamp).

use super::agent::{elf_is_static, AGENT_PACKAGE};
use super::PHASE;
use crate::util::{output, run, step};
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BUSYBOX_CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

pub(super) fn find_busybox() -> Result<PathBuf> {
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

/// Lay out the initramfs tree under `tree`.
pub(super) fn stage_tree(
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
pub(super) fn pack_cpio(tree: &Path, dest: &Path) -> Result<()> {
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

pub(super) fn gzip(src: &Path, dest: &Path) -> Result<()> {
    let out = fs::File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    run(Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .arg(src)
        .stdout(out))
}
