//! Three protected domains on the same pair, the primary's host power-cut: all
//! three fail over to b, each client on its own connection, nothing lost. Six
//! TCG guests (three pairs) share this machine's two cores, so the guests are
//! small: 256 MiB each, 2 vCPUs for the first and 1 for the other two.

use super::kills::{moved, settle};
use crate::world::{GuestShape, Setup, World};
use anyhow::Result;
use std::time::Duration;

const fn small(name: &'static str, vcpus: u32) -> GuestShape {
    GuestShape {
        name,
        host: "a",
        peer: "b",
        vcpus,
        memory_mib: 256,
    }
}

pub const SETUP: Setup = Setup {
    guests: &[small("g0", 2), small("g1", 1), small("g2", 1)],
    ..Setup::STANDARD
};

pub fn three(w: &mut World) -> Result<()> {
    settle(w)?;
    let t = w.kill_host("a")?;
    w.failover_after(t)?;
    let names: Vec<&'static str> = w.tenants.iter().map(|t| t.shape.name).collect();
    let want: Vec<(&str, &str, &[&str])> =
        names.iter().map(|d| ("b", *d, &["degraded"][..])).collect();
    let s = w.wait(&want, Duration::from_secs(90))?;
    for (d, st) in names.iter().zip(&s) {
        w.note(format!("{d}: b took over: {}", st.last_failover));
    }
    for i in 0..w.tenants.len() {
        moved(w, i, "b");
    }
    w.verify_all("the takeover of all three")
}
