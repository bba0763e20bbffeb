//! Ending the tasks of domains that are gone from this host, so that tasks do not
//! pile up (each polls libvirt, and the peer's bound in [`super::peer`] counts
//! the standing-by ones).
//!
//! A task is a candidate once it has had nothing to keep it for [`IDLE`]: the
//! domain is not defined here, no copy runs or is held here, protection is not
//! wanted, nothing is in progress (`Task::retirable`; published in its
//! snapshot). Every [`SWEEP`] the router asks each candidate to end
//! ([`DomainCmd::Retire`]) and, until it answers, holds what arrives for it
//! instead of sending it, in order. The task decides with everything sent
//! before the question handled, so a message that gave it work again (a
//! `HostSecondary` that came just before) keeps it; then what was held goes
//! to it. Once it ended, what was held starts a lookup as for any domain
//! without a task. The router never waits for the answer.
//!
//! The wait before ending keeps the domain's last state and error on show
//! (`List`, `Status`) for a while after its secondary was given up.

use super::Daemon;
use crate::domain::{DomainCmd, DomainHandle};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a task must have had nothing to keep it before it is ended.
pub(crate) const IDLE: Duration = Duration::from_secs(600);

/// How often the router looks for tasks to end.
pub(crate) const SWEEP: Duration = Duration::from_secs(60);

/// A task's answer to [`DomainCmd::Retire`]: its name, and whether it ended.
pub(super) type Retired = (String, bool);

/// A task asked to end, and what arrived for it meanwhile.
pub(super) struct Retiring {
    pub handle: DomainHandle,
    pub waiting: Vec<DomainCmd>,
    /// A lookup was asked for meanwhile with nothing to hand over (`Adopt`).
    pub look_again: bool,
}

impl Retiring {
    /// Hold `cmd` until the task answered.
    pub fn hold(&mut self, cmd: Option<DomainCmd>) {
        match cmd {
            Some(c) => self.waiting.push(c),
            None => self.look_again = true,
        }
    }
}

impl Daemon {
    /// Ask every task idle for [`IDLE`] to end.
    pub(super) fn sweep(&mut self) {
        let due: Vec<String> = self
            .domains
            .iter()
            .filter(|(_, h)| h.retirable_for().is_some_and(|d| d >= IDLE))
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            let Some(handle) = self.domains.remove(&name) else {
                continue;
            };
            let (tx, rx) = oneshot::channel();
            if !handle.send(DomainCmd::Retire(tx)) {
                // Stopped already (ftd is shutting down).
                self.domains.insert(name, handle);
                continue;
            }
            self.retiring.insert(
                name.clone(),
                Retiring {
                    handle,
                    waiting: Vec::new(),
                    look_again: false,
                },
            );
            let back = self.retired.clone();
            tokio::spawn(async move {
                let gone = rx.await.unwrap_or(false);
                let _ = back.send((name, gone));
            });
        }
    }

    /// A task answered [`DomainCmd::Retire`].
    pub(super) fn retired(&mut self, name: String, gone: bool) {
        let Some(r) = self.retiring.remove(&name) else {
            return;
        };
        if !gone {
            for c in r.waiting {
                r.handle.send(c);
            }
            self.domains.insert(name, r.handle);
            return;
        }
        if !r.waiting.is_empty() || r.look_again {
            self.look_up(&name, r.waiting);
        }
    }
}
