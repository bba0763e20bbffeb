//! The secondary's overlay directory (`<overlay-dir>/<domain>/secondary`) is
//! scratch only while no persistent definition of the domain on this host uses a
//! file in it. A takeover moves the survivor's disk out of it (`survivor.rs`),
//! but where that rename is impossible, and for a survivor of an older ftd, the
//! definition points at `parent0.qcow2` there: that file is then the domain's
//! only disk. Destroying a
//! secondary ([`destroy_secondary`]) and creating its images ask [`kept_for`]
//! first and leave the directory alone when it may hold the domain's disk: when
//! the witness's record does not name another host's running copy.

use super::reattach::secondary_dir as dir;
use super::HostCtx;
use crate::libvirt::LibvirtError;
use crate::runner::QMP_DEADLINE;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// Does `xml` name a file inside `dir` (as a disk source, a backing file, a
/// serial log, anything)? Checked on the text, so that a definition this
/// module cannot parse still counts: keeping scratch files costs only disk
/// space, deleting a disk loses the domain.
pub(super) fn names_a_file_in(xml: &str, dir: &Path) -> bool {
    let d = dir.to_string_lossy();
    let d = d.trim_end_matches('/');
    ["'", "\""]
        .iter()
        .any(|q| xml.contains(&format!("{q}{d}/")))
}

/// Why the files in `dir` must be kept for `name`, if they must: its persistent
/// definition on this host uses one of them (or cannot be read, which is taken
/// to mean it might) and that definition may be the domain's copy. Whose copy is
/// the domain, the witness's record says: a definition here is stale once the
/// record names another host's running copy (after a switch-over back, say).
/// Without a witness nothing tells, and the files go as they always did (a
/// running survivor is still never destroyed: `runs_as_the_domain` in the steps;
/// docs/witness.md). `None`: nothing to keep.
pub(super) async fn kept_for(ctx: &HostCtx, name: &str, dir: &Path) -> Option<String> {
    match definition_uses(ctx, name, dir).await {
        Ok(false) => return None,
        Ok(true) => {}
        Err(why) => return Some(why),
    }
    let used = format!(
        "the definition of {name} on this host uses a file in {} (the disk of a copy \
         that took over here)",
        dir.display()
    );
    let Some(w) = &ctx.witness else {
        tracing::warn!(domain = name, dir = %dir.display(), "{used}; without a witness nothing says whether that copy is stale: its files are reused as scratch");
        return None;
    };
    match w.read(name).await {
        Ok(Some(r)) if r.value.holder != ctx.host && r.value.running => {
            tracing::info!(domain = name, holder = %r.value.holder, "{used}; the witness's record names the copy on {}: this definition is stale, its files are scratch", r.value.holder);
            None
        }
        Ok(Some(r)) => Some(format!(
            "{used}, and the witness's record names this host's copy (holder {}, epoch \
             {}): it is the domain's disk, not scratch",
            r.value.holder, r.value.epoch
        )),
        Ok(None) => Some(format!(
            "{used}, and the witness has no record of {name} to say it is stale"
        )),
        Err(e) => Some(format!(
            "{used}, and the witness does not answer ({e}) to say whether it is stale"
        )),
    }
}

/// Does `name`'s persistent definition on this host use a file in `dir`? `Err`
/// (why) when it cannot be read.
pub(super) async fn definition_uses(ctx: &HostCtx, name: &str, dir: &Path) -> Result<bool, String> {
    match ctx.lv.persistent_xml(name).await {
        Ok(Some(xml)) => Ok(names_a_file_in(&xml, dir)),
        Ok(None) | Err(LibvirtError::NoDomain(_)) => Ok(false),
        Err(e) => Err(format!(
            "the definition of {name} could not be read ({e}), so whether it uses a \
             file in {} is unknown",
            dir.display()
        )),
    }
}

/// Secondary: destroy the secondary and remove its images. A secondary whose
/// QEMU just died may still be running in libvirt's eyes while libvirt cleans
/// up (its destroy then fails): the images go once libvirt says it is gone.
pub(super) async fn destroy_secondary(name: &str, ctx: &HostCtx) -> Result<(), String> {
    if let Some(why) = runs_as_the_domain(ctx, name).await {
        return Err(format!("{name} was not destroyed: {why}"));
    }
    let destroyed = ctx.lv.destroy(name).await;
    let t0 = tokio::time::Instant::now();
    loop {
        match ctx.lv.state(name).await {
            Ok(crate::libvirt::DomState::ShutOff)
            | Err(crate::libvirt::LibvirtError::NoDomain(_)) => break,
            _ if t0.elapsed() > Duration::from_secs(20) => {
                return Err(match destroyed {
                    Err(e) => e.to_string(),
                    Ok(()) => format!("the secondary of {name} still runs 20 s after its destroy"),
                })
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    if let Err(e) = &destroyed {
        tracing::info!(domain = name, error = %e, "the secondary went away by itself");
    }
    let dir = dir(ctx, name)?;
    if let Some(why) = kept_for(ctx, name, &dir).await {
        tracing::warn!(domain = name, dir = %dir.display(), %why, "overlays kept");
        return Ok(());
    }
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("removing {}: {e}", dir.display())),
    }
}

/// Why `name`, running here, is the domain's copy rather than a secondary: it
/// runs out of COLO (`query-colo-status`: none, `query-status`: running). A
/// secondary never does: before COLO it waits paused (`inmigrate`), in COLO its
/// mode is `secondary`, and when COLO fails under it QEMU keeps it stopped until
/// a failover; only a takeover (ftd's, after winning the record) lets it run
/// alone, wherever its disk is now (`survivor.rs`). `None` when it is a
/// secondary, or not running.
async fn runs_as_the_domain(ctx: &HostCtx, name: &str) -> Option<String> {
    let ask = |cmd: &'static str| async move {
        ctx.lv
            .qmp(name, &json!({ "execute": cmd }), QMP_DEADLINE)
            .await
            .ok()
    };
    let colo = ask("query-colo-status").await?;
    let status = ask("query-status").await?;
    if colo["mode"] != "none" || status["status"] != "running" {
        return None;
    }
    Some(
        "it runs out of COLO: it is the domain's copy (it took over here), not a \
         secondary"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_definition_using_the_directory_is_seen_whatever_the_quotes() {
        let d = Path::new("/srv/overlays/g/secondary");
        let survivor = "<disk><source file='/srv/overlays/g/secondary/parent0.qcow2'/></disk>";
        assert!(names_a_file_in(survivor, d));
        assert!(names_a_file_in(&survivor.replace('\'', "\""), d));
        assert!(names_a_file_in(
            survivor,
            Path::new("/srv/overlays/g/secondary/")
        ));
        // Another domain's directory with the same prefix, or the primary's own disk.
        assert!(!names_a_file_in(
            "<source file='/srv/overlays/g/secondary2/parent0.qcow2'/>",
            d
        ));
        assert!(!names_a_file_in(
            "<source file='/var/lib/libvirt/images/g.qcow2'/>",
            d
        ));
    }
}
