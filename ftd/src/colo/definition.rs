//! Domain definitions built by ftd from the peer's, element by element from the
//! allow-list ([`super::allow`]), never copied: the secondary's (from the
//! primary's live XML, [`secondary`]) and the survivor's persistent one after a
//! takeover (from the primary's inactive XML, [`takeover`]).
//!
//! Every value copied is at most [`MAX_VALUE`] bytes without control
//! characters; the parse is bounded ([`super::xml`]). Never taken from the peer:
//! `<qemu:commandline>` and any other namespace, `<metadata>`, `<seclabel>`,
//! host devices, filesystems, a `lun` or second disk, a disk source, a serial's,
//! console's or channel's host end (file, socket, device), `<nvram>`, and an
//! emulator, kernel, initrd, loader or DTB outside this host's
//! `colo.trusted-dirs`. A device the list does not know is refused (leaving it
//! out would change the guest's hardware); anything else it does not know is
//! left out and reported in [`Built::dropped`].

use super::allow::{self, Rule, Special};
use super::layout::LayoutError;
use super::xml::{self, escape};
use roxmltree::Node;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// The longest attribute value or text copied (a kernel command line fits).
pub const MAX_VALUE: usize = 4096;

/// What this host decides in a definition built from the peer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFiles<'a> {
    /// Where an emulator, kernel, initrd, loader or DTB the peer names may be.
    pub trusted_dirs: &'a [PathBuf],
    /// Where a serial port or console writes.
    pub serial_log: &'a Path,
}

/// A definition, and what of the peer's was left out (`<element>` or
/// `<element attribute>`, once each) for a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub xml: String,
    pub dropped: Vec<String>,
}

#[derive(Clone, Copy)]
enum Disk<'a> {
    /// The secondary: the replicated disk is left out (ftd adds its own).
    Replicated,
    /// The survivor: the replicated disk on this host's image.
    At(&'a Path),
}

/// The secondary's definition from the primary's live XML of domain `name`,
/// without the replicated disk (the caller adds its `<qemu:commandline>`).
pub fn secondary(live: &str, name: &str, local: &LocalFiles) -> Result<Built, LayoutError> {
    build(live, name, local, Disk::Replicated)
}

/// The survivor's persistent definition after a takeover: the primary's inactive
/// XML of `name`, its disk on this host's `disk`.
pub fn takeover(
    inactive: &str,
    name: &str,
    disk: &Path,
    local: &LocalFiles,
) -> Result<Built, LayoutError> {
    build(inactive, name, local, Disk::At(disk))
}

fn build(xml_text: &str, name: &str, local: &LocalFiles, disk: Disk) -> Result<Built, LayoutError> {
    let doc = xml::parse(xml_text).map_err(|e| LayoutError::Xml(e.to_string()))?;
    let root = doc.root_element();
    if !root.has_tag_name("domain") {
        return Err(LayoutError::Xml("the root element is not <domain>".into()));
    }
    let named = root
        .children()
        .find(|c| c.has_tag_name("name"))
        .and_then(|n| n.text())
        .map(str::trim);
    if named != Some(name) {
        return Err(LayoutError::Xml(format!(
            "the definition names domain {}, not {}",
            super::validate::shown(named.unwrap_or("")),
            super::validate::shown(name)
        )));
    }
    let mut w = Walker {
        out: String::new(),
        dropped: Vec::new(),
        local,
        disk,
        disks: 0,
        firmware: root
            .children()
            .find(|c| c.has_tag_name("os"))
            .is_some_and(|os| os.attribute("firmware").is_some()),
    };
    w.element(root, "domain", 0)?;
    // A secondary's source may be a survivor of a takeover, whose disk is in
    // its <qemu:commandline> (the layout check counted it).
    let want = match disk {
        Disk::Replicated => 0..=1,
        Disk::At(_) => 1..=1,
    };
    if !want.contains(&w.disks) {
        return Err(LayoutError::Unsupported {
            device: format!("domain {name}"),
            why: format!("it has {} disks; COLO replicates exactly one", w.disks),
        });
    }
    Ok(Built {
        xml: w.out,
        dropped: w.dropped,
    })
}

struct Walker<'a> {
    out: String,
    dropped: Vec<String>,
    local: &'a LocalFiles<'a>,
    disk: Disk<'a>,
    /// Replicated disks met.
    disks: usize,
    /// `<os firmware=...>`: libvirt picks this host's firmware itself.
    firmware: bool,
}

fn unsupported(device: String, why: impl Into<String>) -> LayoutError {
    LayoutError::Unsupported {
        device,
        why: why.into(),
    }
}

