//! The domain task's monitor: what no event reports reliably, looked at every
//! tick. It sets the configured checkpoint interval once the first checkpoint came,
//! polls `query-colo-status` (a fallback for a missed `COLO_EXIT`) and asks libvirt
//! whether the domain started or stopped; [`super::events`] says what the answers
//! mean. Each call has a short deadline: a stuck QEMU must not hold up the task.

use super::events::{self, Lifecycle};
use super::task::Task;
use crate::coordinator::{Event, State};
use crate::libvirt::LibvirtError;
use serde_json::json;
use std::time::Duration;

/// libvirt's state is polled every this many ticks (its events say it sooner).
const LIBVIRT_POLL_TICKS: u64 = 4;

/// The monitor tick's QMP probe: short, a stuck QEMU must not hold up the task.
const MONITOR_QMP_DEADLINE: Duration = Duration::from_secs(1);

impl Task {
    /// The secondary's COLO ended: is this host's copy dead? libvirt reports a
    /// killed QEMU as shut off only once it cleaned up (about 2 s after a
    /// SIGKILL), but a monitor command fails at once, saying the monitor closed.
    pub(super) async fn look_at_copy(&mut self) {
        let st = self.coord.state();
        if !st.runs_primary_here()
            || st == State::SwitchingOver
            || self.running.is_some()
            || !self.queue.is_empty()
        {
            return;
        }
        if let Some(e) = self.monitor_gone().await {
            tracing::warn!(domain = %self.name, error = %e, "this host's copy is gone");
            self.apply(Event::DomainStopped);
        }
    }

    /// The domain's QEMU monitor is closed (its QEMU died), though libvirt may
    /// still call the domain running: the error that says so.
    async fn monitor_gone(&mut self) -> Option<LibvirtError> {
        let q = json!({"execute": "query-status"});
        match self
            .ctx
            .lv
            .qmp(&self.name, &q, Duration::from_secs(2))
            .await
        {
            Err(e @ LibvirtError::MonitorGone { .. }) => Some(e),
            _ => None,
        }
    }

    /// One look at COLO and libvirt.
    pub(super) async fn monitor(&mut self) {
        let st = self.coord.state();
        let lv = self.ctx.lv.clone();
        // The first checkpoint came (fast, on purpose): from now on, the domain's
        // interval. Retried on every tick until QEMU took it.
        if self.coord.reported_state() == State::Protected && !self.interval_set {
            let cmd = crate::colo::plan::checkpoint_delay(self.ctx.checkpoint_ms);
            match lv.qmp(&self.name, &cmd, Duration::from_secs(2)).await {
                Ok(_) => self.interval_set = true,
                Err(e) => {
                    tracing::warn!(domain = %self.name, error = %e, "checkpoint interval not set yet")
                }
            }
        }
        if matches!(st, State::Protected | State::Secondary) && self.running.is_none() {
            let q = lv
                .qmp(
                    &self.name,
                    &json!({"execute": "query-colo-status"}),
                    MONITOR_QMP_DEADLINE,
                )
                .await;
            match &q {
                // QEMU is stuck (a checkpoint waiting on a lost peer, typically):
                // libvirt would keep this task waiting too, and the event that
                // unsticks QEMU is what this task must get to. Next tick.
                Err(LibvirtError::Timeout { .. }) => return,
                Ok(v) => {
                    if let Some(ev) = events::colo_status(&mut self.seen, v) {
                        self.apply(ev);
                        return;
                    }
                }
                Err(_) => {}
            }
        }
        if self.running.is_some() || !self.queue.is_empty() {
            return;
        }
        // libvirt's lifecycle events say at once when the domain starts or
        // stops; the poll covers what they miss (libvirtd restarting, say).
        self.ticks += 1;
        if !self.ticks.is_multiple_of(LIBVIRT_POLL_TICKS) {
            return;
        }
        let seen = match lv.state(&self.name).await {
            Ok(s) => Some(s),
            Err(LibvirtError::NoDomain(_)) => None,
            Err(e) => {
                tracing::debug!(domain = %self.name, error = %e, "monitor: libvirt state");
                return;
            }
        };
        self.libvirt_says(seen).await;
    }

    /// libvirt's view of the domain (`None`: not defined here), from a poll or a
    /// lifecycle event, read by [`events::lifecycle`]. Not while a step runs or
    /// waits: steps start and stop copies on purpose.
    pub(super) async fn libvirt_says(&mut self, seen: Option<crate::libvirt::DomState>) {
        self.defined = seen.is_some();
        if self.running.is_some() || !self.queue.is_empty() {
            return;
        }
        let st = self.coord.state();
        match events::lifecycle(st, seen.as_ref()) {
            Lifecycle::Nothing => {}
            Lifecycle::StartedIfMonitorAnswers => {
                // A copy killed a moment ago is still "running" for libvirt
                // until it has cleaned up (about 2 s): its closed monitor says
                // it did not start again. (Taken for started, it had this host
                // protect it onto the peer that just took it over.)
                if let Some(e) = self.monitor_gone().await {
                    tracing::info!(domain = %self.name, error = %e, "libvirt still lists the dead copy as running: not a start");
                    return;
                }
                self.apply(Event::DomainStarted)
            }
            Lifecycle::Stopped => self.apply(Event::DomainStopped),
        }
    }
}
