//! `Enable`'s options: an `a{sv}` dictionary on the bus, [`EnableOptions`] on both
//! sides. Every key is optional; unknown keys and wrong types are refused with a
//! message that names the key and what it takes, so a typo never passes silently.

use crate::owned;
use std::collections::HashMap;
use zbus::zvariant::{OwnedValue, Value};

/// The peer host (a name under `peers:` in ftd's configuration), `s`.
pub const PEER: &str = "peer";
/// Checkpoint interval in milliseconds, `u` (any unsigned or positive integer type
/// is taken).
pub const CHECKPOINT_INTERVAL: &str = "checkpoint-interval";
/// Re-protect automatically when a lost peer is back, `b`.
pub const AUTO_REPROTECT: &str = "auto-reprotect";
const KEYS: [&str; 3] = [PEER, CHECKPOINT_INTERVAL, AUTO_REPROTECT];

/// What `Enable` may set for one domain; `None` leaves it to the domain's
/// annotation, then to ftd's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnableOptions {
    pub peer: Option<String>,
    pub checkpoint_interval_ms: Option<u64>,
    pub auto_reprotect: Option<bool>,
}

/// Why an options dictionary was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("unknown Enable option {0:?}: the options are {known}", known = KEYS.join(", "))]
    Unknown(String),
    #[error("Enable option {key:?} must be {want}, not a value of type {got}")]
    Type {
        key: &'static str,
        want: &'static str,
        got: String,
    },
}

impl EnableOptions {
    /// The dictionary to pass to `Enable`.
    pub fn to_dict(&self) -> HashMap<String, OwnedValue> {
        let mut d = HashMap::new();
        if let Some(p) = &self.peer {
            d.insert(PEER.to_string(), owned(Value::from(p.as_str())));
        }
        if let Some(ms) = self.checkpoint_interval_ms {
            d.insert(CHECKPOINT_INTERVAL.to_string(), owned(Value::U64(ms)));
        }
        if let Some(b) = self.auto_reprotect {
            d.insert(AUTO_REPROTECT.to_string(), owned(Value::Bool(b)));
        }
        d
    }

    /// Read a dictionary as `Enable` received it.
    pub fn from_dict(d: &HashMap<String, OwnedValue>) -> Result<EnableOptions, OptionsError> {
        let mut o = EnableOptions::default();
        let mut keys: Vec<&String> = d.keys().collect();
        keys.sort();
        for k in keys {
            let v: &Value<'_> = &d[k];
            let v = match v {
                Value::Value(inner) => inner.as_ref(),
                v => v,
            };
            let type_err = |key, want| OptionsError::Type {
                key,
                want,
                got: v.value_signature().to_string(),
            };
            match k.as_str() {
                PEER => match v {
                    Value::Str(s) => o.peer = Some(s.to_string()),
                    _ => return Err(type_err(PEER, "a string (s)")),
                },
                CHECKPOINT_INTERVAL => {
                    let ms = match *v {
                        Value::U16(n) => Some(n as u64),
                        Value::U32(n) => Some(n as u64),
                        Value::U64(n) => Some(n),
                        Value::I16(n) => u64::try_from(n).ok(),
                        Value::I32(n) => u64::try_from(n).ok(),
                        Value::I64(n) => u64::try_from(n).ok(),
                        _ => None,
                    };
                    o.checkpoint_interval_ms = Some(ms.ok_or_else(|| {
                        type_err(
                            CHECKPOINT_INTERVAL,
                            "a non-negative integer of milliseconds (u)",
                        )
                    })?);
                }
                AUTO_REPROTECT => match v {
                    Value::Bool(b) => o.auto_reprotect = Some(*b),
                    _ => return Err(type_err(AUTO_REPROTECT, "a boolean (b)")),
                },
                other => return Err(OptionsError::Unknown(other.to_string())),
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_round_trip() {
        let o = EnableOptions {
            peer: Some("b".into()),
            checkpoint_interval_ms: Some(500),
            auto_reprotect: Some(false),
        };
        assert_eq!(EnableOptions::from_dict(&o.to_dict()).unwrap(), o);
        assert_eq!(
            EnableOptions::from_dict(&HashMap::new()).unwrap(),
            EnableOptions::default()
        );
    }

    #[test]
    fn integers_of_any_width_are_taken_but_not_negative_ones() {
        let mut d = HashMap::new();
        d.insert(CHECKPOINT_INTERVAL.to_string(), owned(Value::I32(700)));
        assert_eq!(
            EnableOptions::from_dict(&d).unwrap().checkpoint_interval_ms,
            Some(700)
        );
        d.insert(CHECKPOINT_INTERVAL.to_string(), owned(Value::I32(-1)));
        let e = EnableOptions::from_dict(&d).unwrap_err().to_string();
        assert!(
            e.contains("checkpoint-interval") && e.contains("milliseconds"),
            "{e}"
        );
    }

    #[test]
    fn typos_and_wrong_types_are_named() {
        let mut d = HashMap::new();
        d.insert("intreval".to_string(), owned(Value::U32(1)));
        let e = EnableOptions::from_dict(&d).unwrap_err().to_string();
        assert!(
            e.contains("\"intreval\"") && e.contains("checkpoint-interval"),
            "{e}"
        );
        let mut d = HashMap::new();
        d.insert(PEER.to_string(), owned(Value::U32(1)));
        let e = EnableOptions::from_dict(&d).unwrap_err().to_string();
        assert!(e.contains("\"peer\"") && e.contains("string"), "{e}");
    }
}
