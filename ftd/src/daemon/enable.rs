//! `Enable` and the protection mark: choosing and checking a domain's settings
//! ([`crate::protect`]), refusing what COLO cannot replicate before anything
//! changes, marking and unmarking the domain through libvirt's metadata API, and
//! protecting the running marked domains at start-up.

use super::{CommandError, Daemon};
use crate::annotation::{self, Protection, KEY, NAMESPACE};
use crate::colo::layout::DomainLayout;
use crate::coordinator::State;
use crate::domain::DomainSettings;
use crate::libvirt::DomState;
use crate::protect::{self, Defaults};
use ftd_proxy::EnableOptions;

impl Daemon {
    /// `Enable`: choose and check the settings, configure the domain's task, ask
    /// it to protect, and mark the domain once it accepted.
    pub(super) async fn enable(
        &mut self,
        domain: &str,
        opts: &EnableOptions,
    ) -> Result<State, CommandError> {
        self.await_peer_link().await;
        let h = self.domain(domain, true).await?;
        let marked = match self.ctx.lv.metadata(domain, NAMESPACE).await {
            Ok(Some(el)) => Some(annotation::parse_element(&el).map_err(|e| {
                CommandError::Invalid(format!(
                    "domain {domain}: its protection annotation cannot be used: {e}                      (fix it with `virsh metadata {domain} {NAMESPACE} --key {KEY} --edit`,                      or pass the settings to Enable)"
                ))
            })?),
            Ok(None) => None,
            Err(e) => return Err(CommandError::Failed(e.to_string())),
        };
        let chosen = protect::choose(opts, marked.as_ref(), &self.defaults())
            .map_err(|e| CommandError::Invalid(format!("domain {domain}: {e}")))?;
        self.check_replicable(domain).await?;
        let st = h
            .enable(chosen.settings)
            .await
            .map_err(CommandError::Refused)?;
        if marked.as_ref() != Some(&chosen.annotation) {
            self.mark(domain, Some(&chosen.annotation)).await;
        }
        Ok(st)
    }

    /// Refuse, before anything changes, a domain whose devices COLO cannot
    /// replicate (the error names the device and what to do).
    async fn check_replicable(&self, domain: &str) -> Result<(), CommandError> {
        let running = matches!(
            self.ctx.lv.state(domain).await,
            Ok(DomState::Running | DomState::Paused)
        );
        let xml = self
            .ctx
            .lv
            .xml(domain, !running)
            .await
            .map_err(|e| CommandError::Failed(e.to_string()))?;
        let layout = DomainLayout::parse(&xml)
            .map_err(|e| CommandError::Failed(format!("domain {domain}: {e}")))?;
        layout
            .check_replicable(&xml)
            .map_err(|e| CommandError::Invalid(format!("cannot protect domain {domain}: {e}")))
    }

    pub(super) fn defaults(&self) -> Defaults {
        Defaults {
            linked_peer: self.ctx.peer.peer_host().to_string(),
            peers: self.ctx.peers.clone(),
            checkpoint_ms: self.ctx.checkpoint_ms,
            auto_reprotect: self.ctx.auto_reprotect,
        }
    }

    /// Write (or with `None` remove) the domain's annotation, live and persistent.
    /// Protection does not depend on it, so a failure is logged, not returned.
    async fn mark(&self, domain: &str, p: Option<&Protection>) {
        let el = p.map(annotation::to_element);
        match self
            .ctx
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

    pub(super) async fn unmark(&self, domain: &str) {
        if let Ok(Some(_)) = self.ctx.lv.metadata(domain, NAMESPACE).await {
            self.mark(domain, None).await;
        }
    }

    /// Is a running domain possibly half of a COLO pair (marked, or this host
    /// keeps a secondary's overlays for it)? With the mark's settings, if it
    /// carries a usable one.
    pub(super) async fn reattach_candidate(&self, domain: &str) -> (bool, Option<DomainSettings>) {
        let secondary = tokio::fs::metadata(crate::domain::secondary_dir(&self.ctx, domain))
            .await
            .is_ok();
        let el = match self.ctx.lv.metadata(domain, NAMESPACE).await {
            Ok(Some(el)) => el,
            Ok(None) => return (secondary, None),
            Err(e) => {
                tracing::warn!(%domain, error = %e, "cannot read the protection annotation");
                return (secondary, None);
            }
        };
        let settings = annotation::parse_element(&el)
            .map_err(|e| e.to_string())
            .and_then(|p| protect::choose(&EnableOptions::default(), Some(&p), &self.defaults()));
        match settings {
            Ok(c) => (true, Some(c.settings)),
            Err(e) => {
                tracing::warn!(%domain, error = %e, "the protection annotation cannot be used; Enable the domain with its settings");
                (true, None)
            }
        }
    }

    /// At start-up: take up every running domain that is marked or holds a
    /// secondary here; each task reads QEMU and re-attaches to a running COLO
    /// pair, or protects the domain (in the background; the daemon serves
    /// requests meanwhile).
    pub(super) fn scan(&self) {
        let ctx = self.ctx.clone();
        let lv = self.ctx.lv.clone();
        let me = self.me.clone();
        tokio::spawn(async move {
            let domains = match lv.list().await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "start-up scan: cannot list domains");
                    return;
                }
            };
            for (name, st) in domains {
                if !matches!(st, DomState::Running | DomState::Paused) {
                    continue;
                }
                let secondary = crate::domain::secondary_dir(&ctx, &name).exists();
                match lv.metadata(&name, NAMESPACE).await {
                    Ok(Some(_)) => {
                        tracing::info!(domain = %name, "start-up: running and marked: re-attach or protect");
                        me.adopt(name)
                    }
                    Ok(None) if secondary => {
                        tracing::info!(domain = %name, "start-up: running with a secondary's overlays here: re-attach");
                        me.adopt(name)
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(domain = %name, error = %e, "start-up scan"),
                }
            }
        });
    }
}
