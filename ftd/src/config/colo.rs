//! The `colo:` section: where the secondary's overlays go, the COLO ports of
//! the first domain wired on this host (the bases of every slot's), COLO's TLS
//! and its own files (checked at start: [`Config::check_colo_tls`]), the
//! directories whose programs and boot files a peer's domain may name, and how
//! much memory a secondary needs here ([`crate::colo::fit::MemoryNeed`]).
//!
//! [`Config::check_colo_tls`]: super::Config::check_colo_tls

use super::de;
use serde::Deserialize;
use std::path::PathBuf;

/// COLO's wiring on this host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping with ports:, overlay-dir:, tls:, tls-ca:, tls-cert:, \
                 tls-key:, trusted-dirs:, secondary-memory-percent: and \
                 secondary-memory-headroom:"
)]
pub struct Colo {
    pub ports: ColoPorts,
    /// Where the secondary's active and hidden overlays go.
    #[serde(deserialize_with = "de::abs_dir")]
    pub overlay_dir: PathBuf,
    /// COLO's channels (NBD, migration, the proxy's sockets) over mutual TLS
    /// with COLO's own files below (`crate::colo::tls`). Off: in clear, for a
    /// replication network protected another way; warned at start.
    pub tls: bool,
    /// COLO's CA (PEM): its own, not the peer link's, which must not trust it
    /// (QEMU, as libvirt's user, holds COLO's key).
    #[serde(deserialize_with = "de::abs_file")]
    pub tls_ca: PathBuf,
    /// This host's COLO certificate (PEM), naming host.name and host.address.
    #[serde(deserialize_with = "de::abs_file")]
    pub tls_cert: PathBuf,
    /// Its private key (PEM), copied for QEMU into `<state-dir>/qemu-tls/`.
    #[serde(deserialize_with = "de::abs_file")]
    pub tls_key: PathBuf,
    /// Where the emulator, kernel, initrd, firmware loader and DTB that a peer's
    /// domain names may be: a secondary or survivor built from the peer's
    /// definition uses such a file of this host only under one of these.
    #[serde(deserialize_with = "de::plain_dirs")]
    pub trusted_dirs: Vec<PathBuf>,
    /// The memory a secondary needs on this host, in percent of its guest's
    /// (`<memory>`): the guest's RAM and COLO's cache of it. Checked against
    /// `MemAvailable` before anything is made for a secondary.
    pub secondary_memory_percent: u32,
    /// MiB a secondary needs beyond that (QEMU's own memory).
    pub secondary_memory_headroom: u64,
}

impl Colo {
    /// What the memory check of a secondary on this host asks for.
    pub fn memory_need(&self) -> crate::colo::fit::MemoryNeed {
        crate::colo::fit::MemoryNeed {
            percent: self.secondary_memory_percent,
            headroom_mib: self.secondary_memory_headroom,
        }
    }
}

/// `colo.trusted-dirs` by default: where Debian's QEMU, its firmware and
/// libvirt's boot images live.
pub const TRUSTED_DIRS: [&str; 6] = [
    "/usr/bin",
    "/usr/libexec",
    "/usr/share/qemu",
    "/usr/share/seabios",
    "/usr/share/OVMF",
    "/var/lib/libvirt/boot",
];

impl Default for Colo {
    fn default() -> Self {
        Colo {
            ports: ColoPorts::default(),
            overlay_dir: PathBuf::from("/var/lib/ftvirt/overlays"),
            tls: true,
            tls_ca: PathBuf::from("/etc/ftvirt/tls/colo-ca.crt"),
            tls_cert: PathBuf::from("/etc/ftvirt/tls/colo.crt"),
            tls_key: PathBuf::from("/etc/ftvirt/tls/colo.key"),
            trusted_dirs: TRUSTED_DIRS.iter().map(PathBuf::from).collect(),
            secondary_memory_percent: crate::colo::fit::DEFAULT_MEMORY_PERCENT,
            secondary_memory_headroom: crate::colo::fit::DEFAULT_MEMORY_HEADROOM_MIB,
        }
    }
}

/// The ports of the first domain wired on this host (slot 0); slot n uses these
/// minus 10 n (nbd, migration) and plus 10 n (the others), see
/// `colo::plan::Ports::checked_nth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping of port numbers (migration:, nbd:, ...)"
)]
pub struct ColoPorts {
    /// Secondary: incoming migration (the checkpoints).
    #[serde(deserialize_with = "de::port")]
    pub migration: u16,
    /// Secondary: the NBD export the primary's disk writes are replicated to.
    #[serde(deserialize_with = "de::port")]
    pub nbd: u16,
    /// Primary's replication address: the proxy's servers for the mirrored
    /// (client to guest) and the compared (guest to client) packets.
    #[serde(deserialize_with = "de::port")]
    pub mirror: u16,
    #[serde(deserialize_with = "de::port")]
    pub compare: u16,
    /// Primary's loopback: colo-compare's input and output socket pairs.
    #[serde(deserialize_with = "de::port")]
    pub compare_in: u16,
    #[serde(deserialize_with = "de::port")]
    pub compare_out: u16,
}

impl Default for ColoPorts {
    fn default() -> Self {
        ColoPorts {
            migration: 9998,
            nbd: 9999,
            mirror: 9003,
            compare: 9004,
            compare_in: 9001,
            compare_out: 9005,
        }
    }
}

impl From<ColoPorts> for crate::colo::plan::Ports {
    fn from(p: ColoPorts) -> Self {
        crate::colo::plan::Ports {
            nbd: p.nbd,
            migration: p.migration,
            mirror: p.mirror,
            compare: p.compare,
            compare_in: p.compare_in,
            compare_out: p.compare_out,
        }
    }
}
