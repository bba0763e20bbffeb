//! Find the line and column of a key path (`defaults.detection-time`,
//! `peers[1].name`) in YAML text, for errors found after deserializing.
//!
//! serde_yaml 0.9 reports positions only in errors, so the probe makes one: it
//! deserializes the text again, walks the path (skipping every other node with
//! `IgnoredAny`), and fails on purpose when it reaches the node. serde_yaml stamps
//! an error with the position of the node being deserialized when it is raised, so
//! the error's [`serde_yaml::Error::location`] is the node's position. If the path
//! is not in the text (a key left to its default) the probe fails at the nearest
//! enclosing node instead, and says so.

use super::Position;
use serde::de::{DeserializeSeed, Deserializer, Error, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// One step of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg {
    Key(&'static str),
    Index(usize),
}

/// Where a path is, or where its nearest written ancestor is (`exact == false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub at: Position,
    pub exact: bool,
}

const HERE: &str = "ftvirt-locate: here";
const NEAREST: &str = "ftvirt-locate: nearest";

pub fn locate(text: &str, path: &[Seg]) -> Option<Found> {
    let err = Probe(path)
        .deserialize(serde_yaml::Deserializer::from_str(text))
        .err()?;
    let loc = err.location()?;
    Some(Found {
        at: Position {
            line: loc.line(),
            column: loc.column(),
        }
        .within(text),
        exact: err.to_string().contains(HERE),
    })
}

struct Probe<'p>(&'p [Seg]);

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.0.first() {
            None => d.deserialize_any(Stop),
            Some(Seg::Key(_)) => d.deserialize_map(self),
            Some(Seg::Index(_)) => d.deserialize_seq(self),
        }
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(NEAREST)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (Some(Seg::Key(want)), rest) = (self.0.first(), &self.0[1..]) else {
            return Err(A::Error::custom(NEAREST));
        };
        while let Some(key) = map.next_key::<serde_yaml::Value>()? {
            if key.as_str() == Some(*want) {
                return map.next_value_seed(Probe(rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(A::Error::custom(NEAREST))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (Some(Seg::Index(want)), rest) = (self.0.first(), &self.0[1..]) else {
            return Err(A::Error::custom(NEAREST));
        };
        for _ in 0..*want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(A::Error::custom(NEAREST));
            }
        }
        seq.next_element_seed(Probe(rest))?;
        Err(A::Error::custom(NEAREST))
    }
}

/// Fails at whatever node it is given.
struct Stop;

macro_rules! stop {
    ($($name:ident: $t:ty),*) => {
        $(fn $name<E: Error>(self, _: $t) -> Result<(), E> {
            Err(E::custom(HERE))
        })*
    };
}

impl<'de> Visitor<'de> for Stop {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(HERE)
    }

    stop!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);

    fn visit_unit<E: Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }

    fn visit_none<E: Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }

    fn visit_some<D: Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
        Err(D::Error::custom(HERE))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(A::Error::custom(HERE))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(A::Error::custom(HERE))
    }

    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(A::Error::custom(HERE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, path: &[Seg]) -> (usize, usize, bool) {
        let f = locate(text, path).expect("a position");
        (f.at.line, f.at.column, f.exact)
    }

    #[test]
    fn finds_block_flow_and_sequence_nodes() {
        let text = "# c\nhost:\n  name: a\ndefaults:\n  heartbeat-interval: 100\n\
                    peers:\n  - name: b\n  - {name: c, address: 10.0.0.3}\n";
        use Seg::*;
        assert_eq!(at(text, &[Key("host"), Key("name")]), (3, 9, true));
        assert_eq!(
            at(text, &[Key("defaults"), Key("heartbeat-interval")]),
            (5, 23, true)
        );
        assert_eq!(
            at(text, &[Key("peers"), Index(1), Key("name")]),
            (8, 12, true)
        );
        assert_eq!(at(text, &[Key("peers"), Index(1)]), (8, 5, true));
        // Not written: the nearest ancestor that is.
        assert_eq!(
            at(text, &[Key("defaults"), Key("detection-time")]),
            (5, 3, false)
        );
        assert_eq!(
            at(text, &[Key("peers"), Index(5), Key("name")]),
            (7, 3, false)
        );
    }

    #[test]
    fn an_alias_is_found_where_its_value_is_written() {
        let text = "a: &x 5\nb: *x\n";
        assert_eq!(at(text, &[Seg::Key("b")]), (1, 4, true));
    }
}
