//! libvirtd restarted (SIGTERM, start again, as an upgrade would) on the
//! primary's host, then on the secondary's, while protected: the guests and COLO
//! are untouched, and ftd keeps counting checkpoints (its libvirt connections
//! and its QEMU event watch come back by themselves). What
//! `ftd/tests/faults_lab.rs` learned: colo-compare's IOThread must be known to
//! libvirt, or the restarted libvirtd kills the primary when it reconnects.

use super::kills::settle;
use crate::world::World;
use anyhow::Result;
use ftvirt_demo::report::broken;
use std::time::Duration;

pub fn restart_both(w: &mut World) -> Result<()> {
    settle(w)?;
    for host in ["a", "b"] {
        let took = w.lab.host(host)?.restart_libvirtd()?;
        w.note(format!(
            "libvirtd of {host} restarted in {} ms",
            took.as_millis()
        ));
        // Checkpoints keep coming and are counted.
        w.checkpoints(0, 2)?;
        w.wait(
            &[("a", "g", &["protected"]), ("b", "g", &["secondary"])],
            Duration::from_secs(10),
        )?;
        let st = w.lab.host(host)?.virsh(&["domstate", "g"])?;
        if st.trim() != "running" {
            return Err(broken(
                format!("{host}_domain_{}", st.trim()),
                format!(
                    "after its libvirtd restarted, {host} says the domain is {:?}",
                    st.trim()
                ),
            ));
        }
        w.verify_all(&format!("the restart of {host}'s libvirtd"))?;
    }
    Ok(())
}
