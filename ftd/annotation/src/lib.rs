//! The protection annotation: one element in a libvirt domain's `<metadata>`, in
//! ftvirt's own namespace, that marks the domain for protection and carries its
//! settings.
//!
//! ```xml
//! <metadata>
//!   <ft:protection xmlns:ft="https://ftvirt.org/xmlns/ftd/1"
//!                  peer="b" checkpoint-interval="2000" auto-reprotect="yes"/>
//! </metadata>
//! ```
//!
//! libvirt keeps one element per namespace in `<metadata>` and addresses it by the
//! namespace URI ([`NAMESPACE`]) and a key, the prefix it writes ([`KEY`]). Its
//! metadata API deals in the element *without* the namespace, which it binds and
//! strips itself: `virDomainSetMetadata(VIR_DOMAIN_METADATA_ELEMENT, .., KEY,
//! NAMESPACE)` takes `<protection peer="b"/>` ([`to_element`]; one that declares the
//! prefix itself is refused, "failed to create a new XML namespace"), and
//! `virDomainGetMetadata` returns the same bare element ([`parse_element`]). In the
//! domain XML it is `<ft:protection xmlns:ft=...>` ([`to_metadata_child`], read by
//! [`from_domain_xml`], as the hook does). Elements are matched by namespace URI,
//! whatever their prefix; the version is the last part of the URI, and another
//! version is refused rather than half-understood.
//!
//! This crate is pure (an XML parser, nothing else) so that the libvirt hook can use
//! it without linking libvirt.

use roxmltree::{Document, Node};
use std::ops::RangeInclusive;

/// ftvirt's metadata namespace, version 1.
pub const NAMESPACE: &str = "https://ftvirt.org/xmlns/ftd/1";
/// The prefix [`to_metadata_child`] writes.
pub const PREFIX: &str = "ft";
/// The key of libvirt's metadata API (`virDomainSetMetadata`, `virsh metadata
/// --key`): the prefix libvirt writes for [`NAMESPACE`].
pub const KEY: &str = PREFIX;
/// The element's local name.
pub const ELEMENT: &str = "protection";
/// Allowed `checkpoint-interval`, in milliseconds.
pub const CHECKPOINT_INTERVAL_MS: RangeInclusive<u64> = 100..=60_000;

/// Every version of the namespace is this plus a version number.
const NAMESPACE_FAMILY: &str = "https://ftvirt.org/xmlns/ftd/";
const PEER: &str = "peer";
const CHECKPOINT_INTERVAL: &str = "checkpoint-interval";
const AUTO_REPROTECT: &str = "auto-reprotect";
const KNOWN: [&str; 3] = [PEER, CHECKPOINT_INTERVAL, AUTO_REPROTECT];

/// A domain's protection settings; `None` means ftd's configured default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protection {
    /// The ftd peer (host name in ftd's configuration) that holds the secondary.
    pub peer: String,
    pub checkpoint_interval_ms: Option<u64>,
    pub auto_reprotect: Option<bool>,
}

/// Why an annotation cannot be used; each message names the attribute and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// Not well-formed XML, or not a domain.
    #[error("annotation XML: {0}")]
    Xml(String),
    /// The element is not `<protection>` in ftvirt's namespace.
    #[error(
        "expected <{PREFIX}:{ELEMENT} xmlns:{PREFIX}=\"{NAMESPACE}\" peer=\"HOST\"/>, found {found}"
    )]
    NotProtection { found: String },
    /// Another version of the annotation than this ftvirt reads.
    #[error(
        "unsupported annotation version: {namespace} (this ftvirt reads {NAMESPACE}): \
         write the annotation in that namespace, or upgrade ftvirt"
    )]
    Version { namespace: String },
    /// `peer` is missing.
    #[error("<ft:protection> has no peer attribute: add peer=\"HOST\" naming one of ftd's peers")]
    MissingPeer,
    /// `peer` is empty.
    #[error(
        "<ft:protection> has an empty peer attribute: set peer=\"HOST\" to one of ftd's peers"
    )]
    EmptyPeer,
    /// An attribute this version does not know.
    #[error("<ft:protection> has an unknown attribute {name}{hint}")]
    UnknownAttribute { name: String, hint: String },
    /// `checkpoint-interval` is not a number of milliseconds in range.
    #[error(
        "<ft:protection> checkpoint-interval=\"{value}\" {why}: write milliseconds from \
         {} to {}, e.g. checkpoint-interval=\"2000\"",
        CHECKPOINT_INTERVAL_MS.start(), CHECKPOINT_INTERVAL_MS.end()
    )]
    CheckpointInterval { value: String, why: &'static str },
    /// `auto-reprotect` is not a yes/no value.
    #[error(
        "<ft:protection> auto-reprotect=\"{value}\" is not yes or no: \
         write auto-reprotect=\"yes\" or auto-reprotect=\"no\" (true and false also work)"
    )]
    AutoReprotect { value: String },
    /// The element has content; the annotation is attributes only.
    #[error("<ft:protection> has {what} inside: the annotation is an empty element, settings are attributes")]
    Content { what: String },
}

