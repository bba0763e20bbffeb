//! The `arbiter:` section: who decides which host keeps a protected domain when
//! the two hosts cannot reach each other (see `crate::arbiter`), and with `kind:
//! etcd` where the witness is (`witness:`, in `witness.rs`).

use super::de;
use super::witness::WitnessConfig;
use serde::Deserialize;
use std::time::Duration;

/// The `arbiter:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping with kind:, fence-margin: and witness:"
)]
pub struct ArbiterConfig {
    pub kind: ArbiterKind,
    /// Time a host's ftd gets to cut its guest off once corosync told it that it
    /// lost quorum; a surviving secondary waits for it (on top of corosync's own bound)
    /// before it takes over.
    #[serde(deserialize_with = "de::millis")]
    pub fence_margin: Duration,
    /// Where the witness is (`kind: etcd`).
    pub witness: WitnessConfig,
}

impl Default for ArbiterConfig {
    fn default() -> Self {
        ArbiterConfig {
            kind: ArbiterKind::None,
            fence_margin: Duration::from_millis(500),
            witness: WitnessConfig::default(),
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
    /// The copy of record of each domain in etcd, changed only by compare-and-swap
    /// (`crate::witness`; not used by the domain tasks yet, so ftd refuses it).
    Etcd,
}

impl<'de> Deserialize<'de> for ArbiterKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const ALL: [ArbiterKind; 3] = [ArbiterKind::None, ArbiterKind::Corosync, ArbiterKind::Etcd];
        de::choice(d, &["none", "corosync", "etcd"]).map(|i| ALL[i])
    }
}
