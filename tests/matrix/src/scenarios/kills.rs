//! The four deaths: the primary's or the secondary's QEMU (SIGKILL), the
//! primary's or the secondary's whole host (power cut). Each starts protected,
//! with the client's connection through two checkpoints first.

use crate::world::{World, PROTECT_TIMEOUT};
use anyhow::Result;
use std::time::Duration;

/// The states of a host that runs the guest as the primary.
pub const RUNS_PRIMARY: &[&str] = &["degraded", "preparing", "syncing", "starting", "protected"];
const TAKEOVER: Duration = Duration::from_secs(60);

/// The client's connection lives through two checkpoints before the fault.
pub fn settle(w: &mut World) -> Result<()> {
    for i in 0..w.tenants.len() {
        w.checkpoints(i, 2)?;
    }
    w.check_clients()
}

/// Guest `i` now runs on `host`, protected (if at all) by the other host.
pub fn moved(w: &mut World, i: usize, host: &str) {
    let other = w.other(host).to_string();
    let t = &mut w.tenants[i];
    t.primary = host.to_string();
    t.peer = other;
}

pub fn primary_qemu(w: &mut World) -> Result<()> {
    settle(w)?;
    let t = w.kill_qemu("a", "g")?;
    w.failover_after(t)?;
    let s = w.wait(&[("b", "g", RUNS_PRIMARY)], TAKEOVER)?;
    w.note(format!("b took over: {}", s[0].last_failover));
    moved(w, 0, "b");
    w.verify_all("the takeover")?;
    // a's ftd lives on: b protects the guest again onto a, by itself.
    w.wait(
        &[("b", "g", &["protected"]), ("a", "g", &["secondary"])],
        PROTECT_TIMEOUT,
    )?;
    w.checkpoints(0, 1)?;
    w.verify_all("re-protection onto a")?;
    Ok(())
}

pub fn primary_host(w: &mut World) -> Result<()> {
    settle(w)?;
    let t = w.kill_host("a")?;
    w.failover_after(t)?;
    let s = w.wait(&[("b", "g", &["degraded"])], TAKEOVER)?;
    w.note(format!("b took over: {}", s[0].last_failover));
    moved(w, 0, "b");
    w.verify_all("the takeover")
}

pub fn secondary_qemu(w: &mut World) -> Result<()> {
    settle(w)?;
    let t = w.kill_qemu("b", "g")?;
    w.failover_after(t)?;
    let s = w.wait(&[("a", "g", &["degraded"])], TAKEOVER)?;
    w.note(format!("a runs alone: {}", s[0].last_failover));
    w.verify_all("the loss of the secondary")
}

pub fn secondary_host(w: &mut World) -> Result<()> {
    settle(w)?;
    let t = w.kill_host("b")?;
    w.failover_after(t)?;
    let s = w.wait(&[("a", "g", &["degraded"])], TAKEOVER)?;
    w.note(format!("a runs alone: {}", s[0].last_failover));
    w.verify_all("the loss of the secondary's host")
}
