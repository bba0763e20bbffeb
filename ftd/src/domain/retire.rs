//! When a domain task may end: its domain is gone from this host and nothing is
//! held for it ([`Task::retirable`]); the daemon's router asks it to
//! (`crate::daemon`'s `retire`), and the task decides ([`Task::retire`]), giving
//! its COLO port slot back. Also which tasks count as held for the peer
//! ([`held_for_peer`], bounded by the router).

use super::handle::Reply;
use super::task::Task;
use crate::coordinator::State;

/// A task the peer's messages made or keep: for a domain not defined here that
/// stands by, or one whose secondary this host holds (bounded by the router).
pub(crate) fn held_for_peer(defined: bool, st: State) -> bool {
    (!defined && matches!(st, State::Standby | State::Stopped)) || st.holds_secondary()
}

impl Task {
    /// Nothing keeps this task: the domain is not defined here (libvirt's last
    /// word), no copy of it runs or is held here, protection is not wanted, and
    /// no step, retry or arbitration is in progress. A new task would start
    /// from the same place (`Standby`), so ending this one loses nothing but
    /// its last error.
    pub(super) fn retirable(&self) -> bool {
        !self.defined
            && matches!(self.coord.state(), State::Standby | State::Stopped)
            && !self.coord.wanted()
            && self.running.is_none()
            && self.queue.is_empty()
            && self.retry.is_none()
            && self.arbitration.is_none()
    }

    /// The router's [`DomainCmd::Retire`]: end (true) if nothing keeps the task
    /// now (everything sent before it has been handled), giving its port slot
    /// back; else carry on.
    pub(super) fn retire(&mut self, reply: Reply<bool>) -> bool {
        if !self.retirable() {
            tracing::info!(domain = %self.name, state = %self.coord.state().name(), "domain task kept: it has work again");
            let _ = reply.send(false);
            return false;
        }
        if self.ctx.ports.release(&self.name) {
            tracing::info!(domain = %self.name, "COLO port slot given back");
        }
        tracing::info!(domain = %self.name, state = %self.coord.state().name(),
            "domain task ended: the domain is not defined on this host and nothing is held for it");
        let _ = reply.send(true);
        true
    }
}
