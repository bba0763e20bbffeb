//! The TCP ports one protected domain's COLO uses ([`Ports`]): the secondary's
//! NBD export and incoming migration, the primary's proxy servers and
//! colo-compare's loopback pairs. A host wires several domains on ports of
//! different slots, derived from the configured bases (`colo.ports`).

/// Ports one protected domain uses (unique per domain on a host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ports {
    /// On the secondary host: NBD export, incoming migration.
    pub nbd: u16,
    pub migration: u16,
    /// On the primary host's replication address: the proxy's two servers.
    pub mirror: u16,
    pub compare: u16,
    /// On the primary host's loopback: colo-compare's input and output pairs.
    pub compare_in: u16,
    pub compare_out: u16,
}

impl Ports {
    /// The built-in bases (slot 0), as `colo.ports` in the configuration defaults to.
    pub const DEFAULT: Ports = Ports {
        nbd: 9999,
        migration: 9998,
        mirror: 9003,
        compare: 9004,
        compare_in: 9001,
        compare_out: 9005,
    };

    /// How many domains one host can wire at once (slots 0 to SLOTS - 1).
    pub const SLOTS: u16 = 64;

    /// Ports for the domain in slot `n` (0, 1, 2, ...) from the built-in bases
    /// (for tests: ftd's own slots come from `crate::domain::PortPool`).
    pub fn slot(n: u16) -> Ports {
        Ports::DEFAULT.nth(n)
    }

    /// Ports for slot `n` from these bases (slot 0): the secondary's ports count
    /// down by 10 a slot, the primary's up by 10; `None` past port 65535 or below 1.
    pub fn checked_nth(self, n: u16) -> Option<Ports> {
        let k = n.checked_mul(10)?;
        Some(Ports {
            nbd: self.nbd.checked_sub(k).filter(|p| *p > 0)?,
            migration: self.migration.checked_sub(k).filter(|p| *p > 0)?,
            mirror: self.mirror.checked_add(k)?,
            compare: self.compare.checked_add(k)?,
            compare_in: self.compare_in.checked_add(k)?,
            compare_out: self.compare_out.checked_add(k)?,
        })
    }

    /// [`Ports::checked_nth`] for tests, for a slot that exists. Panics past
    /// port 1 or 65535 (it used to fall back to slot 0's ports, silently): ftd's
    /// own slots come from `crate::domain::PortPool`, which refuses such a slot.
    pub fn nth(self, n: u16) -> Ports {
        self.checked_nth(n)
            .unwrap_or_else(|| panic!("slot {n} of {self:?} falls outside ports 1-65535"))
    }

    /// Every port, for checks and socket cuts.
    pub fn all(&self) -> [u16; 6] {
        [
            self.nbd,
            self.migration,
            self.mirror,
            self.compare,
            self.compare_in,
            self.compare_out,
        ]
    }
}
