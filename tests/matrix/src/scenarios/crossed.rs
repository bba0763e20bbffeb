//! Each host the primary of one domain (g0 on a, g1 on b): a's host power-cut.
//! b takes g0 over while it keeps running g1 (whose secondary was on a), both
//! clients keep their connections and every write. Each host's ftd wires its
//! domains on ports of its own slots, so b's takeover of g0 must cut g0's ports
//! as a chose them, not b's own slot's (the bug this row was written for: the
//! secondary recomputed the ports from its own, differently ordered, slots).

use super::kills::{moved, settle};
use crate::world::{GuestShape, Setup, World};
use anyhow::Result;
use std::time::Duration;

const fn small(name: &'static str, host: &'static str, peer: &'static str) -> GuestShape {
    GuestShape {
        name,
        host,
        peer,
        vcpus: 1,
        memory_mib: 256,
    }
}

pub const SETUP: Setup = Setup {
    guests: &[small("g0", "a", "b"), small("g1", "b", "a")],
    ..Setup::STANDARD
};

pub fn primaries_on_both_hosts(w: &mut World) -> Result<()> {
    settle(w)?;
    let t = w.kill_host("a")?;
    w.failover_after(t)?;
    let s = w.wait(
        &[("b", "g0", &["degraded"]), ("b", "g1", &["degraded"])],
        Duration::from_secs(90),
    )?;
    w.note(format!("g0: b took over: {}", s[0].last_failover));
    w.note(format!("g1: b runs on alone: {}", s[1].last_error));
    moved(w, 0, "b");
    w.verify_all("g0's takeover and g1's loss of its secondary")
}
