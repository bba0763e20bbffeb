//! The secondary's overlay disk fills up. Host b's ftd keeps the secondary's
//! images (its copy of the disk, the hidden and active overlays) under its
//! `colo.overlay-dir`; here that directory is a small tmpfs mounted inside b's
//! own mount namespace before its ftd starts. Once the guest is protected, a
//! file fills it to the last byte, and the client goes on writing: the
//! secondary can no longer store the primary's writes. What must hold: the
//! primary runs on with every acknowledged write, ftd leaves COLO (a secondary
//! that misses writes is no copy to fail over to) and says why and what to do
//! (`last_error`), and no copy runs free on b.

use super::kills::settle;
use crate::world::{Setup, World};
use anyhow::{Context, Result};
use ftvirt_demo::report::broken;
use ftvirt_lab::Lab;
use std::time::Duration;

/// Size of b's overlay file system: room for the secondary's images of the
/// lab guest (its 1 GiB disk is sparse), little more.
const TMPFS: &str = "size=48m";

pub const SETUP: Setup = Setup {
    prepare: Some(small_overlay_dir),
    ..Setup::STANDARD
};

fn overlay_dir(lab: &Lab) -> Result<String> {
    Ok(lab
        .host("b")?
        .dir
        .join("overlays")
        .to_string_lossy()
        .into_owned())
}

/// A tmpfs of [`TMPFS`] on b's overlay directory, inside b only.
fn small_overlay_dir(lab: &mut Lab) -> Result<()> {
    let dir = overlay_dir(lab)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {dir}"))?;
    lab.host("b")?
        .exec(&["mount", "-t", "tmpfs", "-o", TMPFS, "ftvirt-overlays", &dir])
        .context("mounting a tmpfs on b's overlay directory")?;
    Ok(())
}

pub fn fill(w: &mut World) -> Result<()> {
    settle(w)?;
    let dir = overlay_dir(&w.lab)?;
    let b = w.lab.host("b")?;
    let df = |b: &ftvirt_lab::Host| {
        b.exec(&["df", "-k", "--output=used,avail", &dir])
            .map(|s| {
                s.lines()
                    .last()
                    .unwrap_or("")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" used, ")
                    + " free KiB"
            })
            .unwrap_or_default()
    };
    let before = df(b);
    b.exec(&[
        "sh",
        "-c",
        &format!("dd if=/dev/zero of={dir}/filler bs=64k 2>/dev/null; sync; true"),
    ])?;
    w.note(format!(
        "b's overlay tmpfs: {before} before, {} after the filler",
        df(b)
    ));
    let t = std::time::Instant::now();
    // The client keeps writing: the secondary's disk needs room it does not have.
    let s = w.wait(
        &[("a", "g", &["degraded", "failed"])],
        Duration::from_secs(90),
    )?;
    let e = if s[0].last_error.is_empty() {
        s[0].last_failover.clone()
    } else {
        s[0].last_error.clone()
    };
    w.note(format!(
        "a left COLO {} ms after the disk filled: {}",
        t.elapsed().as_millis(),
        e.trim()
    ));
    let names = |k: &str| e.to_lowercase().contains(k);
    if !(names("no space") && names(&dir.to_lowercase())) {
        return Err(broken(
            "cause_not_named",
            format!("a's status does not name the full disk and where it is: {e:?}"),
        ));
    }
    w.check_clients()?;
    w.verify_all("the secondary's disk filled up")
}
