//! Ten failovers in a row: the primary's QEMU is killed (SIGKILL), the secondary
//! takes over, and re-protects onto the old primary's host by itself; then the
//! same the other way, and so on. Both ftds live through all ten (only QEMU
//! dies), so their file descriptors and memory can be compared from the first
//! cycle to the last; the client's one connection lives through all of them.

use super::kills::{moved, settle, RUNS_PRIMARY};
use crate::leaks::FD_SLACK;
use crate::world::{World, PROTECT_TIMEOUT};
use anyhow::Result;
use std::time::Duration;

const CYCLES: usize = 10;
/// ftd's resident memory may grow this much over the cycles (allocator warm-up).
const RSS_SLACK_KIB: u64 = 2048;

pub fn ten(w: &mut World) -> Result<()> {
    let mut seen: Vec<Vec<(usize, u64)>> = vec![Vec::new(); 2];
    let pair = w.pair();
    for cycle in 1..=CYCLES {
        settle(w)?;
        let (from, to) = (w.tenants[0].primary.clone(), w.tenants[0].peer.clone());
        crate::say(&format!("cycle {cycle}/{CYCLES}: {from} -> {to}"));
        let t = w.kill_qemu(&from, "g")?;
        w.failover_after(t)?;
        w.wait(&[(&to, "g", RUNS_PRIMARY)], Duration::from_secs(60))?;
        moved(w, 0, &to);
        w.verify_all(&format!("takeover {cycle}"))?;
        w.wait(
            &[(&to, "g", &["protected"]), (&from, "g", &["secondary"])],
            PROTECT_TIMEOUT,
        )?;
        for (k, h) in pair.iter().enumerate() {
            if let Some(p) = w.probe(h) {
                seen[k].push((p.fds, p.rss_kib));
            }
            w.leaked.extend(crate::leaks::orphan_qemu(&w.lab, h));
        }
    }
    for (k, h) in pair.iter().enumerate() {
        let (Some(first), Some(last)) = (seen[k].first(), seen[k].last()) else {
            continue;
        };
        let fds: Vec<String> = seen[k].iter().map(|(f, _)| f.to_string()).collect();
        w.note(format!(
            "ftd on {h}: fds per cycle {}; RSS {:.1} MiB after cycle 1, {:.1} MiB after cycle {CYCLES}",
            fds.join(","),
            first.1 as f64 / 1024.0,
            last.1 as f64 / 1024.0
        ));
        if last.0 > first.0 + FD_SLACK {
            w.leaked.push(format!(
                "ftd on {h}: {} file descriptors after cycle 1, {} after cycle {CYCLES}",
                first.0, last.0
            ));
        }
        if last.1 > first.1 + RSS_SLACK_KIB {
            w.leaked.push(format!(
                "ftd on {h}: RSS grew from {} to {} KiB over the cycles",
                first.1, last.1
            ));
        }
    }
    Ok(())
}
