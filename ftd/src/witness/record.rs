//! The copy of record of one protected domain, as the witness stores it: its JSON,
//! its checks and where it lives (the key under the configured prefix).
//!
//! ```json
//! {"domain":"web1","holder":"hosta","partner":"hostb","epoch":7,
//!  "disk":"/var/lib/libvirt/images/web1.qcow2","running":true}
//! ```
//!
//! - `domain`: the libvirt domain's name; also the last part of the key, and a value
//!   stored under another domain's key is refused.
//! - `holder`: the host (ftd's `host.name`) that holds the domain: it runs the
//!   serving copy, or would run it when `running` is false.
//! - `partner`: the host holding the COLO secondary the holder set up (`null`: none).
//!   Only that host may take the record over, and only from this very version: when
//!   the holder goes live alone it swaps the partner out, which makes the partner's
//!   claim lose (see `claim.rs`).
//! - `epoch`: 1 for the first record, +1 on every change (1 to 2^53 - 1, so that
//!   tools that read JSON numbers as doubles, such as `jq`, read it exactly).
//! - `disk`: the path, on the holder, of the disk that is the copy of record.
//! - `running`: whether a copy is meant to run at all; false after a clean shutdown
//!   or a disable, so that a start elsewhere may take the record.
//!
//! A value read from the store is untrusted: at most [`MAX_RECORD_BYTES`], UTF-8
//! JSON with exactly these keys (an unknown or repeated key is refused), and every
//! field checked as [`Record::check`] does before anything is written.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The largest value a record may have in the store.
pub const MAX_RECORD_BYTES: usize = 4096;

/// The largest epoch: 2^53 - 1, the largest integer a double holds exactly.
pub const MAX_EPOCH: u64 = (1 << 53) - 1;

/// The default of `arbiter.witness.prefix`.
pub const DEFAULT_PREFIX: &str = "/ftvirt/v1";

/// The longest path accepted for `disk`.
const MAX_DISK_BYTES: usize = 1024;

/// The longest domain name accepted (libvirt's names are shorter in practice).
const MAX_DOMAIN_BYTES: usize = 200;

/// Which host holds a protected domain, at which epoch, with which disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub domain: String,
    pub holder: String,
    #[serde(deserialize_with = "present")]
    pub partner: Option<String>,
    pub epoch: u64,
    pub disk: PathBuf,
    pub running: bool,
}

/// What is wrong with a record (one read from the store, or one about to be written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("the value is {len} bytes; a record has at most {MAX_RECORD_BYTES}")]
    TooLarge { len: usize },
    #[error("the value is not a record: {0}")]
    Json(String),
    #[error(
        "domain {0:?} is not a domain name (1 to {MAX_DOMAIN_BYTES} bytes, no '/', no \
         control characters, not '.' or '..')"
    )]
    BadDomain(String),
    #[error(
        "holder {0:?} is not a host name (letters, digits, '.', '-' and '_', starting \
         with a letter or digit)"
    )]
    BadHolder(String),
    #[error(
        "partner {0:?} is not a host name other than the holder's (letters, digits, '.', \
         '-' and '_')"
    )]
    BadPartner(String),
    #[error("epoch {0} is out of range: 1 to {MAX_EPOCH}")]
    BadEpoch(u64),
    #[error(
        "disk {0:?} is not a plain absolute path (starting with /, no '.' or '..' parts, \
         at most {MAX_DISK_BYTES} bytes, no control characters)"
    )]
    BadDisk(PathBuf),
    #[error("the record names domain {found:?} but is stored as {key:?}'s")]
    WrongDomain { key: String, found: String },
}

impl Record {
    /// The first record of `domain`: epoch 1.
    pub fn first(
        domain: &str,
        holder: &str,
        disk: impl Into<PathBuf>,
        running: bool,
    ) -> Result<Record, RecordError> {
        let r = Record {
            domain: domain.into(),
            holder: holder.into(),
            partner: None,
            epoch: 1,
            disk: disk.into(),
            running,
        };
        r.check()?;
        Ok(r)
    }

