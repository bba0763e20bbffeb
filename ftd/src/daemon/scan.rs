//! The start-up scan: every running domain that is marked, or for which this host
//! keeps a secondary's overlays, is taken up; its task reads QEMU and re-attaches
//! to a running COLO pair, or protects the domain. It runs in a task of its own:
//! the daemon serves requests meanwhile.

use super::WeakDaemonHandle;
use crate::annotation::NAMESPACE;
use crate::domain::HostCtx;
use crate::libvirt::DomState;

pub(super) fn scan(ctx: HostCtx, me: WeakDaemonHandle) {
    tokio::spawn(async move {
        let domains = match ctx.lv.list().await {
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
            let secondary = tokio::fs::metadata(crate::domain::secondary_dir(&ctx, &name))
                .await
                .is_ok();
            match ctx.lv.metadata(&name, NAMESPACE).await {
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
