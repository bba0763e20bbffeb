//! Re-attach: what a restarted ftd finds of a domain that runs on this host and is
//! marked for protection (or holds a secondary copy). [`inspect`] only reads:
//! `query-colo-status`, `query-status`, the block nodes, QOM objects and block
//! jobs the COLO plans ([`crate::colo::plan`]) create, and the secondary's saved
//! spec. [`judge`] turns those facts into a [`Found`] for the coordinator, and
//! the primary's [`Wiring`] is rebuilt from the node names so that leaving COLO
//! later removes exactly what the plans added. Nothing is paused or changed: a
//! COLO pair that runs keeps running, checkpoints included.

use super::{HostCtx, StepOut};
use crate::annotation::NAMESPACE;
use crate::colo::layout::DomainLayout;
use crate::colo::plan::{self, Ports, Wiring};
use crate::colo::spec::SecondarySpec;
use crate::coordinator::{Event, Found};
use crate::peer::{Request, Response};
use crate::runner::QMP_DEADLINE;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What ftd reads of a running domain at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Facts {
    /// `query-colo-status`'s mode: `primary`, `secondary` or `none`.
    pub colo_mode: String,
    /// `query-status`'s status (`running`, `paused`, `inmigrate`, ...).
    pub status: String,
    /// The domain carries the protection annotation.
    pub marked: bool,
    /// Reading the annotation failed (why): whether it is marked is unknown.
    pub mark_unreadable: Option<String>,
    /// This host keeps a secondary's overlays for it (it was made a secondary).
    pub secondary_dir: bool,
    /// The secondary's role file is there (`spec.json`, written when this host
    /// built the secondary, removed when it took over): this host's copy was
    /// last a secondary, never the domain.
    pub secondary_role: bool,
    /// Block node names.
    pub nodes: Vec<String>,
    /// QOM object ids under `/objects`.
    pub objects: Vec<String>,
    /// Block job ids.
    pub jobs: Vec<String>,
}

/// Decide what was found (pure).
pub(crate) fn judge(f: &Facts) -> Found {
    match f.colo_mode.as_str() {
        "primary" => Found::ColoPrimary,
        "secondary" => Found::ColoSecondary,
        _ if f.status == "inmigrate" && !f.marked && f.mark_unreadable.is_none() => {
            Found::StaleSecondary(
                "the secondary copy still waits for the primary's state (QEMU is inmigrate: \
             it never ran the guest)"
                    .into(),
            )
        }
        _ if f.mark_unreadable.is_some() => Found::Unreadable(format!(
            "the domain's protection mark could not be read: {}",
            f.mark_unreadable.as_deref().unwrap_or_default()
        )),
        // A secondary only by an explicit role, never by a directory alone: after
        // a takeover the survivor runs from that directory, its role file gone.
        _ if f.secondary_dir && f.secondary_role && !f.marked && f.status != "running" => {
            Found::StaleSecondary(format!(
                "the secondary copy is not in COLO (QEMU is {}: COLO ended without a \
                 takeover)",
                f.status
            ))
        }
        _ => {
            let left = leftovers(f);
            if left.is_empty() {
                Found::Plain
            } else {
                Found::Leftovers(format!(
                    "the domain runs out of COLO with COLO's {} still in place",
                    left.join(", ")
                ))
            }
        }
    }
}

/// What the primary's COLO plans add that is still there (the quorum itself stays
/// for good once the disk moved under it, so it does not count).
fn leftovers(f: &Facts) -> Vec<String> {
    let mut v = Vec::new();
    for n in [plan::REPLICATION_NODE, plan::NBD_NODE] {
        if f.nodes.iter().any(|x| x == n) {
            v.push(format!("block node {n}"));
        }
    }
    for o in plan::PRIMARY_OBJECTS {
        if f.objects.iter().any(|x| x == o) {
            v.push(format!("object {o}"));
        }
    }
    for j in [plan::SYNC_JOB, plan::PIVOT_JOB] {
        if f.jobs.iter().any(|x| x == j) {
            v.push(format!("block job {j}"));
        }
    }
    v
}

