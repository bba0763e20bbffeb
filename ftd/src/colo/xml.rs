//! Bounded XML parsing and escaping for domain definitions, which may come from
//! the peer: at most [`MAX_BYTES`] of text, [`MAX_NODES`] nodes and
//! [`MAX_DEPTH`] levels of elements, no DTD (roxmltree's default). A libvirt
//! domain is a few hundred nodes, a dozen levels deep.
//!
//! roxmltree's tokenizer recurses once per level of elements (0.20:
//! `parse_element` -> `parse_content`), so a deep document overflows the stack
//! inside the parser, before any limit of its own applies. The depth is
//! therefore measured first by [`depth_within`], a scan of the text that
//! recurses nowhere; whatever reads the tree afterwards may recurse.

use roxmltree::{Document, ParsingOptions};

/// The largest definition accepted (the peer link's frames are at most 1 MiB).
pub const MAX_BYTES: usize = 512 * 1024;
/// The most nodes (elements, attributes' owners, text) in one definition.
pub const MAX_NODES: u32 = 20_000;
/// The deepest nesting of elements.
pub const MAX_DEPTH: usize = 64;

/// Why a definition was not parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("the definition is {0} bytes, over the {MAX_BYTES}-byte limit")]
    TooBig(usize),
    #[error("the definition nests elements deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("{0}")]
    Parse(String),
}

/// Parse `xml` within the limits.
pub fn parse(xml: &str) -> Result<Document<'_>, XmlError> {
    parse_within(xml, MAX_BYTES, MAX_NODES)
}

fn parse_within(xml: &str, max_bytes: usize, nodes_limit: u32) -> Result<Document<'_>, XmlError> {
    if xml.len() > max_bytes {
        return Err(XmlError::TooBig(xml.len()));
    }
    if !depth_within(xml, MAX_DEPTH) {
        return Err(XmlError::TooDeep);
    }
    let opt = ParsingOptions {
        allow_dtd: false,
        nodes_limit,
    };
    let doc = Document::parse_with_options(xml, opt).map_err(|e| XmlError::Parse(e.to_string()))?;
    Ok(doc)
}

/// Do elements nest at most `max` deep in `xml`? Counts start tags that are
/// not self-closing against end tags, skipping comments, CDATA, processing
/// instructions, declarations and quoted attribute values; exact for
/// well-formed text, and never below the depth a parser would reach on a
/// malformed one (text and values cannot hold a `<`).
fn depth_within(xml: &str, max: usize) -> bool {
    let b = xml.as_bytes();
    let skip_to = |from: usize, end: &[u8]| {
        b[from..]
            .windows(end.len())
            .position(|w| w == end)
            .map_or(b.len(), |p| from + p + end.len())
    };
    let (mut i, mut depth) = (0, 0usize);
    while let Some(p) = b[i..].iter().position(|c| *c == b'<') {
        i += p;
        let rest = &b[i..];
        if rest.starts_with(b"<!--") {
            i = skip_to(i + 4, b"-->");
        } else if rest.starts_with(b"<![CDATA[") {
            i = skip_to(i + 9, b"]]>");
        } else if rest.starts_with(b"<?") {
            i = skip_to(i + 2, b"?>");
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            i += 2;
        } else {
            // A start tag (or <!DOCTYPE ...>): to its '>' outside quotes.
            let mut quote = None;
            let mut j = i + 1;
            while j < b.len() {
                match (quote, b[j]) {
                    (None, q @ (b'"' | b'\'')) => quote = Some(q),
                    (Some(q), c) if c == q => quote = None,
                    (None, b'>') => break,
                    _ => {}
                }
                j += 1;
            }
            let empty = j > i + 1 && b[j - 1] == b'/';
            if !empty && !rest.starts_with(b"<!") {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            i = j;
        }
    }
    true
}

/// Escape a value for an attribute in single or double quotes, or for text.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hundred_thousand_levels_are_an_error_not_a_stack_overflow() {
        let n = 100_000;
        let deep = format!("{}{}", "<a>".repeat(n), "</a>".repeat(n));
        // Over the byte limit, ...
        assert_eq!(parse(&deep).unwrap_err(), XmlError::TooBig(7 * n));
        // ... and, were it not, over the node limit, ...
        let open = "<a>".repeat(n);
        assert_eq!(parse(&open).unwrap_err(), XmlError::TooDeep);
        // ... and, were it within both, too deep (before roxmltree, which
        // recurses per level, sees it).
        assert_eq!(
            parse_within(&deep, usize::MAX, u32::MAX).unwrap_err(),
            XmlError::TooDeep
        );
        let d = MAX_DEPTH + 1;
        let deep = format!("<domain>{}{}</domain>", "<a>".repeat(d), "</a>".repeat(d));
        assert_eq!(parse(&deep).unwrap_err(), XmlError::TooDeep);
        let ok = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        parse(&ok).unwrap();
    }

    #[test]
    fn the_depth_scan_skips_what_holds_no_element() {
        let x = "<a><!-- <b><c> --><![CDATA[<d><e>]]><?p <f>?><g x='>' y=\"/>\"/><i/></a>";
        assert!(depth_within(x, 1));
        assert!(!depth_within("<a><b></b></a>", 1));
        assert!(depth_within("<a><b></b><c></c></a>", 2));
        parse(x).unwrap();
    }

    #[test]
    fn size_nodes_and_dtd_are_bounded() {
        let big = format!("<domain>{}</domain>", " ".repeat(MAX_BYTES));
        assert!(matches!(parse(&big), Err(XmlError::TooBig(_))));
        let many = format!("<d>{}</d>", "<a/>".repeat(MAX_NODES as usize));
        assert!(matches!(parse(&many), Err(XmlError::Parse(_))));
        let dtd = "<!DOCTYPE d [<!ENTITY x 'y'>]><d>&x;</d>";
        assert!(matches!(parse(dtd), Err(XmlError::Parse(_))));
    }

    #[test]
    fn escaping_covers_both_quotes() {
        assert_eq!(escape("a'b\"c<&>"), "a&apos;b&quot;c&lt;&amp;&gt;");
    }
}
