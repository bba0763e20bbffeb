//! A domain's layout, read from libvirt's live XML with a real XML parser, and the
//! check that COLO can replicate it.
//!
//! COLO replicates one block device through a quorum + NBD + `replication` chain and
//! one NIC through the filter proxy; what the project has verified (colo-recipe) is a
//! single file-backed virtio disk and a single virtio NIC. Anything else is refused
//! *before* anything changes, with the device named and what to do about it.

use roxmltree::Node;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciAddr {
    pub domain: u32,
    pub bus: u32,
    pub slot: u32,
    pub function: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// Guest device name (`vda`).
    pub target: String,
    pub bus: String,
    /// Image format (`qcow2`, `raw`).
    pub format: String,
    pub source: PathBuf,
    /// libvirt's device alias (`virtio-disk0`), when the domain runs.
    pub alias: Option<String>,
    pub pci: Option<PciAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// `bridge`, `network`, `ethernet`, ...
    pub kind: String,
    pub mac: String,
    pub model: String,
    /// Bridge or network name.
    pub source: Option<String>,
    /// libvirt's alias (`net0`); QEMU's netdev id is `host` + alias.
    pub alias: Option<String>,
    pub pci: Option<PciAddr>,
    /// The host-side device of a running domain's NIC (`<target dev='vnet0'/>`).
    pub host_dev: Option<String>,
}

