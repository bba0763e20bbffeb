//! What every lab scenario gets around its body:
//!
//! 1. a fresh [`World`] made as the scenario's setup says;
//! 2. the body (a failure is the row's reason; the end runs anyway);
//! 3. the split-brain watch stopped and read;
//! 4. each guest read back through the guest on the client's own connection (a new
//!    one where the scenario did not promise the old one): writes found, lost;
//! 5. `Disable` on each guest's primary, then the leak checks on the survivor, the
//!    other host and ftd's file descriptors;
//! 6. the client threads stopped, the lab torn down, then the lab's namespaces and
//!    processes checked.

use crate::leaks;
use crate::report::Row;
use crate::world::{Setup, World};
use crate::{say, Body, Opts};
use ftvirt_demo::report::Broken;
use ftvirt_lab::{wait_until, Look};

/// The row's short reason: a broken guarantee's own (`lost=3`,
/// `timeout:b_degraded`), else where it went wrong (the details go to the notes).
fn reason_of(e: &anyhow::Error, otherwise: &str) -> String {
    e.chain()
        .find_map(|c| c.downcast_ref::<Broken>())
        .map_or_else(|| otherwise.to_string(), |b| b.reason.clone())
}
use std::time::Duration;

/// Run a lab scenario to its row.
pub fn lab_row(name: &str, setup: &Setup, body: Body, opts: &Opts) -> Row {
    let mut row = Row::new(name);
    let mut w = match World::start(setup, &opts.ftd_bin) {
        Ok(w) => w,
        Err(e) => {
            row.fail(
                reason_of(&e, "setup_failed"),
                format!("setting the scenario up: {e:#}"),
            );
            return row;
        }
    };
    if let Err(e) = body(&mut w) {
        say(&format!("{name} FAILED: {e:#}"));
        row.fail(reason_of(&e, "error"), format!("{e:#}"));
        diagnose(&w);
    }
    finish(w, &mut row);
    row
}

/// Steps 3 to 6.
fn finish(mut w: World, row: &mut Row) {
    let seen = w.watch.take().map(|s| s.stop()).unwrap_or_default();
    for s in &seen.split {
        row.split_brain = true;
        row.notes.push(format!("SPLIT BRAIN: {s}"));
    }
    for b in &seen.blips {
        row.notes.push(b.clone());
    }
    read_back(&mut w, row);
    row.leaked.append(&mut w.leaked);
    disable(&mut w, row);
    for t in &w.tenants {
        row.leaked
            .extend(leaks::survivor(&w.lab, &t.primary, t.shape.name));
        row.leaked
            .extend(leaks::peer(&w.lab, &t.peer, t.shape.name));
    }
    for h in w.pair() {
        row.leaked.extend(leaks::orphan_qemu(&w.lab, h));
    }
    for (h, first) in &w.baseline {
        let now = w.probe(h).map(|p| (p.pid, p.fds));
        row.leaked
            .extend(leaks::ftd_fds(h, (first.pid, first.fds), now));
        if let Some((pid, fds)) = now.filter(|(pid, _)| *pid == first.pid) {
            say(&format!(
                "ftd on {h} (pid {pid}): {} fds at the start, {fds} at the end",
                first.fds
            ));
        }
    }
    // The clients: acknowledged writes, connections kept, a second server seen.
    let (mut acked, mut kept) = (0, Some(true));
    for t in &mut w.tenants {
        let Some(wr) = t.writer.take() else { continue };
        let s = wr.stop();
        acked += s.acked;
        if let Some(why) = &s.broken {
            if t.tcp_promised {
                kept = Some(false);
                row.notes.push(format!(
                    "{}: the client's connection broke: {why}",
                    t.shape.name
                ));
            } else if kept == Some(true) {
                kept = None;
            }
        }
        if let Some(r) = s.refused.as_ref().filter(|r| r.contains("DURABLE")) {
            row.split_brain = true;
            row.notes.push(format!(
                "SPLIT BRAIN: {}: a reply from another server: {r}",
                t.shape.name
            ));
        }
    }
    row.acked = Some(acked);
    row.tcp_kept = kept;
    row.failover = w.failover;
    row.notes.append(&mut w.notes);
    let (id, dir) = (w.lab.id.clone(), w.lab.dir.clone());
    let World { lab, ftds, .. } = w;
    drop(ftds);
    say("tearing the lab down");
    if let Err(e) = lab.shutdown() {
        row.leaked.push(format!("tear-down failed: {e}"));
    }
    row.leaked.extend(leaks::after_teardown(&id, &dir));
    let mut seen = std::collections::HashSet::new();
    row.leaked.retain(|l| seen.insert(l.clone()));
}