    /// The record that follows this one (epoch + 1) with the given contents and no
    /// partner. Its fields are checked when it is swapped in.
    pub fn next(&self, holder: &str, disk: impl Into<PathBuf>, running: bool) -> Record {
        Record {
            domain: self.domain.clone(),
            holder: holder.into(),
            partner: None,
            epoch: self.epoch.saturating_add(1),
            disk: disk.into(),
            running,
        }
    }

    /// The same record naming `partner` as the host of its COLO secondary.
    pub fn with_partner(mut self, partner: Option<&str>) -> Record {
        self.partner = partner.map(String::from);
        self
    }

    /// Every field as the store may hold it.
    pub fn check(&self) -> Result<(), RecordError> {
        if !is_domain_name(&self.domain) {
            return Err(RecordError::BadDomain(self.domain.clone()));
        }
        if !crate::config::is_host_name(&self.holder) {
            return Err(RecordError::BadHolder(self.holder.clone()));
        }
        if let Some(p) = &self.partner {
            if !crate::config::is_host_name(p) || *p == self.holder {
                return Err(RecordError::BadPartner(p.clone()));
            }
        }
        if !(1..=MAX_EPOCH).contains(&self.epoch) {
            return Err(RecordError::BadEpoch(self.epoch));
        }
        if !is_plain_abs_path(&self.disk) {
            return Err(RecordError::BadDisk(self.disk.clone()));
        }
        Ok(())
    }

    /// The value stored in the witness.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a record always serializes")
    }

    /// Read `domain`'s record from the value stored under its key.
    pub fn parse(domain: &str, value: &[u8]) -> Result<Record, RecordError> {
        if value.len() > MAX_RECORD_BYTES {
            return Err(RecordError::TooLarge { len: value.len() });
        }
        let r: Record =
            serde_json::from_slice(value).map_err(|e| RecordError::Json(e.to_string()))?;
        r.check()?;
        if r.domain != domain {
            return Err(RecordError::WrongDomain {
                key: domain.into(),
                found: r.domain,
            });
        }
        Ok(r)
    }
}

/// An optional field that must be present (as `null` when empty): serde would
/// take a missing `Option` for `None`, and a record has exactly its keys.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// A libvirt domain name as a key part: 1 to 200 bytes, no `/` (libvirt refuses it
/// too), no control characters, not `.` or `..`.
pub fn is_domain_name(s: &str) -> bool {
    (1..=MAX_DOMAIN_BYTES).contains(&s.len())
        && !s.contains('/')
        && !s.chars().any(char::is_control)
        && s != "."
        && s != ".."
}

/// Absolute, every part a plain name (no `.`, `..`, empty part), short, printable.
fn is_plain_abs_path(p: &Path) -> bool {
    let Some(s) = p.to_str() else {
        return false;
    };
    s.starts_with('/')
        && s.len() <= MAX_DISK_BYTES
        && !s.chars().any(char::is_control)
        && s[1..]
            .split('/')
            .all(|part| !matches!(part, "" | "." | ".."))
}