/// A value from the peer that may be copied.
fn value(at: &str, v: &str) -> Result<(), LayoutError> {
    if v.len() > MAX_VALUE || v.chars().any(char::is_control) {
        return Err(unsupported(
            at.to_string(),
            format!(
                "value {} is over {MAX_VALUE} bytes or has a control character",
                super::validate::shown(v)
            ),
        ));
    }
    Ok(())
}

impl Walker<'_> {
    fn drop(&mut self, what: String) {
        if !self.dropped.contains(&what) {
            self.dropped.push(what);
        }
    }

    fn element(&mut self, n: Node, path: &str, depth: usize) -> Result<(), LayoutError> {
        let name = n.tag_name().name();
        if n.tag_name().namespace().is_some() {
            // <qemu:commandline> and any other namespace: never the peer's.
            let p = path.rsplit_once('/').map_or("", |(p, _)| p);
            self.drop(format!(
                "<{p}/{}:{name}>",
                n.lookup_prefix(n.tag_name().namespace().unwrap_or(""))
                    .unwrap_or("?")
            ));
            return Ok(());
        }
        let kind = n.attribute("type").unwrap_or("");
        if path == "domain/devices/interface" && !matches!(kind, "bridge" | "network" | "ethernet")
        {
            return Err(unsupported(
                format!("interface of type {}", super::validate::shown(kind)),
                "only bridge, network and ethernet interfaces are built on the secondary \
                 (a host NIC or a passthrough function stays on its host)",
            ));
        }
        match allow::rule(path) {
            Some(Rule::Copy { attrs, text }) => self.copy(n, path, depth, attrs, &[], text),
            Some(Rule::Special(s)) => self.special(s, n, path, depth),
            None if path.matches('/').count() == 2 && path.starts_with("domain/devices/") => {
                Err(unsupported(
                    format!("device <{name}>"),
                    "not among the devices ftd builds a secondary with (a host device, \
                     filesystem, TPM, shared memory and the like stay on their host)",
                ))
            }
            None => {
                self.drop(format!("<{path}>"));
                Ok(())
            }
        }
    }

    /// Copy `n` with the allowed attributes (`set` replaces or adds some), its
    /// allowed children and, if `text`, its text.
    fn copy(
        &mut self,
        n: Node,
        path: &str,
        depth: usize,
        attrs: &[&str],
        set: &[(&str, &str)],
        text: bool,
    ) -> Result<(), LayoutError> {
        let name = n.tag_name().name();
        let indent = "  ".repeat(depth);
        let _ = write!(self.out, "{indent}<{name}");
        for (k, v) in set {
            let _ = write!(self.out, " {k}='{}'", escape(v));
        }
        for a in n.attributes() {
            if set.iter().any(|(k, _)| *k == a.name()) {
                continue;
            }
            if a.namespace().is_some() || !attrs.contains(&a.name()) {
                self.drop(format!("<{path} {}>", a.name()));
                continue;
            }
            value(&format!("<{path} {}>", a.name()), a.value())?;
            let _ = write!(self.out, " {}='{}'", a.name(), escape(a.value()));
        }
        let kids: Vec<Node> = n.children().filter(Node::is_element).collect();
        let body = if text {
            n.text().map(str::trim).unwrap_or("")
        } else {
            ""
        };
        if kids.is_empty() && body.is_empty() {
            self.out.push_str("/>\n");
            return Ok(());
        }
        if kids.is_empty() {
            value(&format!("<{path}>"), body)?;
            let _ = writeln!(self.out, ">{}</{name}>", escape(body));
            return Ok(());
        }
        self.out.push_str(">\n");
        let open = self.out.len();
        for k in kids {
            // Only the host ends the special builders write themselves are skipped.
            if k.has_tag_name("source") && matches!(name, "serial" | "console" | "channel") {
                continue;
            }
            let p = format!("{path}/{}", k.tag_name().name());
            self.element(k, &p, depth + 1)?;
        }
        if self.out.len() == open {
            // No child was kept.
            self.out.truncate(open - 2);
            self.out.push_str("/>\n");
            return Ok(());
        }
        let _ = writeln!(self.out, "{indent}</{name}>");
        Ok(())
    }

    fn special(
        &mut self,
        s: Special,
        n: Node,
        path: &str,
        depth: usize,
    ) -> Result<(), LayoutError> {
        let attr = |k: &str| n.attribute(k).unwrap_or("");
        let indent = "  ".repeat(depth);
        match s {
            Special::Emulator => {
                let p = self.trusted(n, "emulator")?;
                let file = p.file_name().and_then(|f| f.to_str()).unwrap_or("");
                if !(file.starts_with("qemu-system-") || file == "qemu-kvm") {
                    return Err(unsupported(
                        format!("emulator {}", p.display()),
                        "expected a qemu-system-* or qemu-kvm program",
                    ));
                }
                let _ = writeln!(
                    self.out,
                    "{indent}<emulator>{}</emulator>",
                    escape(&p.display().to_string())
                );
                Ok(())
            }
            Special::BootFile if n.has_tag_name("loader") && self.firmware => {
                // libvirt picks this host's firmware for <os firmware=...>.
                self.drop(format!("<{path}>"));
                Ok(())
            }
            Special::BootFile => {
                let what = n.tag_name().name();
                let p = self.trusted(n, what)?;
                let _ = write!(self.out, "{indent}<{what}");
                if what == "loader" {
                    for k in ["readonly", "type", "secure"] {
                        if let Some(v) = n.attribute(k) {
                            value(path, v)?;
                            let _ = write!(self.out, " {k}='{}'", escape(v));
                        }
                    }
                }
                let _ = writeln!(self.out, ">{}</{what}>", escape(&p.display().to_string()));
                Ok(())
            }
            Special::Disk => self.disk(n, path, depth),
            Special::Serial => {
                let kind = attr("type");
                if matches!(kind, "pty" | "null") {
                    return self.copy(n, path, depth, &["type"], &[], false);
                }
                let log = self.local.serial_log.display().to_string();
                let name = n.tag_name().name();
                let _ = writeln!(self.out, "{indent}<{name} type='file'>");
                let _ = writeln!(self.out, "{indent}  <source path='{}'/>", escape(&log));
                for k in n
                    .children()
                    .filter(|k| k.is_element() && !k.has_tag_name("source"))
                {
                    let p = format!("{path}/{}", k.tag_name().name());
                    self.element(k, &p, depth + 1)?;
                }
                let _ = writeln!(self.out, "{indent}</{name}>");
                Ok(())
            }
            Special::Channel => {
                let target = n.children().find(|c| c.has_tag_name("target"));
                if target.and_then(|t| t.attribute("type")) != Some("virtio") {
                    return Err(unsupported(
                        "channel".into(),
                        "only virtio channels are built on the secondary (a guestfwd channel's host end is the peer's)",
                    ));
                }
                if matches!(attr("type"), "pty" | "spicevmc" | "qemu-vdagent") {
                    return self.copy(n, path, depth, &["type"], &[], false);
                }
                // A unix socket libvirt places in its own directory.
                let _ = writeln!(self.out, "{indent}<channel type='unix'>");
                let _ = writeln!(self.out, "{indent}  <source mode='bind'/>");
                for k in n
                    .children()
                    .filter(|k| k.is_element() && !k.has_tag_name("source"))
                {
                    let p = format!("{path}/{}", k.tag_name().name());
                    self.element(k, &p, depth + 1)?;
                }
                let _ = writeln!(self.out, "{indent}</channel>");
                Ok(())
            }
            Special::Graphics => {
                let kind = attr("type");
                if !matches!(kind, "vnc" | "spice") {
                    self.drop(format!("<{path} type='{}'>", super::validate::shown(kind)));
                    return Ok(());
                }
                let _ = writeln!(
                    self.out,
                    "{indent}<graphics type='{kind}' autoport='yes' listen='127.0.0.1'>"
                );
                let _ = writeln!(
                    self.out,
                    "{indent}  <listen type='address' address='127.0.0.1'/>"
                );
                let _ = writeln!(self.out, "{indent}</graphics>");
                Ok(())
            }
            Special::RngBackend => {
                let dev = n.text().map(str::trim).unwrap_or("");
                match (attr("model"), dev) {
                    ("builtin", _) => {
                        let _ = writeln!(self.out, "{indent}<backend model='builtin'/>");
                    }
                    ("random", "/dev/urandom" | "/dev/random" | "/dev/hwrng") => {
                        let _ =
                            writeln!(self.out, "{indent}<backend model='random'>{dev}</backend>");
                    }
                    (m, d) => return Err(unsupported(
                        format!(
                            "rng backend {} {}",
                            super::validate::shown(m),
                            super::validate::shown(d)
                        ),
                        "expected builtin, or random with /dev/urandom, /dev/random or /dev/hwrng",
                    )),
                }
                Ok(())
            }
            Special::Audio => {
                let kind = if attr("type") == "spice" {
                    "spice"
                } else {
                    "none"
                };
                let id = attr("id");
                if !id.is_empty() && !id.chars().all(|c| c.is_ascii_digit()) || id.len() > 4 {
                    return Err(unsupported(
                        format!("audio id {}", super::validate::shown(id)),
                        "expected a number",
                    ));
                }
                match id {
                    "" => writeln!(self.out, "{indent}<audio type='{kind}'/>"),
                    id => writeln!(self.out, "{indent}<audio id='{id}' type='{kind}'/>"),
                }
                .ok();
                Ok(())
            }
        }
    }
}

mod disk;

#[cfg(test)]
mod tests;
