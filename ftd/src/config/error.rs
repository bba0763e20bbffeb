//! The configuration's errors, and the rewriting of serde_yaml's messages into
//! `file:line:column: what is wrong; what to do`.

use std::fmt;
use std::path::PathBuf;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error(
        "cannot read the configuration file {}: check that it exists and is readable \
         (examples/ftd.yaml in ftvirt's sources shows every key), or give ftd another path",
        path.display()
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML or not a valid configuration.
    #[error("{origin}{}: {message}", place(at))]
    Invalid {
        /// The file (or other origin) of the text.
        origin: String,
        /// Where in it; `None` when the whole text is wrong (empty, or several
        /// YAML documents).
        at: Option<Position>,
        /// What is wrong and what to do.
        message: String,
    },
}

/// A place in the file, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// This position, or the end of `text` if it lies beyond. libyaml ends a text
    /// that has no final line break on a line of its own, one past the last; an
    /// error there ("missing key host" in a file of one comment) is at the end of
    /// the last line. Lines end as YAML says: `\n`, `\r\n`, `\r`, NEL, LS, PS.
    pub fn within(self, text: &str) -> Position {
        let mut end = Position { line: 1, column: 1 };
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\r' && chars.peek() == Some(&'\n') {
                continue;
            }
            if matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}') {
                end = Position {
                    line: end.line + 1,
                    column: 1,
                };
            } else {
                end.column += 1;
            }
        }
        if (self.line, self.column) > (end.line, end.column) {
            end
        } else {
            self
        }
    }
}

fn place(at: &Option<Position>) -> String {
    at.map(|p| format!(":{}:{}", p.line, p.column))
        .unwrap_or_default()
}

/// A peer name that is not under `peers:`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown peer {name:?}: {}; add it under peers: in {origin}",
    KnownPeers(known)
)]
pub struct UnknownPeer {
    pub name: String,
    pub known: Vec<String>,
    pub origin: String,
}

struct KnownPeers<'a>(&'a [String]);

impl fmt::Display for KnownPeers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.0 {
            [] => f.write_str("no peers are configured"),
            known => write!(f, "known peers are {}", known.join(", ")),
        }
    }
}

/// serde_yaml's error, with its position, in our words.
pub(super) fn from_yaml(origin: &str, text: &str, err: &serde_yaml::Error) -> ConfigError {
    let at = err.location().map(|l| {
        Position {
            line: l.line(),
            column: l.column(),
        }
        .within(text)
    });
    let text = strip_mark(&err.to_string());
    let (path, msg) = split_path(&text);
    ConfigError::Invalid {
        origin: origin.into(),
        at,
        message: explain(path, msg),
    }
}

/// Drop serde_yaml's " at line L column C" (we print the position in front).
fn strip_mark(text: &str) -> String {
    let mut rest = text;
    while let Some(i) = rest.find(" at line ") {
        let tail = &rest[i + " at line ".len()..];
        let digits = |s: &str| s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let n = digits(tail);
        if n > 0 {
            if let Some(col) = tail[n..].strip_prefix(" column ") {
                let m = digits(col);
                if m > 0 {
                    let end = text.len() - col.len() + m;
                    let start = text.len() - rest.len() + i;
                    return format!("{}{}", &text[..start], &text[end..]);
                }
            }
        }
        rest = tail;
    }
    text.to_owned()
}

/// serde_yaml writes `path: message` unless the error is at the top level. Our keys
/// contain no ": ", and serde's messages start with words, so the split is safe.
fn split_path(text: &str) -> (Option<&str>, &str) {
    match text.split_once(": ") {
        Some((path, msg))
            if !path.is_empty()
                && path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.[]?".contains(c)) =>
        {
            (Some(path), msg)
        }
        _ => (None, text),
    }
}

fn explain(path: Option<&str>, msg: &str) -> String {
    let section = match path {
        Some(p) => format!("in {p}"),
        None => "at the top level".into(),
    };
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        let (key, known) = quoted(rest);
        let fix = nearest(&key, &known)
            .map(|k| format!("did you mean {k:?}?"))
            .or_else(|| elsewhere(&key))
            .unwrap_or_else(|| format!("the keys there are {}", known.join(", ")));
        return format!("unknown key {key:?} {section}; {fix}");
    }
    if let Some(rest) = msg.strip_prefix("unknown variant ") {
        let (value, known) = quoted(rest);
        let of = path.unwrap_or("this key");
        let fix = nearest(&value, &known)
            .map(|k| format!("did you mean {k:?}?"))
            .unwrap_or_else(|| format!("use one of {}", known.join(", ")));
        return format!("unknown value {value:?} for {of}; {fix}");
    }
    if let Some(rest) = msg.strip_prefix("missing field ") {
        let (key, _) = quoted(rest);
        return format!(
            "missing key {key:?} {section}: {}",
            missing_hint(path, &key)
        );
    }
    if let Some(rest) = msg.strip_prefix("duplicate field ") {
        let (key, _) = quoted(rest);
        return format!("key {key:?} is written twice {section}; keep one");
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((found, expected)) = msg
            .strip_prefix(prefix)
            .and_then(|r| r.rsplit_once(", expected "))
        {
            let subject = path.unwrap_or("the file");
            return format!(
                "{subject} must be {}, not {}",
                expected_words(expected),
                found_words(found)
            );
        }
    }
    match path {
        Some(p) => format!("{p}: {msg}"),
        None => format!("not valid YAML: {msg}"),
    }
}

