//! The domain task's part in the witness's claims (`crate::witness::claim` decides
//! them): which disk this host's copy uses, the pairing record written before COLO
//! starts (in `StartColo`), and the go-live claim started for
//! [`Action::Arbitrate`](crate::coordinator::Action::Arbitrate).

use super::HostCtx;
use crate::arbiter::Role;
use crate::colo::layout::DomainLayout;
use crate::coordinator::Verdict;
use crate::witness::claim::{self, Claim, Claimed};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

/// The disk of this host's copy, as the record names it: the primary's first disk
/// (from its persistent definition, which follows the disk's moves), the path
/// the secondary's parent image gets at takeover (`survivor.rs`).
pub(super) async fn disk(ctx: &HostCtx, name: &str, role: Role) -> Option<PathBuf> {
    match role {
        Role::Secondary => super::survivor::disk_dir(&ctx.overlay_dir, name)
            .ok()
            .map(|d| super::survivor::planned(&d, name)),
        Role::Primary => first_disk(ctx, name).await,
    }
}

/// The first disk of `name`'s definition: the persistent one where there is
/// one (after a protection's pivot or a takeover it names the file the guest
/// writes to, which the live XML does not), else the live one.
pub(super) async fn first_disk(ctx: &HostCtx, name: &str) -> Option<PathBuf> {
    if let Ok(Some(xml)) = ctx.lv.persistent_xml(name).await {
        if let Ok(src) = crate::colo::spec::disk_source(&xml) {
            return Some(PathBuf::from(src));
        }
    }
    let xml = ctx.lv.xml(name, false).await.ok()?;
    let layout = DomainLayout::parse(&xml).ok()?;
    layout.disks.into_iter().next().map(|d| d.source)
}

fn request(ctx: &HostCtx, name: &str, disk: Option<PathBuf>) -> Claim {
    Claim {
        domain: name.to_string(),
        me: ctx.host.clone(),
        peer: ctx.peer.peer_host().to_string(),
        disk,
    }
}

/// This host's copy of `name` is about to start (libvirt's `prepare`, or ftd's
/// start-up starting an autostart domain): take the record for it
/// ([`claim::plan_start_claim`]). `None` without a witness (nothing to take).
/// The claim names no disk: libvirt is not asked (during `prepare` it runs the
/// hook holding the domain, and a call about it would wait for the hook); the
/// record keeps its disk until protection pairs this copy's.
pub async fn start(
    ctx: &HostCtx,
    name: &str,
) -> Option<Result<Claimed, crate::witness::WitnessError>> {
    let w = ctx.witness.as_ref()?;
    Some(claim::start(&**w, &request(ctx, name, None)).await)
}

/// `StartColo`, before anything changes in QEMU: the record names this host the
/// holder and the peer the partner (the only host that may take it over). Without
/// a witness there is nothing to write.
pub(super) async fn pair(ctx: &HostCtx, name: &str) -> Result<(), String> {
    let Some(w) = &ctx.witness else {
        return Ok(());
    };
    let c = request(ctx, name, disk(ctx, name, Role::Primary).await);
    match claim::pair(&**w, &c).await {
        Ok(Claimed::Won(v)) => {
            let epoch = v.map(|v| v.value.epoch);
            tracing::info!(domain = name, ?epoch, partner = %c.peer, "witness: record names this host and its partner");
            Ok(())
        }
        Ok(Claimed::Lost(why)) => Err(why),
        Err(e) => Err(format!(
            "the witness's record could not be written, so COLO does not start (the \
             domain runs on unprotected and protection is tried again): {e}"
        )),
    }
}

/// Start the go-live claim of a copy in `role`; its verdicts arrive on the
/// receiver. A secondary whose primary is unreachable claims a little later, so
/// that a primary cut off from it (but alive) wins.
pub(super) fn go_live(
    ctx: &HostCtx,
    name: &str,
    role: Role,
    peer_up: bool,
) -> Option<mpsc::Receiver<Verdict>> {
    let w = ctx.witness.clone()?;
    let delay = if role == Role::Secondary && !peer_up {
        ctx.claim_delay
    } else {
        Duration::ZERO
    };
    let c = request(ctx, name, None);
    let (ctx, name) = (ctx.clone(), name.to_string());
    let disk = async move { disk(&ctx, &name, role).await };
    Some(claim::spawn_go_live(w, c, role, delay, disk))
}
