//! What the secondary's host needs from the primary's to build the secondary
//! (checked by [`super::validate::spec`] before use), the survivor's normal
//! definition after a takeover (built from the primary's by the allow-list), and
//! this host's own definition pointed at a new disk image.

use super::definition::{self, Built, LocalFiles};
use super::layout::LayoutError;
use super::plan::Ports;
use super::secondary::DiskDevice;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Sent by the primary's ftd when the secondary's asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondarySpec {
    /// Live XML of the running primary: the secondary copies its device layout.
    pub primary_live_xml: String,
    /// The primary's persistent definition: after a takeover it becomes the
    /// survivor's own (with its disk path).
    pub primary_inactive_xml: String,
    pub disk: DiskDevice,
    /// Virtual size of the disk in bytes.
    pub disk_size: u64,
    pub ports: Ports,
    /// The primary's address on the replication network.
    pub primary_addr: String,
}

/// The persistent definition a survivor of domain `name` keeps after taking
/// over: built from the primary's inactive definition by the allow-list
/// ([`definition::takeover`]: never verbatim, so never its `<qemu:commandline>`,
/// host devices or paths), its disk on the survivor's own image, so the next
/// boot uses the data the guest wrote here.
pub fn takeover_definition(
    inactive_xml: &str,
    name: &str,
    disk_path: &Path,
    local: &LocalFiles,
) -> Result<Built, LayoutError> {
    definition::takeover(inactive_xml, name, disk_path, local)
}

/// This host's own persistent definition (`own_xml`, from its libvirt, never
/// the peer's) with its disk's source replaced by `disk_path`, all else as it
/// was: the primary's pivot to a new base image.
pub fn repoint_disk(own_xml: &str, disk_path: &Path) -> Result<String, LayoutError> {
    let source = disk_source(own_xml)?;
    let new = disk_path.display().to_string();
    for quote in ['\'', '"'] {
        let old_attr = format!("file={quote}{source}{quote}");
        if own_xml.matches(&old_attr).count() == 1 {
            return Ok(own_xml.replace(&old_attr, &format!("file={quote}{new}{quote}")));
        }
    }
    Err(LayoutError::Xml(format!(
        "cannot find a unique file='{source}' to replace"
    )))
}

/// The source file of the first disk (`device='disk'`) of a domain definition.
pub fn disk_source(xml: &str) -> Result<String, LayoutError> {
    let doc = super::xml::parse(xml).map_err(|e| LayoutError::Xml(e.to_string()))?;
    doc.descendants()
        .filter(|n| n.has_tag_name("disk") && n.attribute("device").unwrap_or("disk") == "disk")
        .filter_map(|d| d.children().find(|c| c.has_tag_name("source")))
        .find_map(|s| s.attribute("file"))
        .map(str::to_string)
        .ok_or_else(|| LayoutError::Xml("the definition has no file-backed disk".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const LIVE: &str = include_str!("testdata/lab-guest-live.xml");

    fn local() -> (Vec<PathBuf>, PathBuf) {
        (vec!["/var/cache/ftvirt".into()], "/b/g.serial.log".into())
    }

    #[test]
    fn the_own_definition_keeps_everything_but_the_disk() {
        let x = "<domain type='qemu'><name>g</name><devices><disk type='file' device='disk'><source file='/a/g.qcow2'/><target dev='vda' bus='virtio'/></disk><serial type='file'><source path='/a/s.log'/></serial></devices></domain>";
        let y = repoint_disk(x, Path::new("/b/g.parent0.qcow2")).unwrap();
        assert!(y.contains("<source file='/b/g.parent0.qcow2'/>"), "{y}");
        assert!(y.contains("/a/s.log"), "only the disk changes");
        let z = "<domain><devices><interface type='bridge'/></devices></domain>";
        assert!(repoint_disk(z, Path::new("/b/x"))
            .unwrap_err()
            .to_string()
            .contains("no file-backed disk"));
    }

    #[test]
    fn the_survivor_definition_is_built_not_copied() {
        let (dirs, log) = local();
        let l = LocalFiles {
            trusted_dirs: &dirs,
            serial_log: &log,
        };
        let inactive = LIVE
            .replace(" id='1'", "")
            .replace(
                "</devices>",
                "<hostdev mode='subsystem' type='pci'/></devices>\n  <qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><qemu:arg value='-set'/></qemu:commandline>",
            );
        // A host device is refused outright ...
        let e = takeover_definition(&inactive, "ftguest", Path::new("/b/g.qcow2"), &l).unwrap_err();
        assert!(e.to_string().contains("<hostdev>"), "{e}");
        // ... and without it, the commandline is left out.
        let inactive = inactive.replace("<hostdev mode='subsystem' type='pci'/>", "");
        let b = takeover_definition(&inactive, "ftguest", Path::new("/b/g.qcow2"), &l).unwrap();
        assert!(
            !b.xml.contains("commandline") && !b.xml.contains("-set"),
            "{}",
            b.xml
        );
        assert!(
            b.dropped.iter().any(|d| d.contains("commandline")),
            "{:?}",
            b.dropped
        );
        let d = crate::colo::layout::DomainLayout::parse(&b.xml).unwrap();
        assert_eq!(d.disks.len(), 1);
        assert_eq!(d.disks[0].source, PathBuf::from("/b/g.qcow2"));
        assert_eq!(d.disks[0].format, "qcow2");
        assert_eq!(d.disks[0].pci.as_ref().unwrap().slot, 3);
        assert!(
            b.xml.contains("<source path='/b/g.serial.log'/>"),
            "{}",
            b.xml
        );
        assert!(
            !b.xml.contains("/var/tmp/ftvirt-lab"),
            "no path of the peer's: {}",
            b.xml
        );
        // Another domain's name is refused.
        let e = takeover_definition(&inactive, "other", Path::new("/b/g.qcow2"), &l).unwrap_err();
        assert!(e.to_string().contains("not \"other\""), "{e}");
    }
}