/// The first `quoted` name in serde's message, and the expected ones after it.
fn quoted(msg: &str) -> (String, Vec<String>) {
    let mut names = msg.split('`').skip(1).step_by(2).map(str::to_owned);
    let first = names.next().unwrap_or_default();
    (first, names.collect())
}

/// Every section and its keys, to say where a key written in the wrong place
/// belongs. A test checks this against what serde accepts.
#[rustfmt::skip]
pub(super) const SECTIONS: [(&str, &[&str]); 13] = [
    ("at the top level", &[
        "host", "peers", "peer-link", "defaults", "colo", "bus", "libvirt-uri", "state-dir",
        "run-dir", "log", "authorization", "arbiter",
    ]),
    ("under host:", &["name", "address", "port"]),
    ("in each peer under peers:", &["name", "address", "port"]),
    ("under peer-link:", &["tls"]),
    ("under tls: in peer-link:", &["ca", "cert", "key"]),
    ("under defaults:", &[
        "checkpoint-interval", "heartbeat-interval", "detection-time", "auto-reprotect",
        "compare-timeout", "sync-timeout",
    ]),
    ("under colo:", &[
        "ports", "overlay-dir", "tls", "tls-ca", "tls-cert", "tls-key", "trusted-dirs",
        "secondary-memory-percent", "secondary-memory-headroom",
    ]),
    ("under ports: in colo:", &["migration", "nbd", "mirror", "compare", "compare-in", "compare-out"]),
    ("under bus:", &["connect", "name"]),
    ("under log:", &["output", "level"]),
    ("under arbiter:", &["kind", "fence-margin", "witness"]),
    ("under witness: in arbiter:", &["endpoints", "server-name", "tls", "prefix", "timeout"]),
    ("under tls: in arbiter.witness:", &["ca", "cert", "key"]),
];

/// The known name closest to `got`, if it is close enough to be a typo.
fn nearest<'k>(got: &str, known: &'k [impl AsRef<str>]) -> Option<&'k str> {
    let limit = (got.chars().count() / 3).max(2);
    known
        .iter()
        .map(|k| (distance(got, k.as_ref()), k.as_ref()))
        .min()
        .filter(|(d, _)| *d <= limit)
        .map(|(_, k)| k)
}

/// Where a key that its section does not know does belong, if anywhere.
fn elsewhere(key: &str) -> Option<String> {
    let homes: Vec<&str> = SECTIONS
        .iter()
        .filter(|(_, keys)| keys.contains(&key))
        .map(|(home, _)| *home)
        .collect();
    if let Some((last, first)) = homes.split_last() {
        return Some(match first {
            [] => format!("it belongs {last}"),
            _ => format!("it belongs {} or {last}", first.join(", ")),
        });
    }
    SECTIONS
        .iter()
        .find_map(|(home, keys)| nearest(key, keys).map(|k| format!("did you mean {k:?} {home}?")))
}

/// Levenshtein distance.
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

fn missing_hint(path: Option<&str>, key: &str) -> &'static str {
    let in_peer = path.is_some_and(|p| p.starts_with("peers["));
    match (path, key) {
        (None, "host") => "add host: with this host's name: and its replication address:",
        (Some("host"), "name") => "add name: with this host's name, as its peers know it",
        (Some("host"), "address") => "add address: with this host's IP on the replication network",
        (_, "name") if in_peer => "every peer needs name: (its host name)",
        (_, "address") if in_peer => {
            "every peer needs address: (its IP on the replication network)"
        }
        _ => "add it",
    }
}

/// serde's "expected ..." in plain words.
fn expected_words(expected: &str) -> &str {
    match expected {
        "a boolean" => "true or false",
        "a sequence" => "a list (lines starting with \"- \")",
        "a string" => "text",
        other => other,
    }
}

/// serde's `Unexpected` in plain words.
fn found_words(found: &str) -> String {
    let inner = |p: &str| {
        found
            .strip_prefix(p)
            .map(|s| s.trim_matches('`').to_owned())
    };
    match found {
        "unit value" => "empty".into(),
        "map" => "a mapping".into(),
        "sequence" => "a list".into(),
        _ => inner("string ")
            .or_else(|| inner("integer "))
            .or_else(|| inner("floating point "))
            .or_else(|| inner("boolean "))
            .unwrap_or_else(|| found.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("checkpont-interval", "checkpoint-interval"), 1);
        assert_eq!(distance("checkpoint_interval", "checkpoint-interval"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn strip_mark_drops_only_the_position() {
        assert_eq!(
            strip_mark("defaults: bad at line 3 column 7"),
            "defaults: bad"
        );
        assert_eq!(
            strip_mark("did not find key at line 2 column 1, while parsing at line 1 column 1"),
            "did not find key, while parsing at line 1 column 1"
        );
        assert_eq!(strip_mark("no position here"), "no position here");
    }

    #[test]
    fn unknown_peer_lists_the_known_ones() {
        let e = |known: &[&str]| {
            UnknownPeer {
                name: "hostc".into(),
                known: known.iter().map(|s| s.to_string()).collect(),
                origin: "/etc/ftvirt/ftd.yaml".into(),
            }
            .to_string()
        };
        assert_eq!(
            e(&["hostb"]),
            "unknown peer \"hostc\": known peers are hostb; add it under peers: in /etc/ftvirt/ftd.yaml"
        );
        assert_eq!(
            e(&["hostb", "hostd"]),
            "unknown peer \"hostc\": known peers are hostb, hostd; add it under peers: in /etc/ftvirt/ftd.yaml"
        );
        assert_eq!(
            e(&[]),
            "unknown peer \"hostc\": no peers are configured; add it under peers: in /etc/ftvirt/ftd.yaml"
        );
    }
}
