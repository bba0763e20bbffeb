//! The `arbiter:` section: who decides which host keeps a protected domain when
//! the two hosts cannot reach each other (see `crate::arbiter`).

use super::de;
use serde::Deserialize;
use std::time::Duration;

/// The `arbiter:` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping with kind: and fence-margin:"
)]
pub struct ArbiterConfig {
    pub kind: ArbiterKind,
    /// Time a host's ftd gets to cut its guest off once corosync told it that it
    /// lost quorum; a surviving secondary waits for it (on top of corosync's own bound)
    /// before it takes over.
    #[serde(deserialize_with = "de::millis")]
    pub fence_margin: Duration,
}

impl Default for ArbiterConfig {
    fn default() -> Self {
        ArbiterConfig {
            kind: ArbiterKind::None,
            fence_margin: Duration::from_millis(500),
        }
    }
}

/// Which arbiter (`arbiter.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArbiterKind {
    /// No arbiter: a peer that stops answering is taken for dead. Unsafe when only
    /// the link between the hosts fails: both copies then run (split brain).
    #[default]
    None,
    /// corosync's quorum on the two hosts, with a quorum device (corosync-qdevice,
    /// model net) whose witness (corosync-qnetd) runs on a third host.
    Corosync,
}

impl<'de> Deserialize<'de> for ArbiterKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const ALL: [ArbiterKind; 2] = [ArbiterKind::None, ArbiterKind::Corosync];
        de::choice(d, &["none", "corosync"]).map(|i| ALL[i])
    }
}
