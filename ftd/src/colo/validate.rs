//! The grammars of values that come from the peer, and the check of a
//! [`SecondarySpec`] before anything is built from it.
//!
//! The peer is authenticated (mutual TLS) but not trusted: its strings reach file
//! paths (the domain name), QEMU option strings (`-chardev host=`, `-device
//! bus=,addr=`, where a comma would inject an option) and `qemu-img create`. Each
//! value must match a strict grammar, or equal what this host already knows:
//! - a domain name ([`domain_name`]): libvirt's rules and then some, so that it
//!   is one path component under `colo.overlay-dir`;
//! - the primary's address: an IP address, and the peer's configured replication
//!   address when this host knows it;
//! - the ports: one slot of this host's own `colo.ports` (both hosts of a pair
//!   configure the same bases), so they can never collide with another domain's
//!   or the peer link's;
//! - the disk's qdev fields (id, bus, addr, bootindex, write-cache), as
//!   `crate::inspect::disk_device` makes them on a sound peer;
//! - the disk's size, bounded.
//!
//! The XML in the spec is checked where the secondary's definition is built from
//! it (`super::definition`). Errors name the field, show the value (escaped,
//! shortened) and say what was expected.

use super::plan::Ports;
use super::spec::SecondarySpec;
use std::net::IpAddr;

/// Longest domain name accepted: ftd derives file names from it
/// (`<name>.ftvirt<gen>.qcow2`, 24 bytes more) that must fit in 255 bytes.
pub const MAX_NAME: usize = 200;
/// Largest disk a secondary is made for (64 TiB): `qemu-img create` with a size
/// beyond it is a peer's mistake or an attack on this host's storage.
pub const MAX_DISK_SIZE: u64 = 64 << 40;
/// Longest qdev id (QEMU accepts more; libvirt's aliases are far shorter).
const MAX_ID: usize = 64;

/// A value from the peer that does not match its grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {value} from the peer refused: {why}")]
pub struct Invalid {
    /// Which field (`domain name`, `primary_addr`, `disk.addr`, ...).
    pub field: &'static str,
    /// The value, escaped and shortened for a log line.
    pub value: String,
    /// What was expected.
    pub why: String,
}

impl Invalid {
    pub fn new(field: &'static str, value: &str, why: impl Into<String>) -> Invalid {
        Invalid {
            field,
            value: shown(value),
            why: why.into(),
        }
    }
}

/// A value for a message: Rust's escaping (no control character reaches a log
/// or a terminal), at most 80 characters of it.
pub fn shown(v: &str) -> String {
    let s: String = v.chars().take(80).collect();
    let more = if v.chars().count() > 80 { "..." } else { "" };
    format!("{s:?}{more}")
}

/// What this host knows that a spec must agree with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local {
    /// The peer's replication address from this host's configuration.
    pub peer_addr: Option<IpAddr>,
    /// This host's `colo.ports` (slot 0).
    pub port_bases: Ports,
}

/// A domain name from the peer: 1 to [`MAX_NAME`] bytes; no `/` (libvirt's own
/// rule), no `..` and not `.`, no control character (NUL, newline, escape, ...).
/// So it is one plain path component, whatever directory it is joined to.
pub fn domain_name(name: &str) -> Result<(), Invalid> {
    let bad = |why: &str| Err(Invalid::new("domain name", name, why));
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME {
        return bad(&format!("it is longer than {MAX_NAME} bytes"));
    }
    if name.contains('/') {
        return bad("it contains '/' (libvirt refuses such names)");
    }
    if name == "." || name.contains("..") {
        return bad("it is '.' or contains '..'");
    }
    if name.chars().any(char::is_control) {
        return bad("it contains a control character");
    }
    Ok(())
}

/// A qdev or netdev id: a letter, then letters, digits, `-`, `_` or `.` (QEMU's
/// `id_wellformed`), at most 64 bytes.
pub fn qemu_id(field: &'static str, v: &str) -> Result<(), Invalid> {
    let ok = v.len() <= MAX_ID
        && v.starts_with(|c: char| c.is_ascii_alphabetic())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            v,
            format!("expected a letter, then letters, digits, '-', '_' or '.' (at most {MAX_ID})"),
        ))
    }
}