/// The generation of the newest quorum the plans created (`ftvirt-quorum<N>`).
pub(crate) fn quorum_gen(nodes: &[String]) -> Option<u32> {
    nodes
        .iter()
        .filter_map(|n| n.strip_prefix("ftvirt-quorum")?.parse().ok())
        .max()
}

/// Where the secondary's host keeps the spec it was built from.
pub(crate) fn spec_path(ctx: &HostCtx, name: &str) -> Result<PathBuf, String> {
    Ok(secondary_dir(ctx, name)?.join("spec.json"))
}

/// The directory of a secondary's overlays on this host (checked to stay under
/// the overlay directory).
pub(crate) fn secondary_dir(ctx: &HostCtx, name: &str) -> Result<PathBuf, String> {
    super::overlay::domain_dir(&ctx.overlay_dir, name, "secondary")
}

/// Does `p` exist (a path that could not be made does not)?
pub(crate) async fn exists(p: Result<PathBuf, String>) -> bool {
    match p {
        Ok(p) => tokio::fs::metadata(p).await.is_ok(),
        Err(_) => false,
    }
}

/// Write `bytes` to `p`, readable by root only (the spec holds both of the
/// domain's definitions; only ftd reads it).
async fn write_private(p: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::AsyncWriteExt;
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(p)
        .await?;
    // An older file keeps its mode through open: set it.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .await?;
    f.write_all(bytes).await?;
    f.flush().await
}

/// Keep the spec next to the secondary's overlays: a restarted ftd needs it to
/// leave a proper definition behind if this secondary takes over.
pub(crate) async fn save_spec(ctx: &HostCtx, name: &str, spec: &SecondarySpec) {
    let r = match (spec_path(ctx, name), serde_json::to_vec(spec)) {
        (Ok(p), Ok(bytes)) => write_private(&p, &bytes)
            .await
            .map_err(|e| format!("{}: {e}", p.display())),
        (Err(e), _) => Err(e),
        (_, Err(e)) => Err(e.to_string()),
    };
    if let Err(e) = r {
        tracing::warn!(domain = name, error = %e, "secondary spec not saved (a restarted ftd will ask the primary for it)");
    }
}

async fn load_spec(ctx: &HostCtx, name: &str) -> Option<SecondarySpec> {
    let p = spec_path(ctx, name).ok()?;
    let bytes = tokio::fs::read(&p).await.ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(domain = name, path = %p.display(), error = %e, "secondary spec unreadable");
            None
        }
    }
}

/// The secondary's spec: saved on this host, or else asked of the primary.
async fn secondary_spec(ctx: &HostCtx, name: &str) -> Option<SecondarySpec> {
    if let Some(s) = load_spec(ctx, name).await {
        return Some(s);
    }
    let r = ctx
        .peer
        .request(
            Request::SecondarySpec {
                domain: name.to_string(),
            },
            Duration::from_secs(10),
        )
        .await;
    match r {
        Ok(Response::SecondarySpec(s)) => {
            save_spec(ctx, name, &s).await;
            Some(*s)
        }
        other => {
            tracing::warn!(domain = name, answer = ?other.map(|_| ()), "no secondary spec: a takeover will leave no persistent definition");
            None
        }
    }
}

async fn qmp(ctx: &HostCtx, name: &str, cmd: Value) -> Result<Value, String> {
    ctx.lv
        .qmp(name, &cmd, QMP_DEADLINE)
        .await
        .map_err(|e| e.to_string())
}

/// Ids out of a list of objects (`query-named-block-nodes`, `qom-list`, ...).
fn ids(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x[key].as_str().map(String::from))
        .collect()
}

