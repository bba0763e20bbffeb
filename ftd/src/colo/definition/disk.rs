//! The disks and paths of a definition built from the peer's ([`super`]): the
//! replicated disk (left out of the secondary's, on this host's image in the
//! survivor's), an empty cdrom or floppy, and boot files only under this host's
//! `colo.trusted-dirs`.

use super::{unsupported, value, Disk, Walker};
use crate::colo::layout::LayoutError;
use crate::colo::xml::escape;
use roxmltree::Node;
use std::fmt::Write;
use std::path::{Component, Path, PathBuf};

impl Walker<'_> {
    /// A `<disk>`: the replicated one (left out, or on this host's image), or an
    /// empty cdrom or floppy.
    pub(super) fn disk(&mut self, n: Node, path: &str, depth: usize) -> Result<(), LayoutError> {
        let device = n.attribute("device").unwrap_or("disk");
        let target = n
            .children()
            .find(|c| c.has_tag_name("target"))
            .and_then(|t| t.attribute("dev"))
            .unwrap_or("?");
        let shown = crate::colo::validate::shown(target);
        match device {
            "disk" => {
                self.disks += 1;
                match self.disk {
                    Disk::Replicated => Ok(()),
                    Disk::At(file) => self.local_disk(n, file, depth),
                }
            }
            "cdrom" | "floppy" => {
                if n.children()
                    .any(|c| c.has_tag_name("source") && c.attributes().len() > 0)
                {
                    return Err(unsupported(
                        format!("{device} {shown}"),
                        "media are not replicated; eject it (virsh change-media --eject)",
                    ));
                }
                self.copy(n, path, depth, &["type", "device"], &[], false)
            }
            other => Err(unsupported(
                format!(
                    "disk {shown} (device {})",
                    crate::colo::validate::shown(other)
                ),
                "only a disk image is replicated; a host's LUN or block device stays on its host",
            )),
        }
    }

    /// The survivor's disk: a qcow2 file on this host, with the peer's target,
    /// address, boot order and cache settings.
    fn local_disk(&mut self, n: Node, file: &Path, depth: usize) -> Result<(), LayoutError> {
        let indent = "  ".repeat(depth);
        let _ = writeln!(self.out, "{indent}<disk type='file' device='disk'>");
        let inner = "  ".repeat(depth + 1);
        let cache = n
            .children()
            .find(|c| c.has_tag_name("driver"))
            .and_then(|d| d.attribute("cache"))
            .filter(|c| {
                matches!(
                    *c,
                    "none" | "writeback" | "writethrough" | "directsync" | "unsafe"
                )
            });
        let _ = write!(self.out, "{inner}<driver name='qemu' type='qcow2'");
        if let Some(c) = cache {
            let _ = write!(self.out, " cache='{c}'");
        }
        self.out.push_str("/>\n");
        let _ = writeln!(
            self.out,
            "{inner}<source file='{}'/>",
            escape(&file.display().to_string())
        );
        for k in n.children().filter(Node::is_element) {
            let p = match k.tag_name().name() {
                "target" => "domain/devices/disk/target",
                "boot" => "domain/devices/disk/boot",
                "address" => "domain/devices/disk/address",
                _ => continue,
            };
            self.element(k, p, depth + 1)?;
        }
        let _ = writeln!(self.out, "{indent}</disk>");
        Ok(())
    }

    /// The path in `n`'s text: absolute, plain (no `.` or `..`), under one of
    /// this host's trusted directories.
    pub(super) fn trusted(&self, n: Node, what: &str) -> Result<PathBuf, LayoutError> {
        let t = n.text().map(str::trim).unwrap_or("");
        value(what, t)?;
        let p = PathBuf::from(t);
        let plain = p.is_absolute()
            && p.components()
                .skip(1)
                .all(|c| matches!(c, Component::Normal(_)));
        let dirs = self.local.trusted_dirs;
        if plain && dirs.iter().any(|d| p.starts_with(d) && p != *d) {
            return Ok(p);
        }
        let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        Err(unsupported(
            format!("{what} {}", crate::colo::validate::shown(t)),
            format!(
                "it is not a plain path under this host's colo.trusted-dirs ({}): add its \
                 directory there if this host has the same file",
                list.join(", ")
            ),
        ))
    }
}
