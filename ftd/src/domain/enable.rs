//! `Enable` and `Disable` as the domain task runs them: choosing and checking the
//! domain's settings ([`crate::protect`]: options, then the domain's annotation,
//! then the configuration), refusing what COLO cannot replicate before anything
//! changes, and marking or unmarking the domain through libvirt's metadata API.
//! This runs in the domain's own task, so its libvirt calls hold up only this
//! domain, never the daemon's router or another domain.

use super::handle::CommandError;
use super::task::Task;
use super::HostCtx;
use crate::annotation::{self, Protection, KEY, NAMESPACE};
use crate::colo::layout::DomainLayout;
use crate::coordinator::{Event, State};
use crate::libvirt::{DomState, LibvirtError};
use crate::protect::{self, Defaults};
use ftd_proxy::EnableOptions;
use std::time::Duration;

/// Right after ftd starts the peer link takes a moment to come up: an `Enable`
/// waits that long for it before "peer unreachable" could refuse it.
const PEER_LINK_GRACE: Duration = Duration::from_secs(2);

/// This host's side of the choice of settings.
pub(crate) fn defaults(ctx: &super::HostCtx) -> Defaults {
    Defaults {
        linked_peer: ctx.peer.peer_host().to_string(),
        peers: ctx.peers.clone(),
        checkpoint_ms: ctx.checkpoint_ms,
        auto_reprotect: ctx.auto_reprotect,
    }
}

fn libvirt_error(domain: &str, e: LibvirtError) -> CommandError {
    match e {
        LibvirtError::NoDomain(_) => CommandError::NoSuchDomain(domain.to_string()),
        e => CommandError::Failed(e.to_string()),
    }
}

impl Task {
    /// `Enable`: choose and check the settings, ask the coordinator to protect,
    /// and mark the domain once it accepted.
    pub(super) async fn enable(&mut self, opts: &EnableOptions) -> Result<State, CommandError> {
        let domain = self.name.clone();
        self.ctx.peer.wait_up(PEER_LINK_GRACE).await;
        let marked = match self.ctx.lv.metadata(&domain, NAMESPACE).await {
            Ok(Some(el)) => Some(annotation::parse_element(&el).map_err(|e| {
                CommandError::Invalid(format!(
                    "domain {domain}: its protection annotation cannot be used: {e} (fix it \
                     with `virsh metadata {domain} {NAMESPACE} --key {KEY} --edit`, or pass \
                     the settings to Enable)"
                ))
            })?),
            Ok(None) => None,
            Err(e) => return Err(libvirt_error(&domain, e)),
        };
        let chosen = protect::choose(opts, marked.as_ref(), &defaults(&self.ctx))
            .map_err(|e| CommandError::Invalid(format!("domain {domain}: {e}")))?;
        check_replicable(&self.ctx, &domain).await?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.user(Event::Enable, Some(chosen.settings), tx);
        let st = rx
            .await
            .unwrap_or_else(|_| Err(CommandError::Failed("no answer".into())))?;
        if marked.as_ref() != Some(&chosen.annotation) {
            mark(&self.ctx, &domain, Some(&chosen.annotation)).await;
        }
        Ok(st)
    }
}

/// Refuse, before anything changes, a domain whose devices COLO cannot
/// replicate (the error names the device and what to do).
async fn check_replicable(ctx: &HostCtx, domain: &str) -> Result<(), CommandError> {
    let running = match ctx.lv.state(domain).await {
        Ok(s) => matches!(s, DomState::Running | DomState::Paused),
        Err(e) => return Err(libvirt_error(domain, e)),
    };
    let xml = ctx
        .lv
        .xml(domain, !running)
        .await
        .map_err(|e| libvirt_error(domain, e))?;
    let layout = DomainLayout::parse(&xml)
        .map_err(|e| CommandError::Failed(format!("domain {domain}: {e}")))?;
    layout
        .check_replicable(&xml)
        .map_err(|e| CommandError::Invalid(format!("cannot protect domain {domain}: {e}")))
}

/// Write (or with `None` remove) the domain's annotation, live and persistent.
/// Protection does not depend on it, so a failure is logged, not returned.
async fn mark(ctx: &HostCtx, domain: &str, p: Option<&Protection>) {
    let el = p.map(annotation::to_element);
    match ctx
        .lv
        .set_metadata(domain, el.as_deref(), KEY, NAMESPACE)
        .await
    {
        Ok(()) => {
            tracing::info!(%domain, annotation = el.as_deref().unwrap_or("(removed)"), "domain marked")
        }
        Err(e) => {
            tracing::warn!(%domain, error = %e, "could not update the protection annotation")
        }
    }
}

/// After `Disable`: the domain is no longer marked.
pub(super) async fn unmark(ctx: &HostCtx, domain: &str) {
    if let Ok(Some(_)) = ctx.lv.metadata(domain, NAMESPACE).await {
        mark(ctx, domain, None).await;
    }
}
