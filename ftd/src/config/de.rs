//! `deserialize_with` helpers for single values. A value they refuse fails inside
//! serde_yaml's deserializer, so the error carries the value's line and column; the
//! `expecting` text is what the user reads after "must be".

use super::BusKind;
use serde::de::{Deserializer, Error, Unexpected, Visitor};
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A whole number between `min` and `max`.
struct Whole {
    what: &'static str,
    min: u64,
    max: u64,
}

impl Visitor<'_> for Whole {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.what)
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<u64, E> {
        if (self.min..=self.max).contains(&v) {
            Ok(v)
        } else {
            Err(E::invalid_value(Unexpected::Unsigned(v), &self))
        }
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<u64, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::invalid_value(Unexpected::Signed(v), &self)),
        }
    }
}

pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_u64(Whole {
        what: "a whole number of milliseconds",
        min: 0,
        max: u64::MAX,
    })
    .map(Duration::from_millis)
}

pub fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_u64(Whole {
        what: "a whole number of seconds",
        min: 0,
        max: u64::MAX,
    })
    .map(Duration::from_secs)
}

pub fn port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    d.deserialize_u64(Whole {
        what: "a port number from 1 to 65535",
        min: 1,
        max: u16::MAX.into(),
    })
    .map(|p| p as u16)
}

/// A string accepted or refused by `parse`; on refusal the user reads `what`.
struct Text<T> {
    what: &'static str,
    parse: fn(&str) -> Option<T>,
}

impl<T> Visitor<'_> for Text<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.what)
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<T, E> {
        (self.parse)(v).ok_or_else(|| E::invalid_value(Unexpected::Str(v), &self))
    }
}

pub(super) fn text<'de, D: Deserializer<'de>, T>(
    d: D,
    what: &'static str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, D::Error> {
    d.deserialize_str(Text { what, parse })
}

/// A host's address: an IP (names are not resolved: the replication network must
/// not depend on DNS), and not 0.0.0.0, ::, or a multicast address.
pub fn ip<'de, D: Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
    text(
        d,
        "a host's IP address such as 10.200.0.12 (names are not resolved)",
        |s| {
            s.parse::<IpAddr>()
                .ok()
                .filter(|ip| !ip.is_unspecified() && !ip.is_multicast())
        },
    )
}

/// A host name as ftd hosts call each other: letters, digits, `.`, `-`, `_`.
pub fn host_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    text(
        d,
        "a host name of letters, digits, '.', '-' and '_', starting with a letter or digit",
        |s| is_host_name(s).then(|| s.to_owned()),
    )
}

/// Letters, digits, `.`, `-`, `_`, starting with a letter or digit, 1 to 253 long.
pub fn is_host_name(s: &str) -> bool {
    (1..=253).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

pub fn abs_dir<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    text(d, "an absolute path (starting with /)", |s| {
        s.starts_with('/').then(|| PathBuf::from(s))
    })
}

/// A list of absolute directories, none of them `/` itself and none with a `.`
/// or `..` component (they bound what a peer may name, see `colo.trusted-dirs`).
pub fn plain_dirs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Dir(#[serde(deserialize_with = "plain_dir")] PathBuf);
    let v: Vec<Dir> = serde::Deserialize::deserialize(d)?;
    Ok(v.into_iter().map(|d| d.0).collect())
}

fn plain_dir<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    text(
        d,
        "an absolute directory other than / itself, without . or .. in it",
        |s| {
            let plain = s.starts_with('/')
                && !s.trim_end_matches('/').is_empty()
                && !s.split('/').any(|c| c == "." || c == "..");
            plain.then(|| PathBuf::from(s))
        },
    )
}

pub fn abs_file<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    text(d, "an absolute file path (starting with /)", |s| {
        (s.starts_with('/') && !s.ends_with('/')).then(|| PathBuf::from(s))
    })
}

pub fn libvirt_uri<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    text(d, "a libvirt connection URI such as qemu:///system", |s| {
        s.split_once(':')
            .is_some_and(|(scheme, _)| !scheme.is_empty() && !s.contains(char::is_whitespace))
            .then(|| s.to_owned())
    })
}

/// One of `names`, as its index. An unknown name fails as serde's "unknown variant"
/// (listing `names`), anything else as "must be one of ...".
pub fn choice<'de, D: Deserializer<'de>>(
    d: D,
    names: &'static [&'static str],
) -> Result<usize, D::Error> {
    struct Choice(&'static [&'static str]);

    impl Visitor<'_> for Choice {
        type Value = usize;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "one of {}", self.0.join(", "))
        }

        fn visit_str<E: Error>(self, v: &str) -> Result<usize, E> {
            self.0
                .iter()
                .position(|n| *n == v)
                .ok_or_else(|| E::unknown_variant(v, self.0))
        }
    }

    d.deserialize_str(Choice(names))
}

/// `system`, `session`, or an address that zbus, which ftd connects with, reads (a
/// transport it knows, with its keys: `unix:path=...`, `tcp:host=...,port=...`), so
/// that a mistake stops ftd here, at its line, not when it connects.
pub fn bus_kind<'de, D: Deserializer<'de>>(d: D) -> Result<BusKind, D::Error> {
    text(
        d,
        "system, session, or a D-Bus address such as unix:path=/run/ftvirt/bus",
        |s| match s {
            "system" => Some(BusKind::System),
            "session" => Some(BusKind::Session),
            _ => zbus::Address::try_from(s)
                .is_ok()
                .then(|| BusKind::Address(s.to_owned())),
        },
    )
}

/// A D-Bus well-known name (the D-Bus specification's rules).
pub fn bus_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    text(
        d,
        "a D-Bus name such as org.ftvirt.Ftd1 (two or more dot-separated parts of \
         letters, digits, '_' and '-', none starting with a digit)",
        |s| {
            let part_ok = |p: &str| {
                !p.is_empty()
                    && !p.starts_with(|c: char| c.is_ascii_digit())
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
            };
            let ok = s.len() <= 255 && s.split('.').count() >= 2 && s.split('.').all(part_ok);
            ok.then(|| s.to_owned())
        },
    )
}