/// Step 4: `LAST` of each guest, on its own connection if it lives.
fn read_back(w: &mut World, row: &mut Row) {
    let (mut found, mut lost, mut known) = (0, 0, true);
    for i in 0..w.tenants.len() {
        let alive = w.tenants[i].tcp_promised
            && w.tenants[i]
                .writer
                .as_ref()
                .is_some_and(|wr| wr.stats().broken.is_none());
        let r = if alive {
            // Read back with the writes paused, and leave them paused: the
            // writes acknowledged are then exactly those the read-back covers.
            w.verify_paused(i, "the scenario")
        } else {
            w.last_on_new_connection(i).inspect(|&last| {
                let t = &mut w.tenants[i];
                let acked = t.writer.as_ref().map_or(0, |wr| wr.stats().acked);
                t.found = Some(last);
                t.lost = acked.saturating_sub(last);
            })
        };
        let t = &w.tenants[i];
        match r {
            Ok(_) => {}
            Err(e) if t.found.is_some() => row.fail(
                reason_of(&e, "read_back_failed"),
                format!("read-back: {e:#}"),
            ),
            Err(e) => {
                known = false;
                row.fail(
                    "no_read_back",
                    format!("{}: reading LAST back: {e:#}", t.shape.name),
                );
            }
        }
        found += t.found.unwrap_or(0);
        lost += t.lost;
    }
    row.found = known.then_some(found);
    row.lost = lost;
}

/// Step 5, first half: protection off on each guest's primary, so that the leak
/// checks see what ftd leaves after a `Disable`.
fn disable(w: &mut World, row: &mut Row) {
    for i in 0..w.tenants.len() {
        let (p, dom) = (w.tenants[i].primary.clone(), w.tenants[i].shape.name);
        if !w
            .lab
            .host(&p)
            .is_ok_and(|h| h.is_up() && h.ftd_pid().is_some())
        {
            continue;
        }
        let r = w
            .ftds
            .disable(&w.lab, &p, dom)
            .and_then(|_| w.wait(&[(&p, dom, &["unprotected"])], Duration::from_secs(60)));
        match r {
            Ok(_) => say(&format!("{dom}: protection disabled on {p}")),
            Err(e) => row.fail("disable_failed", format!("{dom}: Disable on {p}: {e:#}")),
        }
        // The peer releases the secondary in the background.
        let peer = w.tenants[i].peer.clone();
        // What is still there after the time-out, the leak checks report.
        let _ = wait_until(
            &format!("{peer} to release {dom}'s secondary"),
            Duration::from_secs(30),
            Duration::from_millis(200),
            || {
                let left = leaks::peer(&w.lab, &peer, dom);
                Look::holds(left.is_empty(), || format!("{left:?}"))
            },
        );
    }
}

/// After a failure: where the logs are, and what the secondaries' consoles say.
fn diagnose(w: &World) {
    for h in w.lab.hosts() {
        for t in &w.tenants {
            let p = h
                .dir
                .join(format!("overlays/{}/secondary/serial.log", t.shape.name));
            let log = std::fs::read_to_string(&p).unwrap_or_default();
            for l in log
                .lines()
                .filter(|l| {
                    ["Kernel panic", "BUG:", "Oops"]
                        .iter()
                        .any(|m| l.contains(m))
                })
                .take(3)
            {
                say(&format!(
                    "{}'s secondary console on {}: {l}",
                    t.shape.name, h.name
                ));
            }
        }
    }
    let keep = if std::env::var_os("FTVIRT_LAB_KEEP").is_some() {
        "kept after tear-down (FTVIRT_LAB_KEEP)"
    } else {
        "deleted at tear-down; set FTVIRT_LAB_KEEP=1 to keep them"
    };
    say(&format!(
        "logs (ftd.log, QEMU logs, consoles) are under {}: {keep}",
        w.lab.dir.display()
    ));
}
