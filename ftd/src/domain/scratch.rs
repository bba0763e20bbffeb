//! The secondary's overlay directory (`<overlay-dir>/<domain>/secondary`) is
//! scratch only while no persistent definition of the domain on this host uses a
//! file in it. After a takeover the survivor's definition points at
//! `parent0.qcow2` there: that file is then the domain's only disk. The steps
//! that destroy a secondary or create its images ask [`kept_for`] first and
//! leave the directory alone when it holds the domain's disk.

use super::HostCtx;
use crate::libvirt::LibvirtError;
use std::path::{Path, PathBuf};

/// Does `xml` name a file inside `dir` (as a disk source, a backing file, a
/// serial log, anything)? Checked on the text, so that a definition this
/// module cannot parse still counts: keeping scratch files costs only disk
/// space, deleting a disk loses the domain.
pub(super) fn names_a_file_in(xml: &str, dir: &Path) -> bool {
    let d = dir.to_string_lossy();
    let d = d.trim_end_matches('/');
    ["'", "\""]
        .iter()
        .any(|q| xml.contains(&format!("{q}{d}/")))
}

/// Why the files in `dir` must be kept for `name`, if they must: its persistent
/// definition on this host uses one of them (or cannot be read, which is taken
/// to mean it might). `None`: `name` has no persistent definition here that
/// uses them (a transient secondary has none at all).
pub(super) async fn kept_for(ctx: &HostCtx, name: &str, dir: &Path) -> Option<String> {
    match ctx.lv.persistent_xml(name).await {
        Ok(Some(xml)) if names_a_file_in(&xml, dir) => Some(format!(
            "the definition of {name} on this host uses a file in {} (the disk of \
             the copy that took over here): it is the domain's disk, not scratch",
            dir.display()
        )),
        Ok(_) | Err(LibvirtError::NoDomain(_)) => None,
        Err(e) => Some(format!(
            "the definition of {name} could not be read ({e}), so whether it uses a \
             file in {} is unknown",
            dir.display()
        )),
    }
}

/// The secondary's overlay directory of `name` on this host.
pub(super) fn dir(ctx: &HostCtx, name: &str) -> PathBuf {
    ctx.overlay_dir.join(name).join("secondary")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_definition_using_the_directory_is_seen_whatever_the_quotes() {
        let d = Path::new("/srv/overlays/g/secondary");
        let survivor = "<disk><source file='/srv/overlays/g/secondary/parent0.qcow2'/></disk>";
        assert!(names_a_file_in(survivor, d));
        assert!(names_a_file_in(&survivor.replace('\'', "\""), d));
        assert!(names_a_file_in(
            survivor,
            Path::new("/srv/overlays/g/secondary/")
        ));
        // Another domain's directory with the same prefix, or the primary's own disk.
        assert!(!names_a_file_in(
            "<source file='/srv/overlays/g/secondary2/parent0.qcow2'/>",
            d
        ));
        assert!(!names_a_file_in(
            "<source file='/var/lib/libvirt/images/g.qcow2'/>",
            d
        ));
    }
}
