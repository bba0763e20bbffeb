//! The coordinator's steps, executed against libvirt, QEMU and the peer. Each
//! returns `StepDone` or `StepFailed` with a message that names what failed.

use super::{HostCtx, StepOut};
use crate::annotation;
use crate::colo::definition::LocalFiles;
use crate::colo::layout::DomainLayout;
use crate::colo::plan::{self, Ports, Wiring};
use crate::colo::spec::{repoint_disk, takeover_definition, SecondarySpec};
use crate::coordinator::{Event, Step};
use crate::inspect;
use crate::runner::{self, QMP_DEADLINE};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a step works with (a copy of the task's, so the step runs on its own).
pub(crate) struct StepCtx {
    pub name: String,
    pub ctx: HostCtx,
    /// The protection attempt's generation (node names are unique per attempt).
    pub gen: u32,
    pub wiring: Option<Wiring>,
    /// The secondary's spec from the primary (the domain's ports among it).
    pub spec: Option<SecondarySpec>,
    /// Cancelled when the attempt the step serves is given up: Sync and
    /// StartColo then send no further command (their plans end at the next op).
    pub stop: CancellationToken,
}

pub(crate) async fn run(step: Step, sc: StepCtx) -> StepOut {
    let StepCtx {
        name,
        ctx,
        gen,
        wiring,
        spec,
        stop,
    } = sc;
    let t0 = std::time::Instant::now();
    let mut out = StepOut {
        event: Event::StepDone(step),
        wiring: None,
        spec: None,
        gen: None,
    };
    let r: Result<(), String> = match step {
        Step::Sync => {
            // The wiring comes back even when the sync fails after the pivot:
            // the Undo that follows needs to know what it added.
            let (w, r) = sync(&name, &ctx, gen, &stop).await;
            out.wiring = w;
            r
        }
        // With a witness, the record names the pair before COLO starts: only
        // the partner may take it over (`crate::witness::claim`).
        Step::StartColo => match &wiring {
            Some(w) => match probe_nbd(&ctx, w).await {
                Ok(()) => match super::claim::pair(&ctx, &name).await {
                    Ok(()) => plan_run_until(&ctx, &name, &plan::start_colo(w), &stop).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
            None => Err("no wiring: the disk sync did not run".into()),
        },
        Step::LeaveColo => match &wiring {
            Some(w) => {
                cut_if_peer_lost(&ctx, &name, &w.ports).await;
                plan_run(&ctx, &name, &plan::leave_colo(w)).await
            }
            None => qmp(&ctx, &name, "cont").await.or(Ok(())),
        },
        Step::Undo => match &wiring {
            Some(w) => {
                cut_if_peer_lost(&ctx, &name, &w.ports).await;
                plan_run(&ctx, &name, &plan::undo(w)).await
            }
            None => qmp(&ctx, &name, "cont").await.or(Ok(())),
        },
        Step::StopPrimary => qmp(&ctx, &name, "stop").await,
        Step::Freeze => super::fence::set_links(&name, &ctx, false).await,
        Step::Thaw => super::fence::set_links(&name, &ctx, true).await,
        Step::DestroyPrimary => ctx.lv.destroy(&name).await.map_err(|e| e.to_string()),
        Step::CreateSecondary => super::create::create_secondary(&name, &ctx)
            .await
            .map(|s| out.spec = Some(s)),
        Step::DestroySecondary => super::scratch::destroy_secondary(&name, &ctx).await,
        Step::TakeOver => {
            // The old primary is gone, or stopped for a planned switch-over: its
            // stream is of no use any more, and may be what QEMU waits on. The
            // ports are the primary's (from its spec), never this host's own.
            match &spec {
                Some(s) => cut_peer(&ctx, &name, &s.ports).await,
                None => {
                    tracing::warn!(domain = %name, "no spec from the primary: QEMU's connections to it are not cut")
                }
            }
            take_over(&name, &ctx, spec.as_ref()).await
        }
        // Answered by what it found, not by StepDone.
        Step::Inspect => return super::reattach::inspect(&name, &ctx).await,
    };
    match &r {
        Ok(()) => {
            tracing::info!(domain = %name, ?step, ms = t0.elapsed().as_millis() as u64, "step done")
        }
        Err(e) => tracing::warn!(domain = %name, ?step, error = %e, "step failed"),
    }
    if let Err(e) = r {
        out.event = Event::StepFailed(step, e);
    }
    out
}

async fn plan_run_until(
    ctx: &HostCtx,
    name: &str,
    p: &[plan::Op],
    stop: &CancellationToken,
) -> Result<(), String> {
    runner::run_until(&*ctx.lv, name, p, stop)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

pub(super) async fn plan_run(ctx: &HostCtx, name: &str, p: &[plan::Op]) -> Result<(), String> {
    runner::run(&*ctx.lv, name, p)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn qmp(ctx: &HostCtx, name: &str, cmd: &str) -> Result<(), String> {
    ctx.lv
        .qmp(name, &json!({"execute": cmd}), QMP_DEADLINE)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The live layout, checked for replication.
async fn layout(ctx: &HostCtx, name: &str) -> Result<(String, DomainLayout), String> {
    let live = ctx.lv.xml(name, false).await.map_err(|e| e.to_string())?;
    let l = DomainLayout::parse(&live).map_err(|e| e.to_string())?;
    l.check_replicable(&live)
        .map_err(|e| format!("cannot protect domain {name}: {e}"))?;
    Ok((live, l))
}

/// Primary: pivot the disk under a fresh quorum, point the persistent definition
/// at the new image, then mirror everything into the secondary's export. The
/// wiring comes back whenever it was made, even if a later part failed.
async fn sync(
    name: &str,
    ctx: &HostCtx,
    gen: u32,
    stop: &CancellationToken,
) -> (Option<Wiring>, Result<(), String>) {
    let w = match wire(name, ctx, gen).await {
        Ok(w) => w,
        Err(e) => return (None, Err(e)),
    };
    let r = pivot_and_mirror(name, ctx, &w, stop).await;
    (Some(w), r)
}

/// What the sync and the plans after it work with; the new base image created.
/// The domain takes its COLO port slot here (if it has none yet): this host
/// wires it as the primary.
async fn wire(name: &str, ctx: &HostCtx, gen: u32) -> Result<Wiring, String> {
    let ports = ctx.ports.ports(name).map_err(|e| no_ports(name, &e))?;
    let (_, l) = layout(ctx, name).await?;
    let disk = &l.disks[0];
    let (node, size) = inspect::disk_node(&*ctx.lv, name, disk)
        .await
        .map_err(|e| e.to_string())?;
    // Beside the file the guest writes to now, as its definition says.
    let source = super::claim::first_disk(ctx, name)
        .await
        .unwrap_or_else(|| disk.source.clone());
    let dir = source
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/var/lib/libvirt/images"));
    // Never over an existing file: after a cold boot the disk's node names say
    // nothing of earlier generations, and the definition may name one of them.
    let mut gen = plan::next_gen(&node, gen);
    let mut base_image = dir.join(format!("{name}.ftvirt{gen}.qcow2"));
    while tokio::fs::symlink_metadata(&base_image).await.is_ok() && gen < u32::MAX {
        gen += 1;
        base_image = dir.join(format!("{name}.ftvirt{gen}.qcow2"));
    }
    ctx.os.create_image(&base_image, size).await?;
    Ok(Wiring {
        device_node: node,
        gen,
        base_image,
        netdev: l.nics[0].netdev_id().unwrap_or_else(|| "hostnet0".into()),
        primary_addr: ctx.rep_addr.clone(),
        secondary_addr: ctx.peer_rep_addr.clone(),
        ports,
        checkpoint_ms: ctx.checkpoint_ms,
        compare_timeout_ms: ctx.compare_timeout_ms,
        sync_timeout: ctx.sync_timeout,
        tls: ctx.colo_tls(),
    })
}

/// Pivot the disk under the new quorum, point the definition at the new image,
/// then mirror everything into the secondary's export.
async fn pivot_and_mirror(
    name: &str,
    ctx: &HostCtx,
    w: &Wiring,
    stop: &CancellationToken,
) -> Result<(), String> {
    let (node, base_image) = (&w.device_node, &w.base_image);
    let dir = base_image.parent().unwrap_or(Path::new("/"));
    plan_run_until(ctx, name, &plan::pivot(w), stop)
        .await
        .map_err(|e| format!("moving the disk under a quorum: {e}"))?;
    // The next boot must use the image the guest now writes to.
    let before = super::claim::first_disk(ctx, name).await;
    match ctx.lv.xml(name, true).await {
        Ok(inactive) => match repoint_disk(&inactive, base_image) {
            Ok(x) => match ctx.lv.define(&x).await {
                Err(e) => {
                    tracing::warn!(domain = name, error = %e, "could not point the definition at the new image")
                }
                // A survivor's disk the guest no longer writes to.
                Ok(_) => {
                    let survivors = super::survivor::disk_dir(&ctx.overlay_dir, name);
                    if let Some(f) = before.zip(survivors.ok()).and_then(|(b, survivors)| {
                        super::survivor::drop_replaced(&survivors, &b, base_image)
                    }) {
                        tracing::info!(domain = name, file = %f.display(), "removed the survivor's disk the new base image replaces");
                    }
                }
            },
            Err(e) => tracing::warn!(domain = name, error = %e, "definition not updated"),
        },
        Err(e) => tracing::warn!(domain = name, error = %e, "no persistent definition to update"),
    }
    remove_old_base(ctx, name, node, dir).await;
    probe_nbd(ctx, w).await?;
    plan_run_until(ctx, name, &plan::sync(w), stop).await
}

/// How long the peer's NBD export may take to accept a connection.
const NBD_PROBE: Duration = Duration::from_millis(1000);

/// QEMU opens an NBD connection (drive-mirror's target, the replication node)
/// in its main loop, blocking: to a peer that just died, that freezes the guest
/// and every QMP command until TCP gives up (over a minute, seen in the fault
/// matrix, before ftd's heartbeat had even noticed the peer gone). So ftd first
/// connects itself, with a short time-out; only a peer that answers now is
/// handed to QEMU. (QEMU's NBD server drops the probe's half-open session.)
async fn probe_nbd(ctx: &HostCtx, w: &Wiring) -> Result<(), String> {
    let addr = format!("{}:{}", w.secondary_addr, w.ports.nbd);
    ctx.os
        .probe_tcp(&addr, NBD_PROBE)
        .await
        .map_err(|e| format!("the secondary's NBD export: {e}"))
}

fn no_ports(name: &str, why: &str) -> String {
    format!("domain {name}: no COLO ports on this host: {why}")
}

/// After a pivot away from an earlier protection's quorum (`old_node`): that
/// protection's base image, which nothing uses once QEMU dropped its node (the
/// pivot plan did). Kept if the node is still there.
async fn remove_old_base(ctx: &HostCtx, name: &str, old_node: &str, dir: &Path) {
    let Some(old) = old_node.strip_prefix("ftvirt-quorum") else {
        return;
    };
    let node = format!("ftvirt-base{old}");
    let nodes = ctx
        .lv
        .qmp(
            name,
            &json!({"execute": "query-named-block-nodes"}),
            QMP_DEADLINE,
        )
        .await;
    let still_there = match &nodes {
        Ok(v) => v
            .as_array()
            .into_iter()
            .flatten()
            .any(|n| n["node-name"] == node.as_str()),
        Err(_) => true,
    };
    let file = dir.join(format!("{name}.ftvirt{old}.qcow2"));
    if still_there {
        tracing::warn!(domain = name, %node, file = %file.display(), "the earlier protection's base image is still in use; kept");
        return;
    }
    match tokio::fs::remove_file(&file).await {
        Ok(()) => {
            tracing::info!(domain = name, file = %file.display(), "removed the earlier protection's base image")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(domain = name, file = %file.display(), error = %e, "could not remove the earlier protection's base image")
        }
    }
}

/// Primary: what the secondary's host needs (asked by the peer), on `ports`
/// (the domain's slot on this host, see [`super::task`]'s `Spec`).
pub(crate) async fn secondary_spec(
    name: &str,
    ctx: &HostCtx,
    ports: Result<Ports, String>,
) -> Result<SecondarySpec, String> {
    let ports = ports.map_err(|e| no_ports(name, &e))?;
    let (live, l) = layout(ctx, name).await?;
    let disk = &l.disks[0];
    let (_, size) = inspect::disk_node(&*ctx.lv, name, disk)
        .await
        .map_err(|e| e.to_string())?;
    let dev = inspect::disk_device(&*ctx.lv, name, disk)
        .await
        .map_err(|e| e.to_string())?;
    let inactive = ctx.lv.xml(name, true).await.map_err(|e| e.to_string())?;
    Ok(SecondarySpec {
        primary_live_xml: live,
        primary_inactive_xml: inactive,
        disk: dev,
        disk_size: size,
        ports,
        primary_addr: ctx.rep_addr.clone(),
    })
}

/// Drop QEMU's connections to the peer host on the domain's COLO ports, so that
/// nothing in QEMU waits on a host that will never answer (see [`sockets`]).
async fn cut_peer(ctx: &HostCtx, name: &str, p: &Ports) {
    let ports = [p.migration, p.nbd, p.mirror, p.compare];
    match ctx.os.cut_sockets(&ctx.peer_rep_addr, &ports).await {
        Ok(n) => {
            tracing::info!(domain = name, sockets = n, peer = %ctx.peer_rep_addr, "QEMU's connections to the peer dropped")
        }
        Err(e) => {
            tracing::warn!(domain = name, error = %e, "QEMU's connections to the peer could not be dropped: QEMU may wait on them until TCP gives up")
        }
    }
}

/// Leaving COLO (or undoing an attempt) because the peer is gone, not for a
/// planned stop with the peer there: cut its connections first.
async fn cut_if_peer_lost(ctx: &HostCtx, name: &str, ports: &Ports) {
    if !ctx.peer.is_up() {
        cut_peer(ctx, name, ports).await;
    }
}

/// Secondary: fail over, then keep a normal persistent definition on its own disk.
async fn take_over(name: &str, ctx: &HostCtx, spec: Option<&SecondarySpec>) -> Result<(), String> {
    plan_run(ctx, name, &plan::take_over()).await?;
    if let Some(spec) = spec {
        let built = survivor_disk(ctx, name).await.and_then(|disk| {
            // Its console log beside its disk, on this host.
            let log = disk.with_file_name(format!("{name}.serial.log"));
            let local = LocalFiles {
                trusted_dirs: &ctx.trusted_dirs,
                serial_log: &log,
            };
            takeover_definition(&spec.primary_inactive_xml, name, &disk, &local)
                .map_err(|e| e.to_string())
        });
        match built {
            Ok(b) => {
                if !b.dropped.is_empty() {
                    tracing::info!(domain = name, dropped = %b.dropped.join(" "), "not taken from the primary's definition");
                }
                if let Err(e) = ctx.lv.define(&b.xml).await {
                    tracing::warn!(domain = name, error = %e, "could not define the survivor's domain");
                }
            }
            Err(e) => tracing::warn!(domain = name, error = %e, "survivor definition not written"),
        }
        mark_survivor(name, ctx, spec).await;
    }
    // This host runs the domain now: a restarted ftd must not take it for a
    // secondary (its overlays stay: the survivor's disk is among them).
    if let Ok(p) = super::reattach::spec_path(ctx, name) {
        let _ = tokio::fs::remove_file(p).await;
    }
    Ok(())
}

/// The guest runs on the secondary's parent image now: move it out of the
/// scratch directory (`survivor.rs`); where it is now (`Err`: the name makes
/// no path under the overlay directory).
async fn survivor_disk(ctx: &HostCtx, name: &str) -> Result<PathBuf, String> {
    let (parent, ..) = super::create::overlay_paths(ctx, name)?;
    let dir = super::survivor::disk_dir(&ctx.overlay_dir, name)?;
    let (from, n, qemu) = (parent.clone(), name.to_string(), ctx.qemu.clone());
    let moved =
        tokio::task::spawn_blocking(move || super::survivor::move_out(&from, &dir, &n, &qemu))
            .await;
    match moved {
        Ok(Ok(to)) => {
            tracing::info!(domain = name, from = %parent.display(), to = %to.display(), "the survivor's disk moved out of the scratch directory");
            Ok(to)
        }
        Ok(Err(why)) => {
            tracing::warn!(domain = name, disk = %parent.display(), %why, "the survivor's disk stays in the scratch directory (kept there while its definition uses it)");
            Ok(parent)
        }
        Err(e) => {
            tracing::warn!(domain = name, error = %e, "moving the survivor's disk failed");
            Ok(parent)
        }
    }
}

/// The survivor keeps the domain's protection mark, pointing at its own peer (the
/// old primary's mark named this host), so that it is protected again after ftd
/// or this host restart.
async fn mark_survivor(name: &str, ctx: &HostCtx, spec: &SecondarySpec) {
    let Ok(Some(mut p)) = annotation::from_domain_xml(&spec.primary_live_xml) else {
        return;
    };
    p.peer = ctx.peer.peer_host().to_string();
    let el = annotation::to_element(&p);
    match ctx
        .lv
        .set_metadata(name, Some(&el), annotation::KEY, annotation::NAMESPACE)
        .await
    {
        Ok(()) => tracing::info!(domain = name, annotation = %el, "survivor marked"),
        Err(e) => tracing::warn!(domain = name, error = %e, "could not mark the survivor"),
    }
}
