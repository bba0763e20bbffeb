//! The secondary's creation on this host (`Step::CreateSecondary`): ask the
//! primary for its spec, check it against what this host knows
//! ([`crate::colo::validate`]), build the definition from it (the allow-list of
//! [`crate::colo::definition`]), check that this host can run it (its memory,
//! a KVM guest's CPU: [`crate::colo::fit`]), and only then create the images,
//! start the secondary and export its disk. A spec that fails any check changes
//! nothing here: no file, no domain. Nor on the primary: it changes its disk
//! and definition only in `Step::Sync`, after this step reported the secondary
//! ready.

use super::HostCtx;
use crate::colo::fit::{self, CpuCheck, Unfit};
use crate::colo::layout::DomainLayout;
use crate::colo::plan;
use crate::colo::secondary::{secondary_xml, SecondaryParams};
use crate::colo::spec::SecondarySpec;
use crate::colo::validate;
use crate::libvirt::CpuFit;
use crate::peer::{Request, Response};
use crate::runner::QMP_DEADLINE;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

pub(super) fn overlay_paths(
    ctx: &HostCtx,
    name: &str,
) -> Result<(PathBuf, PathBuf, PathBuf, PathBuf), String> {
    let d = super::reattach::secondary_dir(ctx, name)?;
    Ok((
        d.join("parent0.qcow2"),
        d.join("active.qcow2"),
        d.join("hidden.qcow2"),
        d.join("serial.log"),
    ))
}

/// What this host knows that the primary's spec must agree with.
fn local_facts(ctx: &HostCtx) -> validate::Local {
    validate::Local {
        peer_addr: ctx.peer_rep_addr.parse().ok(),
        port_bases: ctx.ports.bases(),
    }
}

/// Secondary: fetch the spec, create images, start the secondary, export its disk.
pub(super) async fn create_secondary(name: &str, ctx: &HostCtx) -> Result<SecondarySpec, String> {
    let resp = ctx
        .peer
        .request(
            Request::SecondarySpec {
                domain: name.to_string(),
            },
            Duration::from_secs(30),
        )
        .await
        .map_err(|e| format!("asking the primary for the domain's layout: {e}"))?;
    let Response::SecondarySpec(spec) = resp else {
        return Err(format!(
            "the primary answered {resp:?} instead of the layout"
        ));
    };
    let spec = *spec;
    // Checked, and the definition built, before anything is touched here: a
    // spec with a bad value changes nothing on this host.
    let refused = |e: String| {
        // Layout errors quote the peer's values.
        let e = crate::peer::inbound::text(&e);
        tracing::warn!(domain = name, error = %e, "the primary's spec is refused; nothing was created");
        format!("the primary's spec is refused: {e}")
    };
    validate::spec(&spec, name, &local_facts(ctx)).map_err(|e| refused(e.to_string()))?;
    let (parent, active, hidden, serial) = overlay_paths(ctx, name).map_err(refused)?;
    let primary_addr = validate::primary_addr(&spec.primary_addr, &local_facts(ctx))
        .map_err(|e| refused(e.to_string()))?;
    let params = SecondaryParams {
        primary_addr: primary_addr.to_string(),
        mirror_port: spec.ports.mirror,
        compare_port: spec.ports.compare,
        parent: parent.clone(),
        active: active.clone(),
        hidden: hidden.clone(),
        serial_log: serial,
        trusted_dirs: ctx.trusted_dirs.clone(),
        tls: ctx.colo_tls(),
    };
    let built = secondary_xml(&spec.primary_live_xml, name, &spec.disk, &params)
        .map_err(|e| refused(e.to_string()))?;
    if !built.dropped.is_empty() {
        tracing::info!(domain = name, dropped = %built.dropped.join(" "), "not taken from the primary's definition");
    }
    host_fits(ctx, name, &built.xml).await.map_err(|e| {
        tracing::warn!(domain = name, error = %e, "this host cannot hold the secondary; nothing was created");
        e
    })?;
    let secondary_dir = super::reattach::secondary_dir(ctx, name)?;
    // A stale copy from an earlier life of this host must not be running (a
    // transient one then has no definition left).
    let _ = ctx.lv.destroy(name).await;
    // Never over the disk of a copy that took over here (its definition
    // still points into the overlay directory).
    if let Some(why) = super::scratch::kept_for(ctx, name, &secondary_dir).await {
        return Err(format!(
            "{why}; a secondary is not built over it: move that copy's disk out \
             (virsh blockcopy, or copy it while the domain is shut off, then edit the \
             definition) or undefine it, then protect again"
        ));
    }
    for p in [&parent, &active, &hidden] {
        ctx.os.create_image(p, spec.disk_size).await?;
    }
    ctx.lv
        .create(&built.xml)
        .await
        .map_err(|e| format!("starting the secondary: {e}"))?;
    let st = ctx
        .lv
        .qmp(name, &json!({"execute": "query-status"}), QMP_DEADLINE)
        .await
        .map_err(|e| e.to_string())?;
    if st["status"] != "inmigrate" {
        return Err(format!(
            "the secondary is {} instead of waiting for the primary (inmigrate)",
            st["status"]
        ));
    }
    super::steps::plan_run(
        ctx,
        name,
        &plan::secondary_export(&spec.ports, &ctx.rep_addr, ctx.colo_tls().as_ref()),
    )
    .await
    .map_err(|e| format!("NBD export: {e}"))?;
    super::reattach::save_spec(ctx, name, &spec).await;
    Ok(spec)
}

/// Can this host run the secondary whose definition is `xml`: hold the
/// guest's RAM and COLO's cache of it, and for a KVM guest run its CPU? Asked
/// before anything is created; a refusal names the numbers or the features.
async fn host_fits(ctx: &HostCtx, name: &str, xml: &str) -> Result<(), String> {
    let guest_kib = DomainLayout::parse(xml)
        .map_err(|e| format!("the secondary's definition: {e}"))?
        .memory_kib;
    let available = ctx.os.mem_available().await.map_err(|e| {
        format!(
            "host {}: cannot tell the memory available for the secondary of {name}: {e}",
            ctx.host
        )
    })?;
    ctx.secondary_memory
        .check(&ctx.host, name, guest_kib, available)
        .map_err(|e| e.to_string())?;
    match fit::cpu_check(&ctx.host, name, xml).map_err(|e| e.to_string())? {
        CpuCheck::Skip(why) => {
            tracing::debug!(domain = name, %why, "the guest's CPU is not compared with this host's")
        }
        CpuCheck::Compare(cpu) => match ctx.lv.compare_cpu(name, &cpu).await {
            Ok(CpuFit::Runs) => {
                tracing::info!(domain = name, "this host runs the guest's CPU")
            }
            Ok(CpuFit::Incompatible(why)) => {
                return Err(Unfit::CpuIncompatible {
                    host: ctx.host.clone(),
                    domain: name.into(),
                    why,
                }
                .to_string())
            }
            Err(e) => {
                return Err(format!(
                    "comparing domain {name}'s CPU with host {}'s: {e}",
                    ctx.host
                ))
            }
        },
    }
    Ok(())
}
