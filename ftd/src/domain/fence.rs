//! Cutting a primary's guest off the network at the host, for the arbiter's
//! `Stop` (`Step::Freeze`) and undoing it (`Step::Thaw`): the host-side devices of
//! the guest's NICs (its taps, `<target dev='vnet0'/>` in the live XML) are set
//! down, so that nothing the guest (or COLO's proxy, which sends through the same
//! device) emits reaches anyone.
//!
//! Why not pause the guest (QMP `stop`): when the replication link is cut, QEMU's
//! `stop` pauses the vCPUs but then waits for the block layer to drain, and the
//! writes in flight to the secondary's NBD export never complete; the command
//! hangs, and libvirt's monitor with it (seen in the lab: 10 s, then a timeout).
//! The device's state lives in the host's kernel: setting it down takes effect at
//! once, whatever QEMU is stuck in, and nothing of the guest changes.

use super::HostCtx;
use crate::colo::layout::DomainLayout;

/// Set every host-side NIC device of `name` up or down.
pub(crate) async fn set_links(name: &str, ctx: &HostCtx, up: bool) -> Result<(), String> {
    let live = ctx.lv.xml(name, false).await.map_err(|e| e.to_string())?;
    let l = DomainLayout::parse(&live).map_err(|e| e.to_string())?;
    let devs: Vec<String> = l.nics.iter().filter_map(|n| n.host_dev.clone()).collect();
    if devs.is_empty() {
        return Err(format!(
            "domain {name} has no host-side network device to {}",
            if up { "bring up" } else { "cut" }
        ));
    }
    for dev in devs {
        ctx.os.set_link(&dev, up).await?;
        tracing::info!(domain = name, dev = %dev, state = if up { "up" } else { "down" }, "guest network device set");
    }
    Ok(())
}
