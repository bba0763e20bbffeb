//! The start-up scan: every running domain that is marked, or for which this host
//! keeps a secondary's overlays, is taken up; its task reads QEMU and re-attaches
//! to a running COLO pair, or protects the domain. It runs in a task of its own:
//! the daemon serves requests meanwhile.
//!
//! With the witness, libvirt's autostart of a marked domain is refused by the
//! hook while ftd is not running (at boot libvirtd starts first: the hook cannot
//! check the record then). So ftd starts those domains itself here, each only
//! after it took the witness's record for this host
//! ([`crate::domain::claim_start`]); a stale
//! copy (the record names another host's running copy) stays shut off, and that
//! host makes this one its secondary.

use super::WeakDaemonHandle;
use crate::annotation::NAMESPACE;
use crate::domain::HostCtx;
use crate::libvirt::DomState;
use crate::witness::claim::Claimed;

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
            if st == DomState::ShutOff {
                if ctx.witness.is_some() {
                    autostart(&ctx, &me, name).await;
                }
                continue;
            }
            if !matches!(st, DomState::Running | DomState::Paused) {
                continue;
            }
            let secondary = crate::domain::exists(crate::domain::secondary_dir(&ctx, &name)).await;
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

/// A shut-off domain: start it if it is marked, set to autostart, and this host
/// wins its record; then take it up like a running marked domain.
async fn autostart(ctx: &HostCtx, me: &WeakDaemonHandle, name: String) {
    if !matches!(ctx.lv.metadata(&name, NAMESPACE).await, Ok(Some(_))) {
        return;
    }
    if !ctx.lv.autostart(&name).await.unwrap_or(false) {
        return;
    }
    let Some(claimed) = crate::domain::claim_start(ctx, &name).await else {
        return;
    };
    match claimed {
        Ok(Claimed::Won(_)) => match ctx.lv.start(&name).await {
            Ok(()) => {
                tracing::info!(domain = %name, "start-up: marked, autostart, and this host holds the witness's record: started");
                me.adopt(name)
            }
            Err(e) => {
                tracing::warn!(domain = %name, error = %e, "start-up: starting the autostart domain failed; start it with virsh start, and see libvirtd's log if that fails too")
            }
        },
        Ok(Claimed::Lost(why)) => {
            tracing::info!(domain = %name, %why, "start-up: autostart domain left shut off")
        }
        Err(e) => {
            tracing::warn!(domain = %name, error = %e, "start-up: the witness does not answer; the autostart domain stays shut off (start it with virsh start once the witness answers)")
        }
    }
}