async fn read_facts(ctx: &HostCtx, name: &str) -> Result<(Facts, Value), String> {
    let colo = qmp(ctx, name, json!({"execute": "query-colo-status"})).await?;
    let status = qmp(ctx, name, json!({"execute": "query-status"})).await?;
    let nodes = qmp(
        ctx,
        name,
        json!({"execute": "query-named-block-nodes", "arguments": {"flat": true}}),
    )
    .await?;
    let objects = qmp(
        ctx,
        name,
        json!({"execute": "qom-list", "arguments": {"path": "/objects"}}),
    )
    .await?;
    let jobs = qmp(ctx, name, json!({"execute": "query-block-jobs"})).await?;
    let (marked, mark_unreadable) = match ctx.lv.metadata(name, NAMESPACE).await {
        Ok(m) => (m.is_some(), None),
        Err(e) => (false, Some(e.to_string())),
    };
    let facts = Facts {
        colo_mode: colo["mode"].as_str().unwrap_or("none").to_string(),
        status: status["status"].as_str().unwrap_or("?").to_string(),
        marked,
        mark_unreadable,
        secondary_dir: exists(secondary_dir(ctx, name)).await,
        secondary_role: exists(spec_path(ctx, name)).await,
        nodes: ids(&nodes, "node-name"),
        objects: ids(&objects, "name"),
        jobs: ids(&jobs, "device"),
    };
    Ok((facts, nodes))
}

/// The primary's wiring as the plans made it (generation `gen`), rebuilt from
/// the live domain; what only starting COLO needs (ports) is this slot's.
async fn wiring(ctx: &HostCtx, name: &str, ports: Ports, gen: u32, nodes: &Value) -> Wiring {
    let w0 = Wiring {
        device_node: String::new(),
        gen,
        base_image: PathBuf::new(),
        netdev: "hostnet0".into(),
        primary_addr: ctx.rep_addr.clone(),
        secondary_addr: ctx.peer_rep_addr.clone(),
        ports,
        checkpoint_ms: ctx.checkpoint_ms,
        compare_timeout_ms: ctx.compare_timeout_ms,
        sync_timeout: ctx.sync_timeout,
        tls: ctx.colo_tls(),
    };
    let base = nodes
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["node-name"] == w0.base().as_str())
        .and_then(|n| n["file"].as_str())
        .map(PathBuf::from);
    let netdev = match ctx.lv.xml(name, false).await {
        Ok(x) => DomainLayout::parse(&x)
            .ok()
            .and_then(|l| l.nics.first().and_then(|n| n.netdev_id())),
        Err(_) => None,
    };
    Wiring {
        device_node: w0.quorum(),
        base_image: base.unwrap_or_else(|| PathBuf::from(format!("{name}.ftvirt{gen}.qcow2"))),
        netdev: netdev.unwrap_or(w0.netdev.clone()),
        ..w0
    }
}

/// Right after ftd starts, the peer link takes a moment to come up; what is
/// decided next (protect, or check the pair with the peer) goes better with it.
/// No use waiting once the peer's host was found gone.
async fn await_peer_link(ctx: &HostCtx, bound: Duration) {
    if !ctx.peer.host_lost() {
        ctx.peer.wait_up(bound).await;
    }
}

