//! ftd's D-Bus interface as its clients see it: the names (bus name, object path,
//! interface, error prefix), the stable state strings, [`DomainStatus`] and the
//! [`FtdProxy`]. ftd serves this interface (`ftd::api::Manager`); virsh-ft and the
//! tests call it through here, so nobody retypes it.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Type, Value};

mod options;
pub use options::{EnableOptions, OptionsError};

/// The well-known name ftd owns unless configured otherwise.
pub const BUS_NAME: &str = "org.ftvirt.Ftd1";
/// Where ftd serves the manager object.
pub const OBJECT_PATH: &str = "/org/ftvirt/Ftd1";
/// The manager's interface.
pub const INTERFACE: &str = "org.ftvirt.Ftd1.Manager";
/// The interface of each domain's object, served at [`domain_path`].
pub const DOMAIN_INTERFACE: &str = "org.ftvirt.Ftd1.Domain";

/// The object path of `domain`'s object: `/org/ftvirt/Ftd1/domain/<name>`, with
/// every byte outside `[A-Za-z0-9]` written as `_xx` (hex), as systemd does, so any
/// libvirt domain name maps to a valid path and back.
pub fn domain_path(domain: &str) -> OwnedObjectPath {
    let mut p = format!("{OBJECT_PATH}/domain/");
    if domain.is_empty() {
        p.push('_');
    }
    for b in domain.bytes() {
        if b.is_ascii_alphanumeric() {
            p.push(b as char);
        } else {
            p.push_str(&format!("_{b:02x}"));
        }
    }
    OwnedObjectPath::try_from(p).expect("escaped paths are valid")
}
/// Every error ftd returns is `<ERROR_PREFIX>.NoSuchDomain`, `.Refused`,
/// `.InvalidArgument`, `.Failed` or `.AccessDenied`.
pub const ERROR_PREFIX: &str = "org.ftvirt.Ftd1.Error";
/// The caller may not do this: polkit did not authorize it (or could not be asked).
/// The message names the polkit action; nothing was done.
pub const ERROR_ACCESS_DENIED: &str = "org.ftvirt.Ftd1.Error.AccessDenied";

/// The state names of the API: [`DomainStatus::state`] and what `Enable`, `Disable`
/// and `Failover` return. Stable strings; clients compare against these.
pub mod state {
    /// Running here, not protected.
    pub const UNPROTECTED: &str = "unprotected";
    /// Protection requested: the peer prepares the secondary.
    pub const PREPARING: &str = "preparing";
    /// The disk and memory are being copied to the secondary.
    pub const SYNCING: &str = "syncing";
    /// COLO is being started on both sides.
    pub const STARTING: &str = "starting";
    /// Protected: checkpoints flow to the secondary.
    pub const PROTECTED: &str = "protected";
    /// Running here alone after losing the secondary; re-protects when it can.
    pub const DEGRADED: &str = "degraded";
    /// A planned failover to the peer is under way.
    pub const SWITCHING_OVER: &str = "switching-over";
    /// Protection is being switched off.
    pub const DISABLING: &str = "disabling";
    /// Protecting failed (see `last_error`); the primary keeps running.
    pub const FAILED: &str = "failed";
    /// Not running here; the peer runs the domain (or nobody does).
    pub const STANDBY: &str = "standby";
    /// This host is preparing the secondary copy.
    pub const SECONDARY_PREPARING: &str = "secondary-preparing";
    /// This host runs the secondary copy.
    pub const SECONDARY: &str = "secondary";
    /// The secondary copy here is taking over.
    pub const TAKING_OVER: &str = "taking-over";
    /// Defined here but shut off.
    pub const STOPPED: &str = "stopped";
    /// Primary: the peer is unreachable; the arbiter decides which host keeps the
    /// domain (the guest's output is held meanwhile).
    pub const ARBITRATING: &str = "arbitrating";
    /// Secondary: the primary is unreachable; the arbiter decides whether this host
    /// takes over.
    pub const SECONDARY_ARBITRATING: &str = "secondary-arbitrating";
    /// This host lost a partition: its copy was stopped; the peer keeps the domain
    /// and makes this host its secondary again when the link is back.
    pub const FENCED: &str = "fenced";
    /// ftd (re)started and reads the running domain's COLO state before deciding
    /// (the guest runs on untouched).
    pub const REATTACHING: &str = "reattaching";
}

/// One domain's protection, as `Status` and `List` return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct DomainStatus {
    pub domain: String,
    /// One of the [`state`] names.
    pub state: String,
    /// Protection requested (it may not be established yet).
    pub wanted: bool,
    pub peer: String,
    pub peer_up: bool,
    pub checkpoints: u64,
    /// Seconds since the last checkpoint; negative when none was seen.
    pub last_checkpoint_age: f64,
    /// Empty when none.
    pub last_error: String,
    /// Empty when none.
    pub last_failover: String,
}

