//! A host killed while a checkpoint is under way. The trigger is QEMU's own: in
//! COLO each checkpoint stops the primary (`STOP`) and resumes it (`RESUME`)
//! once the secondary loaded the new state. The primary's monitor events come
//! through its libvirtd (ftd's event watch, in this process); on the first
//! `STOP` after protection, the host is power-cut at once. Afterwards the
//! events received show whether the cut came before the checkpoint's `RESUME`
//! (QEMU's microsecond timestamps against the time of the cut): a cut after it
//! fails the row as `trigger_missed`, since it did not test what it says.

use super::kills::{moved, settle, RUNS_PRIMARY};
use crate::world::World;
use anyhow::Result;
use ftd::qmp_events::QmpEvent;
use ftvirt_demo::report::broken;
use ftvirt_lab::{wait_until, Look};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::UnboundedReceiver;

/// Wait for the primary's next checkpoint to begin, power-cut `victim` at once,
/// and check that the cut came before that checkpoint's end.
fn kill_mid_checkpoint(w: &mut World, victim: &str) -> Result<std::time::Instant> {
    settle(w)?;
    let (_watch, mut rx) = ftd::qmp_events::watch(&w.lab.host("a")?.uri());
    // The watch registers in the background: a checkpoint seen is proof it is on.
    next(&mut rx, "RESUME", Duration::from_secs(30))?;
    let stop = next(&mut rx, "STOP", Duration::from_secs(30))?;
    let t = std::time::Instant::now();
    // The links first (what the peer sees), then every process of the host.
    w.lab.host(victim)?.set_links(false)?;
    let cut_wall = since_epoch();
    w.kill_host(victim)?;
    // Events QEMU sent before the cut are delivered by now or never.
    std::thread::sleep(Duration::from_millis(300));
    let mut resumed = None;
    while let Ok(e) = rx.try_recv() {
        if e.domain == "g" && e.event == "RESUME" && resumed.is_none() {
            resumed = Some(e.at);
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let cut_after_stop = ms(cut_wall.saturating_sub(stop.at));
    match resumed {
        Some(r) if r < cut_wall => {
            return Err(broken(
                "trigger_missed",
                format!(
                    "the checkpoint ended (RESUME) {:.1} ms after its STOP, before the cut ({cut_after_stop:.1} ms after it)",
                    ms(r.saturating_sub(stop.at))
                ),
            ))
        }
        _ => w.note(format!(
            "{victim}'s links down {cut_after_stop:.1} ms after the checkpoint's STOP, no RESUME before that"
        )),
    }
    Ok(t)
}

/// The next `event` of domain `g`.
fn next(rx: &mut UnboundedReceiver<QmpEvent>, event: &str, timeout: Duration) -> Result<QmpEvent> {
    let what = format!("the primary's next {event} event");
    let r = wait_until(&what, timeout, Duration::from_micros(200), || loop {
        match rx.try_recv() {
            Ok(e) if e.domain == "g" && e.event == event => return Look::Ready(e),
            Ok(_) => continue,
            Err(TryRecvError::Empty) => return Look::Seen(String::new()),
            Err(e) => return Look::Failed(format!("the QEMU event watch ended: {e}")),
        }
    });
    r.map_err(|e| broken("no_checkpoint_event", e.to_string()))
}

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

pub fn primary_host(w: &mut World) -> Result<()> {
    let t = kill_mid_checkpoint(w, "a")?;
    w.failover_after(t)?;
    let s = w.wait(&[("b", "g", RUNS_PRIMARY)], Duration::from_secs(60))?;
    w.note(format!("b took over: {}", s[0].last_failover));
    moved(w, 0, "b");
    w.verify_all("the takeover mid-checkpoint")
}

pub fn secondary_host(w: &mut World) -> Result<()> {
    let t = kill_mid_checkpoint(w, "b")?;
    w.failover_after(t)?;
    let s = w.wait(&[("a", "g", &["degraded"])], Duration::from_secs(60))?;
    w.note(format!("a runs alone: {}", s[0].last_failover));
    w.verify_all("the loss of the secondary mid-checkpoint")
}