/// [`crate::coordinator::Step::Inspect`]: read the domain's state (retried a few
/// times: libvirt may still be reconnecting to QEMU right after a host event).
pub(crate) async fn inspect(name: &str, ctx: &HostCtx) -> StepOut {
    let t0 = Instant::now();
    await_peer_link(ctx, Duration::from_secs(2)).await;
    let mut last = String::new();
    for attempt in 0..5 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let (facts, nodes) = match read_facts(ctx, name).await {
            Ok(x) => x,
            Err(e) => {
                last = e;
                continue;
            }
        };
        let found = judge(&facts);
        let gen = quorum_gen(&facts.nodes);
        tracing::info!(domain = name, ?found, colo = %facts.colo_mode, status = %facts.status,
            marked = facts.marked, quorum_gen = ?gen, ms = t0.elapsed().as_millis() as u64, "re-attach: inspected");
        let mut out = StepOut {
            event: Event::Found(found.clone()),
            wiring: None,
            spec: None,
            gen,
        };
        match found {
            // The primary's COLO (or what is left of it) runs on its slot
            // (kept in ports.json across the restart).
            Found::ColoPrimary | Found::Leftovers(_) => match ctx.ports.ports(name) {
                Ok(p) => out.wiring = Some(wiring(ctx, name, p, gen.unwrap_or(0), &nodes).await),
                Err(e) => tracing::warn!(
                    domain = name, error = %e,
                    "no COLO port slot for this domain: its COLO cannot be taken apart cleanly"
                ),
            },
            Found::ColoSecondary => out.spec = secondary_spec(ctx, name).await,
            _ => {}
        }
        return out;
    }
    StepOut {
        event: Event::Found(Found::Unreadable(last)),
        wiring: None,
        spec: None,
        gen: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(mode: &str) -> Facts {
        Facts {
            colo_mode: mode.into(),
            status: "running".into(),
            marked: true,
            nodes: vec!["libvirt-1-format".into(), "ftvirt-quorum2".into()],
            ..Facts::default()
        }
    }

    #[test]
    fn colo_mode_decides_first() {
        assert_eq!(judge(&facts("primary")), Found::ColoPrimary);
        let mut f = facts("secondary");
        (f.marked, f.secondary_dir) = (false, true);
        assert_eq!(judge(&f), Found::ColoSecondary);
    }

    #[test]
    fn a_quorum_alone_is_no_leftover_but_colo_objects_are() {
        assert_eq!(judge(&facts("none")), Found::Plain);
        let mut f = facts("none");
        f.objects = vec!["comp0".into(), "iothread900".into()];
        f.jobs = vec![plan::SYNC_JOB.into()];
        let Found::Leftovers(why) = judge(&f) else {
            panic!("{:?}", judge(&f))
        };
        assert!(
            why.contains("object comp0") && why.contains("block job ftvirt-sync"),
            "{why}"
        );
    }

    #[test]
    fn a_secondary_out_of_colo_is_stale() {
        let mut f = facts("none");
        (f.marked, f.secondary_dir, f.status) = (false, true, "inmigrate".into());
        let Found::StaleSecondary(why) = judge(&f) else {
            panic!("{:?}", judge(&f))
        };
        assert!(why.contains("inmigrate"), "{why}");
        // A survivor of a takeover keeps its overlays but is marked: not stale.
        f.marked = true;
        assert_eq!(judge(&f), Found::Plain);
        // COLO ended without a takeover: stale only by the secondary's role file.
        (f.marked, f.status) = (false, "paused".into());
        assert_eq!(judge(&f), Found::Plain);
        f.secondary_role = true;
        assert!(matches!(judge(&f), Found::StaleSecondary(_)));
    }

    #[test]
    fn a_survivor_unmarked_by_disable_is_never_stale() {
        // Took over (running, out of COLO, its disk in the overlay directory, its
        // role file removed), then `Disable` removed its mark: the domain itself.
        let mut f = facts("none");
        (f.marked, f.secondary_dir) = (false, true);
        assert_eq!(judge(&f), Found::Plain);
        // Even with a role file left behind (ftd died mid-takeover): it runs.
        f.secondary_role = true;
        assert_eq!(judge(&f), Found::Plain);
    }

    #[test]
    fn an_unreadable_mark_is_not_taken_for_no_mark() {
        let mut f = facts("none");
        (f.marked, f.secondary_dir, f.secondary_role) = (false, true, true);
        f.status = "paused".into();
        f.mark_unreadable = Some("libvirt: connection reset".into());
        let Found::Unreadable(why) = judge(&f) else {
            panic!("{:?}", judge(&f))
        };
        assert!(why.contains("connection reset"), "{why}");
    }

    #[test]
    fn the_newest_quorum_generation_is_found() {
        let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            quorum_gen(&n(&["ftvirt-quorum1", "ftvirt-quorum3", "ftvirt-base3"])),
            Some(3)
        );
        assert_eq!(quorum_gen(&n(&["libvirt-1-format"])), None);
    }
}