impl Nic {
    /// QEMU's `-netdev` id, which the COLO filters attach to.
    pub fn netdev_id(&self) -> Option<String> {
        self.alias.as_ref().map(|a| format!("host{a}"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainLayout {
    pub name: String,
    pub uuid: String,
    /// `kvm` or `qemu` (TCG).
    pub virt_type: String,
    pub vcpus: u32,
    pub memory_kib: u64,
    pub machine: String,
    pub emulator: PathBuf,
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
}

/// Why a domain cannot be read or protected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The XML is not a libvirt domain.
    #[error("domain XML: {0}")]
    Xml(String),
    /// A device or setting COLO cannot replicate.
    #[error("{device}: {why}")]
    Unsupported { device: String, why: String },
}

impl DomainLayout {
    /// Read the parts of a domain's XML that protection depends on.
    pub fn parse(xml: &str) -> Result<DomainLayout, LayoutError> {
        let doc = super::xml::parse(xml).map_err(|e| LayoutError::Xml(e.to_string()))?;
        let root = doc.root_element();
        if root.tag_name().name() != "domain" {
            return Err(LayoutError::Xml(format!(
                "root element is <{}>, not <domain>",
                root.tag_name().name()
            )));
        }
        let text = |path: &[&str]| {
            find(root, path)
                .and_then(|n| n.text())
                .map(|t| t.trim().to_string())
        };
        let need = |path: &[&str]| {
            text(path).ok_or_else(|| LayoutError::Xml(format!("missing <{}>", path.join("/"))))
        };
        let name = need(&["name"])?;
        let vcpus = need(&["vcpu"])?
            .parse()
            .map_err(|_| LayoutError::Xml("<vcpu> is not a number".into()))?;
        let mem =
            find(root, &["memory"]).ok_or_else(|| LayoutError::Xml("missing <memory>".into()))?;
        let memory_kib = to_kib(
            mem.text().unwrap_or("").trim(),
            mem.attribute("unit").unwrap_or("KiB"),
        )?;
        let devices =
            find(root, &["devices"]).ok_or_else(|| LayoutError::Xml("missing <devices>".into()))?;
        let mut disks = Vec::new();
        let mut nics = Vec::new();
        for dev in devices.children().filter(Node::is_element) {
            match dev.tag_name().name() {
                "disk" => disks.push(parse_disk(dev)?),
                "interface" => nics.push(parse_nic(dev)),
                _ => {}
            }
        }
        // A survivor of a takeover runs ftvirt's secondary shape: its disk is in
        // <qemu:commandline>, not in <devices>.
        if disks.is_empty() {
            disks.extend(commandline_disk(root));
        }
        Ok(DomainLayout {
            name,
            uuid: text(&["uuid"]).unwrap_or_default(),
            virt_type: root.attribute("type").unwrap_or("").to_string(),
            vcpus,
            memory_kib,
            machine: find(root, &["os", "type"])
                .and_then(|n| n.attribute("machine"))
                .unwrap_or("")
                .to_string(),
            emulator: PathBuf::from(text(&["devices", "emulator"]).unwrap_or_default()),
            disks,
            nics,
        })
    }

    /// Refuse what COLO cannot replicate; `xml` is the same document, for the
    /// device kinds the layout does not model.
    pub fn check_replicable(&self, xml: &str) -> Result<(), LayoutError> {
        let doc = super::xml::parse(xml).map_err(|e| LayoutError::Xml(e.to_string()))?;
        let devices = find(doc.root_element(), &["devices"]);
        for dev in devices
            .iter()
            .flat_map(|d| d.children())
            .filter(Node::is_element)
        {
            let unsupported = |device: String, why: &str| {
                Err(LayoutError::Unsupported {
                    device,
                    why: why.to_string(),
                })
            };
            match dev.tag_name().name() {
                "hostdev" => {
                    return unsupported(
                        format!("host device {}", describe_hostdev(dev)),
                        "a host passthrough device cannot be replicated to another host; detach it (virsh detach-device) or leave this domain unprotected",
                    )
                }
                "filesystem" => {
                    return unsupported(
                        format!("shared filesystem {}", attr_of(dev, "target", "dir")),
                        "host filesystem passthrough is not replicated by COLO; detach it",
                    )
                }
                "disk" if dev.attribute("device") == Some("cdrom") && find(dev, &["source"]).is_some() => {
                    return unsupported(
                        format!("cdrom {}", attr_of(dev, "target", "dev")),
                        "a cdrom with media is not replicated; eject it (virsh change-media --eject)",
                    )
                }
                "interface" if dev.attribute("type") == Some("vhostuser") => {
                    return unsupported(
                        format!("interface {}", attr_of(dev, "mac", "address")),
                        "vhost-user interfaces bypass QEMU's network filters; use a bridge or tap interface",
                    )
                }
                _ => {}
            }
        }
        let disks: Vec<&Disk> = self.disks.iter().collect();
        match disks.as_slice() {
            [] => {
                return Err(LayoutError::Unsupported {
                    device: format!("domain {}", self.name),
                    why: "it has no disk; COLO protects a domain with exactly one virtio disk"
                        .into(),
                })
            }
            [d] => {
                if d.bus != "virtio" {
                    return Err(LayoutError::Unsupported {
                        device: format!("disk {} (bus {})", d.target, d.bus),
                        why: "only virtio disks are replicated so far; use bus='virtio'".into(),
                    });
                }
                if d.format != "qcow2" && d.format != "raw" {
                    return Err(LayoutError::Unsupported {
                        device: format!("disk {} (format {})", d.target, d.format),
                        why: "only qcow2 and raw images are replicated; convert it with qemu-img convert".into(),
                    });
                }
            }
            [_, second, ..] => {
                return Err(LayoutError::Unsupported {
                    device: format!("disk {}", second.target),
                    why: "only one disk per domain is replicated so far; detach the others".into(),
                })
            }
        }
        match self.nics.as_slice() {
            [] => Err(LayoutError::Unsupported {
                device: format!("domain {}", self.name),
                why: "it has no network interface; COLO compares the guest's network output, add one virtio NIC".into(),
            }),
            [n] if n.model != "virtio" => Err(LayoutError::Unsupported {
                device: format!("interface {} (model {})", n.mac, n.model),
                why: "only virtio NICs are replicated so far; use <model type='virtio'/>".into(),
            }),
            [_] => Ok(()),
            [_, second, ..] => Err(LayoutError::Unsupported {
                device: format!("interface {}", second.mac),
                why: "only one network interface is replicated so far; detach the others".into(),
            }),
        }
    }
}

/// The disk of ftvirt's secondary shape: `-drive if=none,id=parent0,...,
/// file.filename=X` and `-device virtio-blk-pci,id=ID,drive=colo-disk0,bus=B,addr=A`.
fn commandline_disk(root: Node) -> Option<Disk> {
    let args: Vec<&str> = root
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "commandline")
        .flat_map(|c| c.children())
        .filter_map(|a| a.attribute("value"))
        .collect();
    let opts = |s: &str| -> Vec<(String, String)> {
        s.split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let get = |o: &[(String, String)], k: &str| {
        o.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
    };
    let dev = args
        .iter()
        .filter(|a| a.starts_with("virtio-blk-pci,"))
        .map(|a| opts(a))
        .find(|o| get(o, "drive").as_deref() == Some("colo-disk0"))?;
    let parent = args
        .iter()
        .map(|a| opts(a))
        .find(|o| get(o, "id").as_deref() == Some("parent0"))?;
    let addr = get(&dev, "addr").unwrap_or_default();
    let (slot, function) = addr.split_once('.').unwrap_or((addr.as_str(), "0"));
    let hex = |v: &str| u32::from_str_radix(v.trim_start_matches("0x"), 16).ok();
    let bus = get(&dev, "bus").unwrap_or_default();
    Some(Disk {
        target: "vda".into(),
        bus: "virtio".into(),
        format: "qcow2".into(),
        source: PathBuf::from(get(&parent, "file.filename").unwrap_or_default()),
        alias: get(&dev, "id"),
        pci: Some(PciAddr {
            domain: 0,
            bus: bus.trim_start_matches("pci.").parse().unwrap_or(0),
            slot: hex(slot)?,
            function: hex(function)?,
        }),
    })
}

fn find<'a, 'i>(n: Node<'a, 'i>, path: &[&str]) -> Option<Node<'a, 'i>> {
    let mut cur = n;
    for p in path {
        cur = cur
            .children()
            .find(|c| c.is_element() && c.tag_name().name() == *p)?;
    }
    Some(cur)
}

fn attr_of(n: Node, child: &str, attr: &str) -> String {
    find(n, &[child])
        .and_then(|c| c.attribute(attr))
        .unwrap_or("?")
        .to_string()
}

fn pci(n: Node) -> Option<PciAddr> {
    let a = find(n, &["address"]).filter(|a| a.attribute("type") == Some("pci"))?;
    let num = |k: &str| {
        let v = a.attribute(k).unwrap_or("0");
        let v = v.trim_start_matches("0x");
        u32::from_str_radix(v, 16).ok()
    };
    Some(PciAddr {
        domain: num("domain")?,
        bus: num("bus")?,
        slot: num("slot")?,
        function: num("function")?,
    })
}

fn parse_disk(d: Node) -> Result<Disk, LayoutError> {
    let source = find(d, &["source"])
        .and_then(|s| s.attribute("file").or(s.attribute("dev")))
        .unwrap_or("");
    Ok(Disk {
        target: attr_of(d, "target", "dev"),
        bus: attr_of(d, "target", "bus"),
        format: find(d, &["driver"])
            .and_then(|x| x.attribute("type"))
            .unwrap_or("raw")
            .to_string(),
        source: PathBuf::from(source),
        alias: find(d, &["alias"])
            .and_then(|a| a.attribute("name"))
            .map(String::from),
        pci: pci(d),
    })
}

fn parse_nic(n: Node) -> Nic {
    let src = find(n, &["source"]);
    Nic {
        kind: n.attribute("type").unwrap_or("").to_string(),
        mac: attr_of(n, "mac", "address"),
        model: attr_of(n, "model", "type"),
        source: src
            .and_then(|s| {
                s.attribute("bridge")
                    .or(s.attribute("network"))
                    .or(s.attribute("dev"))
            })
            .map(String::from),
        alias: find(n, &["alias"])
            .and_then(|a| a.attribute("name"))
            .map(String::from),
        pci: pci(n),
        host_dev: find(n, &["target"])
            .and_then(|t| t.attribute("dev"))
            .map(String::from),
    }
}

fn describe_hostdev(h: Node) -> String {
    if let Some(a) = find(h, &["source", "address"]) {
        let g = |k| {
            a.attribute(k)
                .unwrap_or("?")
                .trim_start_matches("0x")
                .to_string()
        };
        if a.attribute("bus").is_some() && a.attribute("slot").is_some() {
            return format!(
                "{}:{}:{}.{}",
                g("domain"),
                g("bus"),
                g("slot"),
                g("function")
            );
        }
    }
    h.attribute("type").unwrap_or("?").to_string()
}

fn to_kib(v: &str, unit: &str) -> Result<u64, LayoutError> {
    let n: u64 = v
        .parse()
        .map_err(|_| LayoutError::Xml(format!("<memory> {v:?} is not a number")))?;
    let mul: u64 = match unit {
        "b" | "bytes" => return Ok(n / 1024),
        "KiB" | "k" | "K" => 1,
        "MiB" | "M" | "m" => 1024,
        "GiB" | "G" | "g" => 1024 * 1024,
        other => {
            return Err(LayoutError::Xml(format!(
                "<memory unit='{other}'> is not supported"
            )))
        }
    };
    // The peer's XML is parsed here too: a size that does not fit must not
    // wrap into a small one (the secondary's memory check reads it).
    n.checked_mul(mul)
        .ok_or_else(|| LayoutError::Xml(format!("<memory> {v} {unit} is too large")))
}

#[cfg(test)]
mod tests;
