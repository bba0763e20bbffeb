//! What a new domain task starts from, read from libvirt before the task exists
//! (by a future of its own, never by the daemon's router): whether the domain is
//! defined here, running or not, and, for a running one, whether it may be half of
//! a COLO pair (marked, or this host keeps a secondary's overlays for it: ftd
//! restarted), in which case its task starts by reading QEMU
//! ([`State::Reattaching`]).

use super::{enable, DomainSettings, HostCtx};
use crate::annotation::{self, NAMESPACE};
use crate::coordinator::State;
use crate::libvirt::{DomState, LibvirtError};
use crate::protect;
use ftd_proxy::EnableOptions;

/// A domain as found on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub initial: State,
    /// It carries the protection annotation, with these settings (protection
    /// is wanted).
    pub marked: Option<DomainSettings>,
}

impl Resolved {
    /// Not defined here: the peer runs it, or nobody does.
    pub fn standby() -> Resolved {
        Resolved {
            initial: State::Standby,
            marked: None,
        }
    }
}

/// How `name` stands on this host; `Ok(None)` when libvirt does not know it.
pub async fn resolve(ctx: &HostCtx, name: &str) -> Result<Option<Resolved>, LibvirtError> {
    match ctx.lv.state(name).await {
        Ok(DomState::Running | DomState::Paused) => {
            let (candidate, marked) = reattach_candidate(ctx, name).await;
            let initial = if candidate {
                State::Reattaching
            } else {
                State::Unprotected
            };
            Ok(Some(Resolved { initial, marked }))
        }
        Ok(_) => Ok(Some(Resolved {
            initial: State::Stopped,
            marked: None,
        })),
        Err(LibvirtError::NoDomain(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Is a running domain possibly half of a COLO pair (marked, or this host keeps
/// a secondary's overlays for it)? With the mark's settings, if it carries a
/// usable one.
async fn reattach_candidate(ctx: &HostCtx, domain: &str) -> (bool, Option<DomainSettings>) {
    let secondary = super::exists(super::secondary_dir(ctx, domain)).await;
    let el = match ctx.lv.metadata(domain, NAMESPACE).await {
        Ok(Some(el)) => el,
        Ok(None) => return (secondary, None),
        Err(e) => {
            tracing::warn!(%domain, error = %e, "cannot read the protection annotation");
            return (secondary, None);
        }
    };
    let settings = annotation::parse_element(&el)
        .map_err(|e| e.to_string())
        .and_then(|p| protect::choose(&EnableOptions::default(), Some(&p), &enable::defaults(ctx)));
    match settings {
        Ok(c) => (true, Some(c.settings)),
        Err(e) => {
            tracing::warn!(%domain, error = %e, "the protection annotation cannot be used; Enable the domain with its settings");
            (true, None)
        }
    }
}