/// Where records live: `<prefix>/domains/<domain>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (see [`is_prefix`]).
    pub fn new(prefix: &str) -> Option<Keys> {
        is_prefix(prefix).then(|| Keys {
            prefix: prefix.into(),
        })
    }

    /// The key of `domain`'s record.
    pub fn domain(&self, domain: &str) -> Result<String, RecordError> {
        if !is_domain_name(domain) {
            return Err(RecordError::BadDomain(domain.into()));
        }
        Ok(format!("{}/domains/{domain}", self.prefix))
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Default for Keys {
    fn default() -> Keys {
        Keys::new(DEFAULT_PREFIX).expect("the default prefix is valid")
    }
}

/// A key prefix: starts with `/`, does not end with one, no empty part, at most 200
/// bytes of printable ASCII without spaces.
pub fn is_prefix(s: &str) -> bool {
    s.len() >= 2
        && s.len() <= 200
        && s.starts_with('/')
        && !s.ends_with('/')
        && !s.contains("//")
        && s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web1() -> Record {
        Record::first("web1", "hosta", "/var/lib/libvirt/images/web1.qcow2", true).unwrap()
    }

    #[test]
    fn the_json_is_the_documented_one_and_reads_back() {
        let r = web1();
        let json = String::from_utf8(r.to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"domain":"web1","holder":"hosta","partner":null,"epoch":1,"disk":"/var/lib/libvirt/images/web1.qcow2","running":true}"#
        );
        assert_eq!(Record::parse("web1", json.as_bytes()).unwrap(), r);
    }

    #[test]
    fn a_partner_is_named_and_dropped_by_next() {
        let r = web1().with_partner(Some("hostb"));
        assert_eq!(r.check(), Ok(()));
        let json = String::from_utf8(r.to_json()).unwrap();
        assert!(json.contains(r#""partner":"hostb""#), "{json}");
        assert_eq!(Record::parse("web1", json.as_bytes()).unwrap(), r);
        assert_eq!(r.next("hosta", "/d", true).partner, None);
        let missing = r#"{"domain":"web1","holder":"hosta","epoch":3,"disk":"/d","running":true}"#;
        match Record::parse("web1", missing.as_bytes()) {
            Err(RecordError::Json(e)) => assert!(e.contains("missing field `partner`"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn next_adds_one_to_the_epoch_and_keeps_the_domain() {
        let r = web1().next("hostb", "/var/lib/ftvirt/web1/disk.qcow2", true);
        assert_eq!((r.epoch, r.holder.as_str()), (2, "hostb"));
        assert_eq!(r.domain, "web1");
        let stopped = r.next("hostb", r.disk.clone(), false);
        assert_eq!((stopped.epoch, stopped.running), (3, false));
        let last = Record {
            epoch: MAX_EPOCH,
            ..web1()
        };
        assert_eq!(
            last.next("hosta", "/d", true).check(),
            Err(RecordError::BadEpoch(MAX_EPOCH + 1))
        );
    }

    #[test]
    fn every_field_is_checked() {
        let bad = |f: fn(&mut Record)| {
            let mut r = web1();
            f(&mut r);
            r.check().unwrap_err()
        };
        assert!(matches!(
            bad(|r| r.domain = "a/b".into()),
            RecordError::BadDomain(_)
        ));
        assert!(matches!(
            bad(|r| r.domain = "..".into()),
            RecordError::BadDomain(_)
        ));
        assert!(matches!(
            bad(|r| r.domain = String::new()),
            RecordError::BadDomain(_)
        ));
        assert!(matches!(
            bad(|r| r.domain = "a\nb".into()),
            RecordError::BadDomain(_)
        ));
        assert!(matches!(
            bad(|r| r.domain = "x".repeat(201)),
            RecordError::BadDomain(_)
        ));
        assert!(matches!(
            bad(|r| r.holder = "-a".into()),
            RecordError::BadHolder(_)
        ));
        assert!(matches!(
            bad(|r| r.holder = "host a".into()),
            RecordError::BadHolder(_)
        ));
        assert!(matches!(bad(|r| r.epoch = 0), RecordError::BadEpoch(0)));
        assert!(matches!(
            bad(|r| r.partner = Some("hosta".into())),
            RecordError::BadPartner(_)
        ));
        assert!(matches!(
            bad(|r| r.partner = Some("b/../c".into())),
            RecordError::BadPartner(_)
        ));
        for disk in [
            "",
            "relative.qcow2",
            "/",
            "/a/../etc/shadow",
            "/a/./b",
            "/a//b",
            "/a/b/",
            "/a\u{7}b",
        ] {
            let mut r = web1();
            r.disk = disk.into();
            assert!(matches!(r.check(), Err(RecordError::BadDisk(_))), "{disk}");
        }
        let mut r = web1();
        r.disk = format!("/{}", "d".repeat(MAX_DISK_BYTES)).into();
        assert!(matches!(r.check(), Err(RecordError::BadDisk(_))));
        // Names libvirt allows beyond host names: spaces, '+', unicode.
        assert!(Record::first("web 1+é", "hosta", "/d", false).is_ok());
    }

    #[test]
    fn a_stored_value_is_untrusted() {
        let parse = |s: &str| Record::parse("web1", s.as_bytes());
        let ok = r#"{"domain":"web1","holder":"hosta","partner":null,"epoch":3,"disk":"/d","running":false}"#;
        assert_eq!(parse(ok).unwrap().epoch, 3);
        let cases = [
            ("", "EOF"),
            ("not json", "expected"),
            ("null", "invalid type"),
            (
                r#"{"domain":"web1","holder":"hosta","partner":null,"epoch":3,"disk":"/d"}"#,
                "missing field `running`",
            ),
            (
                r#"{"domain":"web1","holder":"hosta","partner":null,"epoch":3,"disk":"/d","running":false,"owner":"x"}"#,
                "unknown field `owner`",
            ),
            (
                r#"{"domain":"web1","holder":"hosta","partner":null,"epoch":3,"epoch":4,"disk":"/d","running":false}"#,
                "duplicate field `epoch`",
            ),
            (
                r#"{"domain":"web1","holder":"hosta","partner":null,"epoch":-1,"disk":"/d","running":false}"#,
                "invalid value",
            ),
            (
                r#"{"domain":"web1","holder":"hosta","partner":null,"epoch":1.5,"disk":"/d","running":false}"#,
                "invalid type",
            ),
            (
                r#"{"domain":"web1","holder":"hosta","partner":null,"epoch":"3","disk":"/d","running":false}"#,
                "invalid type",
            ),
            (
                r#"{"domain":"web1","holder":"hosta","partner":null,"epoch":3,"disk":"/d","running":"yes"}"#,
                "invalid type",
            ),
            (
                r#"{"domain":"web1","holder":"hosta","partner":null,"epoch":3,"disk":"/d","running":false} x"#,
                "trailing",
            ),
        ];
        for (text, want) in cases {
            match parse(text) {
                Err(RecordError::Json(e)) => assert!(e.contains(want), "{text}: {e}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert_eq!(
            parse(
                r#"{"domain":"web2","holder":"hosta","partner":null,"epoch":3,"disk":"/d","running":false}"#
            ),
            Err(RecordError::WrongDomain {
                key: "web1".into(),
                found: "web2".into()
            })
        );
        assert_eq!(
            parse(
                r#"{"domain":"web1","holder":"../x","partner":null,"epoch":3,"disk":"/d","running":false}"#
            ),
            Err(RecordError::BadHolder("../x".into()))
        );
        assert_eq!(
            parse(
                r#"{"domain":"web1","holder":"hosta","partner":null,"epoch":0,"disk":"/d","running":false}"#
            ),
            Err(RecordError::BadEpoch(0))
        );
        let huge = format!(
            r#"{{"domain":"web1","holder":"hosta","partner":null,"epoch":3,"disk":"/{}","running":false}}"#,
            "d".repeat(MAX_RECORD_BYTES)
        );
        assert!(matches!(parse(&huge), Err(RecordError::TooLarge { .. })));
        assert!(matches!(
            Record::parse("web1", &[0xff, 0xfe]),
            Err(RecordError::Json(_))
        ));
    }

    #[test]
    fn keys_live_under_the_prefix() {
        let k = Keys::default();
        assert_eq!(k.domain("web1").unwrap(), "/ftvirt/v1/domains/web1");
        assert_eq!(
            Keys::new("/lab/ftvirt").unwrap().domain("web 1").unwrap(),
            "/lab/ftvirt/domains/web 1"
        );
        assert!(matches!(k.domain("a/b"), Err(RecordError::BadDomain(_))));
        for bad in ["", "/", "ftvirt", "/ftvirt/", "/a//b", "/a b", "/é"] {
            assert!(Keys::new(bad).is_none(), "{bad:?}");
        }
    }
}