impl Protection {
    /// Protection with `peer` and ftd's defaults for everything else.
    pub fn new(peer: &str) -> Protection {
        Protection {
            peer: peer.to_string(),
            checkpoint_interval_ms: None,
            auto_reprotect: None,
        }
    }

    /// The checks [`parse_element`] makes, for settings built in code.
    pub fn validate(&self) -> Result<(), AnnotationError> {
        if self.peer.trim().is_empty() {
            return Err(AnnotationError::EmptyPeer);
        }
        if let Some(ms) = self.checkpoint_interval_ms {
            if !CHECKPOINT_INTERVAL_MS.contains(&ms) {
                return Err(AnnotationError::CheckpointInterval {
                    value: ms.to_string(),
                    why: "is out of range",
                });
            }
        }
        Ok(())
    }
}

/// Parse the annotation element alone: as `virDomainGetMetadata(..., NAMESPACE)`
/// returns it, bare (`<protection .../>`, the namespace being the one asked for),
/// or with its namespace as in a domain XML.
pub fn parse_element(xml: &str) -> Result<Protection, AnnotationError> {
    let doc = Document::parse(xml).map_err(|e| AnnotationError::Xml(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().namespace().is_none() && root.tag_name().name() == ELEMENT {
        return read(root);
    }
    match ours(root) {
        Some(Ok(())) => read(root),
        Some(Err(e)) => Err(e),
        None => Err(AnnotationError::NotProtection {
            found: describe(root),
        }),
    }
}

/// Find and parse the annotation in a whole domain XML (live or inactive); `None`
/// when the domain carries none, i.e. is not marked for protection.
pub fn from_domain_xml(xml: &str) -> Result<Option<Protection>, AnnotationError> {
    let doc = Document::parse(xml).map_err(|e| AnnotationError::Xml(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "domain" || root.tag_name().namespace().is_some() {
        return Err(AnnotationError::Xml(format!(
            "the root element is {}, not <domain>",
            describe(root)
        )));
    }
    let Some(metadata) = root
        .children()
        .find(|n| n.is_element() && n.has_tag_name("metadata"))
    else {
        return Ok(None);
    };
    // libvirt keeps the first element of each namespace; so does this.
    for el in metadata.children().filter(Node::is_element) {
        match ours(el) {
            Some(Ok(())) => return read(el).map(Some),
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    Ok(None)
}

/// The element for `virDomainSetMetadata(VIR_DOMAIN_METADATA_ELEMENT, .., key =
/// KEY, uri = NAMESPACE)` (`virsh metadata --key ft --uri NAMESPACE --set`):
/// `<protection .../>` with no namespace, which libvirt binds to [`KEY`] and
/// [`NAMESPACE`]. `virDomainGetMetadata` returns it the same way, and
/// [`parse_element`] reads it back unchanged.
pub fn to_element(p: &Protection) -> String {
    format!("<{ELEMENT}{}/>", attributes(p))
}

/// The annotation as a child of a domain XML's `<metadata>`:
/// `<ft:protection xmlns:ft="..." .../>`, to define a domain marked for
/// protection; [`from_domain_xml`] and [`parse_element`] read it back unchanged.
pub fn to_metadata_child(p: &Protection) -> String {
    format!(
        "<{PREFIX}:{ELEMENT} xmlns:{PREFIX}=\"{NAMESPACE}\"{}/>",
        attributes(p)
    )
}

/// ` peer="b" checkpoint-interval="2000" auto-reprotect="yes"`, the unset ones left out.
fn attributes(p: &Protection) -> String {
    let mut s = format!(" {PEER}=\"{}\"", escape(&p.peer));
    if let Some(ms) = p.checkpoint_interval_ms {
        s.push_str(&format!(" {CHECKPOINT_INTERVAL}=\"{ms}\""));
    }
    if let Some(b) = p.auto_reprotect {
        let v = if b { "yes" } else { "no" };
        s.push_str(&format!(" {AUTO_REPROTECT}=\"{v}\""));
    }
    s
}

/// `None`: another application's element. `Some(Ok)`: the annotation.
/// `Some(Err)`: ftvirt's namespace, but not something this version can read.
fn ours(el: Node) -> Option<Result<(), AnnotationError>> {
    let ns = el.tag_name().namespace()?;
    if ns == NAMESPACE {
        if el.tag_name().name() == ELEMENT {
            return Some(Ok(()));
        }
        return Some(Err(AnnotationError::NotProtection {
            found: describe(el),
        }));
    }
    if ns.starts_with(NAMESPACE_FAMILY) {
        return Some(Err(AnnotationError::Version {
            namespace: ns.to_string(),
        }));
    }
    None
}

fn read(el: Node) -> Result<Protection, AnnotationError> {
    if let Some(c) = el
        .children()
        .find(|c| c.is_element() || c.text().is_some_and(|t| !t.trim().is_empty()))
    {
        let what = if c.is_element() {
            format!("an element {}", describe(c))
        } else {
            "text".to_string()
        };
        return Err(AnnotationError::Content { what });
    }
    let (mut peer, mut interval, mut reprotect) = (None, None, None);
    for a in el.attributes() {
        if let Some(ns) = a.namespace() {
            let prefix = el.lookup_prefix(ns).unwrap_or("?");
            let hint = if KNOWN.contains(&a.name()) {
                format!(
                    ": attributes of the annotation take no prefix, write {}=\"...\"",
                    a.name()
                )
            } else {
                known_hint(a.name())
            };
            return Err(AnnotationError::UnknownAttribute {
                name: format!("{prefix}:{}", a.name()),
                hint,
            });
        }
        match a.name() {
            PEER => peer = Some(a.value()),
            CHECKPOINT_INTERVAL => interval = Some(checkpoint_interval(a.value())?),
            AUTO_REPROTECT => reprotect = Some(yes_no(a.value())?),
            other => {
                return Err(AnnotationError::UnknownAttribute {
                    name: other.to_string(),
                    hint: known_hint(other),
                })
            }
        }
    }
    let p = Protection {
        peer: peer.ok_or(AnnotationError::MissingPeer)?.to_string(),
        checkpoint_interval_ms: interval,
        auto_reprotect: reprotect,
    };
    p.validate()?;
    Ok(p)
}

fn checkpoint_interval(v: &str) -> Result<u64, AnnotationError> {
    let err = |why| AnnotationError::CheckpointInterval {
        value: v.to_string(),
        why,
    };
    let ms: u64 = v
        .trim()
        .parse()
        .map_err(|_| err("is not a number of milliseconds"))?;
    if !CHECKPOINT_INTERVAL_MS.contains(&ms) {
        return Err(err("is out of range"));
    }
    Ok(ms)
}

fn yes_no(v: &str) -> Result<bool, AnnotationError> {
    match v.trim() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(AnnotationError::AutoReprotect {
            value: v.to_string(),
        }),
    }
}

/// ": did you mean X? (known: ...)" for an unknown attribute name: a known name
/// within a few edits, one with a part (`interval`) within one edit or contained,
/// or `peer` for the words people use for it (`host`, `secondary`).
fn known_hint(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let score = |k: &str| {
        let whole = distance(&lower, k);
        let part = k
            .split('-')
            .filter(|p| p.len() >= 4)
            .map(|p| {
                if lower.contains(p) || (lower.len() >= 4 && p.contains(&*lower)) {
                    0
                } else {
                    distance(&lower, p)
                }
            })
            .min()
            .unwrap_or(usize::MAX);
        if whole <= 3 {
            Some(whole)
        } else if part <= 1 {
            Some(part + 1)
        } else {
            None
        }
    };
    // Words people use for the peer.
    let alias = [
        "host",
        "secondary",
        "secondary-host",
        "peer-host",
        "partner",
    ]
    .contains(&lower.as_str())
    .then_some((0, PEER));
    let near = KNOWN
        .iter()
        .filter_map(|k| score(k).map(|s| (s, *k)))
        .chain(alias)
        .min_by_key(|(s, _)| *s);
    let known = KNOWN.join(", ");
    match near {
        Some((_, k)) => format!(": did you mean {k}? (known attributes: {known})"),
        None => format!(": known attributes are {known}"),
    }
}

/// Levenshtein distance (names are a few ASCII characters long).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `<name>`, with its namespace when it has one.
fn describe(n: Node) -> String {
    match n.tag_name().namespace() {
        Some(ns) => format!("<{}> in namespace {ns}", n.tag_name().name()),
        None => format!("<{}> (no namespace)", n.tag_name().name()),
    }
}

/// An attribute value as XML reads it back unchanged: the markup characters, and
/// the white space a parser turns into spaces when written as is (attribute value
/// normalization), as character references.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