/// The primary's address: a plain IP address (no name, no port, no option), and
/// the peer's configured one when this host knows it. The parsed address.
pub fn primary_addr(v: &str, local: &Local) -> Result<IpAddr, Invalid> {
    let ip: IpAddr = v
        .parse()
        .map_err(|_| Invalid::new("primary_addr", v, "expected an IP address"))?;
    match local.peer_addr {
        Some(want) if want != ip => Err(Invalid::new(
            "primary_addr",
            v,
            format!("the peer's replication address in this host's configuration is {want}"),
        )),
        _ => Ok(ip),
    }
}

/// The ports: one slot of this host's `colo.ports`.
pub fn ports(p: &Ports, local: &Local) -> Result<(), Invalid> {
    let slot = (0..Ports::SLOTS).find(|n| local.port_bases.checked_nth(*n) == Some(*p));
    match slot {
        Some(_) => Ok(()),
        None => Err(Invalid::new(
            "ports",
            &format!("{:?}", p.all()),
            format!(
                "they are no slot of this host's colo.ports (slot 0: {:?}); both hosts of a \
                 pair must configure the same colo.ports",
                local.port_bases.all()
            ),
        )),
    }
}

/// A PCI bus as `disk_device` names it: `pci.N`, N at most 255.
pub fn pci_bus(v: &str) -> Result<(), Invalid> {
    let ok = v
        .strip_prefix("pci.")
        .is_some_and(|n| decimal(n).is_some_and(|n| n <= 255));
    ok.then_some(())
        .ok_or_else(|| Invalid::new("disk.bus", v, "expected pci.N, N from 0 to 255"))
}

/// A PCI address on a bus: `0xS` or `0xS.0xF`, slot up to 0x1f, function up to 7.
pub fn pci_addr(v: &str) -> Result<(), Invalid> {
    let (slot, func) = match v.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (v, None),
    };
    let ok =
        hex(slot).is_some_and(|s| s <= 0x1f) && func.is_none_or(|f| hex(f).is_some_and(|f| f <= 7));
    ok.then_some(()).ok_or_else(|| {
        Invalid::new(
            "disk.addr",
            v,
            "expected 0xSLOT or 0xSLOT.0xFUNCTION (slot up to 0x1f, function up to 7)",
        )
    })
}

/// `0x` and one or two hex digits.
fn hex(v: &str) -> Option<u32> {
    let d = v.strip_prefix("0x")?;
    let ok = (1..=2).contains(&d.len()) && d.chars().all(|c| c.is_ascii_hexdigit());
    ok.then(|| u32::from_str_radix(d, 16).ok()).flatten()
}

/// One to three decimal digits.
fn decimal(v: &str) -> Option<u32> {
    let ok = (1..=3).contains(&v.len()) && v.chars().all(|c| c.is_ascii_digit());
    ok.then(|| v.parse().ok()).flatten()
}

/// Check everything of `spec` but its XML, for domain `name`, before anything is
/// created from it.
pub fn spec(spec: &SecondarySpec, name: &str, local: &Local) -> Result<(), Invalid> {
    domain_name(name)?;
    primary_addr(&spec.primary_addr, local)?;
    ports(&spec.ports, local)?;
    let d = &spec.disk;
    qemu_id("disk.id", &d.id)?;
    pci_bus(&d.bus)?;
    pci_addr(&d.addr)?;
    if let Some(b) = d.bootindex {
        if !(0..=9999).contains(&b) {
            return Err(Invalid::new(
                "disk.bootindex",
                &b.to_string(),
                "expected 0 to 9999",
            ));
        }
    }
    if let Some(w) = &d.write_cache {
        if w != "on" && w != "off" {
            return Err(Invalid::new("disk.write_cache", w, "expected on or off"));
        }
    }
    if spec.disk_size == 0 || spec.disk_size > MAX_DISK_SIZE {
        return Err(Invalid::new(
            "disk_size",
            &spec.disk_size.to_string(),
            format!("expected 1 byte to {MAX_DISK_SIZE} bytes (64 TiB)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
