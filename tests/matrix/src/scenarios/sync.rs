//! A host killed during the initial disk sync. The trigger is ftd's own state:
//! `Enable`, then the primary's status polled every 10 ms until it says
//! `syncing` (the Sync step runs: the disk moves under a quorum and is mirrored
//! to the secondary's NBD export), then the power cut. Which part of the step
//! was running is read from the primary's ftd log afterwards.

use super::kills::moved;
use crate::world::{World, PROTECT_TIMEOUT};
use anyhow::{Context, Result};
use ftvirt_demo::report::broken;
use ftvirt_lab::{wait_until, Look};
use std::time::Duration;

/// `Enable` on a, wait for `syncing` on a, and return at once.
fn until_syncing(w: &mut World) -> Result<()> {
    let st = w.ftds.enable(&w.lab, "a", "g")?;
    crate::say(&format!("Enable(g) on a: {st}; waiting for syncing"));
    let mut last = String::new();
    wait_until(
        "a to start syncing",
        PROTECT_TIMEOUT,
        Duration::from_millis(10),
        || {
            last = match w.status("a", "g") {
                Ok(s) => s.state,
                Err(e) => return Look::Failed(format!("{e:#}")),
            };
            match last.as_str() {
                "syncing" => Look::Ready(()),
                "preparing" => Look::Seen(last.clone()),
                other => Look::Failed(format!("a is {other}")),
            }
        },
    )
    .map_err(|e| broken(format!("trigger_missed:{last}"), e.to_string()))
}

pub fn secondary_host(w: &mut World) -> Result<()> {
    w.writes(10)?;
    until_syncing(w)?;
    let t = w.kill_host("b")?;
    w.failover_after(t)?;
    let s = w.wait(&[("a", "g", &["failed"])], Duration::from_secs(60))?;
    let e = &s[0].last_error;
    w.note(format!("a: failed, last_error {e:?}"));
    if !e.contains("lost") {
        return Err(broken(
            "unclear_error",
            format!("a's last_error does not say the peer was lost: {e:?}"),
        ));
    }
    w.verify_all("the loss of the secondary's host mid-sync")?;
    // b comes back: protection resumes by itself (it is still wanted).
    w.restart_host("b")?;
    w.wait(
        &[("a", "g", &["protected"]), ("b", "g", &["secondary"])],
        PROTECT_TIMEOUT,
    )?;
    w.checkpoints(0, 1)?;
    w.verify_all("re-protection once b was back")
}

pub fn primary_host(w: &mut World) -> Result<()> {
    w.writes(10)?;
    until_syncing(w)?;
    let acked = w.tenants[0]
        .writer
        .as_ref()
        .map_or(0, |wr| wr.stats().acked);
    w.kill_host("a")?;
    // The guest was not protected yet: it dies with its host, and its client's
    // connection with it. b must drop what it had of the copy, and never run it.
    w.tenants[0].tcp_promised = false;
    let s = w.wait(&[("b", "g", &["standby"])], Duration::from_secs(60))?;
    w.note(format!("b: standby, last_error {:?}", s[0].last_error));
    // b destroys its copy in the background, once standing by.
    let b = w.lab.host("b")?;
    wait_until(
        "b to destroy its incomplete copy of g",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || match b.domains(false) {
            Ok(doms) => Look::holds(!doms.iter().any(|d| d == "g"), || format!("{doms:?} run")),
            Err(e) => Look::Failed(e.to_string()),
        },
    )
    .map_err(|e| {
        broken(
            "partial_copy_kept",
            format!("after the primary's loss: {e}"),
        )
    })?;
    // a comes back; the guest's definition points at the disk it was writing
    // to, which holds every acknowledged write. Started again, it is protected
    // again (its annotation was written by Enable).
    w.restart_host("a")?;
    w.lab
        .host("a")?
        .virsh(&["start", "g"])
        .context("starting g on a again")?;
    let last = w.last_on_new_connection(0)?;
    w.note(format!(
        "g started again on a: LAST {last}, {acked}+ acknowledged before the power cut"
    ));
    let st = w.ftds.enable(&w.lab, "a", "g")?;
    crate::say(&format!("Enable(g) on a after its restart: {st}"));
    moved(w, 0, "a");
    w.wait(
        &[("a", "g", &["protected"]), ("b", "g", &["secondary"])],
        PROTECT_TIMEOUT,
    )?;
    Ok(())
}