/// Client side of `org.ftvirt.Ftd1.Manager`.
#[zbus::proxy(
    interface = "org.ftvirt.Ftd1.Manager",
    default_service = "org.ftvirt.Ftd1",
    default_path = "/org/ftvirt/Ftd1"
)]
pub trait Ftd {
    /// Protect a running domain; returns the state reached. `options` is an
    /// [`EnableOptions`] dictionary (`EnableOptions::to_dict`); empty: the domain's
    /// annotation and the configuration decide.
    fn enable(&self, domain: &str, options: HashMap<String, OwnedValue>) -> zbus::Result<String>;
    /// Stop protecting a domain; the primary keeps running.
    fn disable(&self, domain: &str) -> zbus::Result<String>;
    /// Planned failover: the secondary takes over, this host's copy is destroyed.
    fn failover(&self, domain: &str) -> zbus::Result<String>;
    /// One domain's protection status.
    fn status(&self, domain: &str) -> zbus::Result<DomainStatus>;
    /// Every domain ftd knows on this host.
    fn list(&self) -> zbus::Result<Vec<DomainStatus>>;
    /// From the libvirt hook: `operation` happened to the marked `domain`.
    fn notify(&self, domain: &str, operation: &str) -> zbus::Result<String>;

    /// A domain's protection state changed on this host.
    #[zbus(signal)]
    fn state_changed(&self, domain: &str, from: &str, to: &str, reason: &str) -> zbus::Result<()>;
}

/// Client side of `org.ftvirt.Ftd1.Domain`, one object per domain ftd tracks
/// (at [`domain_path`]). Every property but `LastCheckpointAge` signals its changes.
#[zbus::proxy(
    interface = "org.ftvirt.Ftd1.Domain",
    default_service = "org.ftvirt.Ftd1"
)]
pub trait Domain {
    /// The libvirt domain name.
    #[zbus(property)]
    fn name(&self) -> zbus::Result<String>;
    /// One of the [`state`] names.
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
    /// `primary` (the copy clients see runs here), `secondary`, or `none`.
    #[zbus(property)]
    fn role(&self) -> zbus::Result<String>;
    /// Protection is requested (it may not be established yet).
    #[zbus(property)]
    fn wanted(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn peer(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn peer_up(&self) -> zbus::Result<bool>;
    /// Checkpoints seen since protection was (re-)established.
    #[zbus(property)]
    fn checkpoints(&self) -> zbus::Result<u64>;
    /// Seconds since the last checkpoint; negative when none was seen.
    #[zbus(property)]
    fn last_checkpoint_age(&self) -> zbus::Result<f64>;
    /// Seconds of guest run the secondary does not hold yet (since the last
    /// checkpoint) while protected; 0 otherwise.
    #[zbus(property)]
    fn replication_lag(&self) -> zbus::Result<f64>;
    /// Why the last failover happened; empty when none.
    #[zbus(property)]
    fn last_failover(&self) -> zbus::Result<String>;
    /// Why the last protection attempt failed; empty when none.
    #[zbus(property)]
    fn last_error(&self) -> zbus::Result<String>;
}

/// A [`Value`] as an owned dictionary value.
pub(crate) fn owned(v: Value<'_>) -> OwnedValue {
    v.try_to_owned()
        .expect("plain values have no file descriptors")
}

/// Shorthand for an empty `Enable` options dictionary.
pub fn no_options() -> HashMap<String, OwnedValue> {
    HashMap::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::zvariant::Type;

    #[test]
    fn names_agree_with_the_proxy_attributes() {
        // The attribute values above must be literals; keep them equal to the consts.
        assert_eq!(
            <FtdProxy<'_> as zbus::proxy::Defaults>::INTERFACE
                .as_ref()
                .map(|i| i.as_str()),
            Some(INTERFACE)
        );
        assert_eq!(
            <FtdProxy<'_> as zbus::proxy::Defaults>::DESTINATION
                .as_ref()
                .map(|d| d.as_str()),
            Some(BUS_NAME)
        );
        assert_eq!(
            <FtdProxy<'_> as zbus::proxy::Defaults>::PATH
                .as_ref()
                .map(|p| p.as_str()),
            Some(OBJECT_PATH)
        );
        assert!(INTERFACE.starts_with(BUS_NAME) && ERROR_PREFIX.starts_with(BUS_NAME));
        assert!(ERROR_ACCESS_DENIED.starts_with(ERROR_PREFIX));
    }

    #[test]
    fn domain_paths_are_escaped_and_distinct() {
        assert_eq!(domain_path("g").as_str(), "/org/ftvirt/Ftd1/domain/g");
        assert_eq!(
            domain_path("web-1.example").as_str(),
            "/org/ftvirt/Ftd1/domain/web_2d1_2eexample"
        );
        assert_eq!(domain_path("a_b").as_str(), "/org/ftvirt/Ftd1/domain/a_5fb");
        assert_ne!(domain_path("a_5fb"), domain_path("a_b"));
        assert_eq!(domain_path("").as_str(), "/org/ftvirt/Ftd1/domain/_");
        assert_eq!(domain_path("é").as_str(), "/org/ftvirt/Ftd1/domain/_c3_a9");
    }

    #[test]
    fn domain_status_signature_is_stable() {
        assert_eq!(DomainStatus::SIGNATURE.to_string(), "(ssbsbtdss)");
    }
}
