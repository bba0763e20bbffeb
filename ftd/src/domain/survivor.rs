//! The survivor's disk. Until a takeover the secondary's copy of the disk
//! (`parent0.qcow2`) lives in its scratch directory,
//! `<overlay-dir>/<domain>/secondary`, which ftd deletes whenever a secondary
//! ends. At takeover that file becomes the domain's only disk, so it is renamed
//! out of the scratch area, to `<overlay-dir>/<domain>/disk/<domain>.qcow2`
//! (`-2`, `-3`, ... when taken), and the survivor's persistent definition is
//! written to use it there. QEMU goes on writing to it: a rename does not touch
//! an open file. A rename never crosses file systems and never overwrites
//! anything (`RENAME_NOREPLACE`, or a hard link where the file system lacks it);
//! when no rename is possible the disk stays where it is and the scratch checks
//! (`scratch.rs`) keep it.
//!
//! The name is this host's own (the domain's, which libvirt checked), never a
//! path the peer sent: a peer could otherwise have the guest's data written
//! anywhere on this host.
//!
//! Once a later protection moved the disk under a new base image (the pivot, in
//! `steps.rs`), the moved file is no longer the disk and [`drop_replaced`]
//! removes it, as the earlier base images are.

use nix::errno::Errno;
use nix::fcntl::{renameat2, RenameFlags};
use std::path::{Path, PathBuf};

/// How many names are tried before giving up.
const MAX_TRIES: usize = 100;

/// Where a survivor's disk goes: `<overlay-dir>/<domain>/disk` (checked to stay
/// under the overlay directory).
pub(crate) fn disk_dir(overlay_dir: &Path, name: &str) -> Result<PathBuf, String> {
    super::overlay::domain_dir(overlay_dir, name, "disk")
}

/// The names tried in turn in `dir` for `name`'s disk.
fn candidates<'a>(dir: &'a Path, name: &str) -> impl Iterator<Item = PathBuf> + 'a {
    let name = name.to_string();
    (1..=MAX_TRIES).map(move |i| match i {
        1 => dir.join(format!("{name}.qcow2")),
        i => dir.join(format!("{name}-{i}.qcow2")),
    })
}

/// The path the disk would get now (the first free name), for the witness's
/// record before the takeover happens.
pub(crate) fn planned(dir: &Path, name: &str) -> PathBuf {
    candidates(dir, name)
        .find(
            |p| matches!(p.symlink_metadata(), Err(e) if e.kind() == std::io::ErrorKind::NotFound),
        )
        .unwrap_or_else(|| dir.join(format!("{name}.qcow2")))
}

/// Rename `from` to the first free name in `dir` (created if missing, QEMU's
/// group's as the scratch directory is: QEMU keeps the file open and libvirt
/// opens it there at the next start); the new path. The file keeps its owner
/// and mode (QEMU's, 0600). Never overwrites; `Err` says why the file stays
/// where it is.
pub(crate) fn move_out(
    from: &Path,
    dir: &Path,
    name: &str,
    qemu: &crate::host::QemuUser,
) -> Result<PathBuf, String> {
    qemu.create_dirs(dir)?;
    for to in candidates(dir, name) {
        match rename_noreplace(from, &to) {
            Ok(()) => return Ok(to),
            Err(Errno::EEXIST) => continue,
            Err(e) => {
                return Err(format!(
                    "renaming {} to {}: {}",
                    from.display(),
                    to.display(),
                    e.desc()
                ))
            }
        }
    }
    Err(format!(
        "{} to {} names in {} are all taken",
        name,
        MAX_TRIES,
        dir.display()
    ))
}

/// `rename(from, to)` that fails with `EEXIST` rather than replace `to`.
fn rename_noreplace(from: &Path, to: &Path) -> Result<(), Errno> {
    match renameat2(None, from, None, to, RenameFlags::RENAME_NOREPLACE) {
        // A file system without RENAME_NOREPLACE: link(2) never replaces either.
        Err(Errno::EINVAL) => {
            nix::unistd::linkat(None, from, None, to, nix::fcntl::AtFlags::empty())?;
            nix::unistd::unlink(from)
        }
        r => r,
    }
}

/// After a pivot onto a new base image: if the definition used a survivor's
/// disk in `dir` before (`before`) and uses another file now (`now`), that
/// file is no longer the domain's disk (the guest writes to the new base, a
/// full copy): remove it. Anything outside `dir` is left alone.
pub(crate) fn drop_replaced(dir: &Path, before: &Path, now: &Path) -> Option<PathBuf> {
    if before == now || before.parent() != Some(dir) {
        return None;
    }
    match std::fs::remove_file(before) {
        Ok(()) => Some(before.to_path_buf()),
        Err(e) => {
            tracing::warn!(file = %before.display(), error = %e, "could not remove the survivor's disk the domain no longer uses");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(t: &tempfile::TempDir) -> (PathBuf, PathBuf) {
        let s = t.path().join("g/secondary");
        std::fs::create_dir_all(&s).unwrap();
        let parent = s.join("parent0.qcow2");
        std::fs::write(&parent, b"the guest's data").unwrap();
        (parent, disk_dir(t.path(), "g").unwrap())
    }

    fn me() -> crate::host::QemuUser {
        crate::host::QemuUser::current()
    }

    #[test]
    fn the_disk_leaves_the_scratch_directory_with_its_data() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let (parent, dir) = scratch(&t);
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(planned(&dir, "g"), t.path().join("g/disk/g.qcow2"));
        let to = move_out(&parent, &dir, "g", &me()).unwrap();
        assert_eq!(to, t.path().join("g/disk/g.qcow2"));
        assert!(!parent.exists());
        assert_eq!(std::fs::read(&to).unwrap(), b"the guest's data");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&to), 0o600);
        assert_eq!(mode(&dir), 0o750);
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let t = tempfile::tempdir().unwrap();
        let (parent, dir) = scratch(&t);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("g.qcow2"), b"an older survivor").unwrap();
        std::os::unix::fs::symlink("/nonexistent", dir.join("g-2.qcow2")).unwrap();
        assert_eq!(planned(&dir, "g"), dir.join("g-3.qcow2"));
        let to = move_out(&parent, &dir, "g", &me()).unwrap();
        assert_eq!(to, dir.join("g-3.qcow2"));
        assert_eq!(
            std::fs::read(dir.join("g.qcow2")).unwrap(),
            b"an older survivor"
        );
        assert_eq!(std::fs::read(&to).unwrap(), b"the guest's data");
    }

    #[test]
    fn a_missing_disk_is_an_error_that_names_it() {
        let t = tempfile::tempdir().unwrap();
        let dir = disk_dir(t.path(), "g").unwrap();
        let e = move_out(&t.path().join("nope.qcow2"), &dir, "g", &me()).unwrap_err();
        assert!(
            e.contains("nope.qcow2") && e.contains("No such file"),
            "{e}"
        );
    }

    #[test]
    fn only_a_replaced_survivor_disk_is_removed() {
        let t = tempfile::tempdir().unwrap();
        let dir = disk_dir(t.path(), "g").unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let old = dir.join("g.qcow2");
        std::fs::write(&old, b"x").unwrap();
        let new = dir.join("g.ftvirt1.qcow2");
        // Still the disk: kept.
        assert_eq!(drop_replaced(&dir, &old, &old), None);
        // A disk elsewhere (the admin's own): kept.
        let own = t.path().join("images/g.qcow2");
        assert_eq!(drop_replaced(&dir, &own, &new), None);
        assert!(old.exists());
        assert_eq!(drop_replaced(&dir, &old, &new), Some(old.clone()));
        assert!(!old.exists());
    }
}
