//! What the secondary's host needs from the primary's to build the secondary, and
//! the survivor's normal definition after a takeover.

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

/// The persistent definition a survivor keeps after taking over: the primary's
/// definition with the disk's source replaced by the survivor's own image, so the
/// next boot uses the data the guest wrote here.
pub fn takeover_definition(inactive_xml: &str, disk_path: &Path) -> Result<String, LayoutError> {
    let source = disk_source(inactive_xml)?;
    let new = disk_path.display().to_string();
    for quote in ['\'', '"'] {
        let old_attr = format!("file={quote}{source}{quote}");
        if inactive_xml.matches(&old_attr).count() == 1 {
            return Ok(inactive_xml.replace(&old_attr, &format!("file={quote}{new}{quote}")));
        }
    }
    Err(LayoutError::Xml(format!(
        "cannot find a unique file='{source}' to replace"
    )))
}

/// The source file of the first disk (`device='disk'`) of a domain definition.
pub fn disk_source(xml: &str) -> Result<String, LayoutError> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| LayoutError::Xml(e.to_string()))?;
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

    #[test]
    fn survivor_definition_points_at_its_own_disk() {
        let x = "<domain type='qemu'><name>g</name><devices><disk type='file' device='disk'><source file='/a/g.qcow2'/><target dev='vda' bus='virtio'/></disk><serial type='file'><source path='/a/s.log'/></serial></devices></domain>";
        let y = takeover_definition(x, Path::new("/b/g.parent0.qcow2")).unwrap();
        assert!(y.contains("<source file='/b/g.parent0.qcow2'/>"), "{y}");
        assert!(y.contains("/a/s.log"), "only the disk changes");
        let z = "<domain><devices><interface type='bridge'/></devices></domain>";
        assert!(takeover_definition(z, Path::new("/b/x"))
            .unwrap_err()
            .to_string()
            .contains("no file-backed disk"));
    }
}
