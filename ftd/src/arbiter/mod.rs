//! The partition arbiter: which host keeps a protected domain when the two hosts
//! cannot reach each other. ftd does not decide this itself (two hosts that cannot
//! talk cannot agree); it asks an existing cluster engine, corosync 3 with votequorum,
//! on the two hosts, and a quorum device (corosync-qdevice, model `net`) whose
//! witness (corosync-qnetd) runs on a third host. corosync decides membership; the
//! witness gives its vote to exactly one side of a split, so exactly one side is
//! quorate.
//!
//! - [`corosync`]: the driver thread (libquorum and libcmap through `rust-corosync`):
//!   quorum and membership as [`View`]s on a watch channel.
//! - [`judge`]: the verdict on a lost peer, a pure function of the views and time.
//! - [`topology`]: corosync's configuration, read and checked at start.
//!
//! A domain whose peer is lost calls [`ArbiterHandle::arbitrate`] and receives the
//! [`Verdict`]s of one judge; dropping the receiver ends the request.
//!
//! Why the API and not the command-line tools: the quorum library calls back on
//! every membership or quorum change at once (no polling of `corosync-quorumtool`,
//! no parsing of its text), with the ring id that tells one membership from the next.

pub mod corosync;
pub mod judge;
pub mod topology;

pub use judge::{Params, Role, Timing, View};

use crate::coordinator::Verdict;
use judge::Judge;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, watch};

/// Why the arbiter cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArbiterError {
    /// corosync does not answer on this host.
    #[error(
        "corosync cannot be reached on this host ({0}): start corosync (and corosync-qdevice), \
         or remove `arbiter:` from ftd.yaml"
    )]
    Unreachable(String),
    /// corosync's configuration cannot arbitrate between this host and its peer.
    #[error("corosync's configuration cannot arbitrate this pair: {0}")]
    Config(String),
}

/// Handle to the arbiter (cheap to clone).
#[derive(Debug, Clone)]
pub struct ArbiterHandle {
    views: watch::Receiver<View>,
    stop: Arc<StopOnDrop>,
}

#[derive(Debug)]
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl ArbiterHandle {
    /// Start the corosync driver for this target. Its thread stops when the last
    /// handle is dropped.
    pub fn corosync(target: corosync::Target) -> std::io::Result<ArbiterHandle> {
        let params = Params::derive(Timing::DEFAULT, target.margin);
        let (tx, views) = watch::channel(View::disconnected(
            params,
            "not connected to corosync yet".into(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        corosync::spawn(target, tx, stop.clone())?;
        Ok(ArbiterHandle {
            views,
            stop: Arc::new(StopOnDrop(stop)),
        })
    }

    /// The latest view (for status and tests).
    pub fn view(&self) -> View {
        self.views.borrow().clone()
    }

    /// Ask for verdicts on the lost peer of a domain that holds the `role` copy:
    /// zero or one `Stop`, then at most one final verdict. Dropping the receiver
    /// withdraws the request.
    pub fn arbitrate(&self, domain: &str, role: Role) -> mpsc::Receiver<Verdict> {
        let (tx, rx) = mpsc::channel(4);
        let mut views = self.views.clone();
        let domain = domain.to_string();
        let _keep = self.stop.clone();
        tokio::spawn(async move {
            let _keep = _keep;
            let mut judge = Judge::new(role, Instant::now());
            tracing::info!(%domain, ?role, "arbiter: asked about the lost peer");
            loop {
                let v = views.borrow_and_update().clone();
                let look = judge.look(&v, Instant::now());
                if let Some(verdict) = look.verdict {
                    tracing::info!(
                        %domain, ?role, ?verdict, quorate = v.quorate, members = ?v.members,
                        connected = v.connected, problem = ?v.problem,
                        "arbiter: verdict"
                    );
                    if tx.send(verdict).await.is_err() {
                        return;
                    }
                }
                if judge.done() {
                    return;
                }
                let sleep = async {
                    match look.again_at {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    r = views.changed() => if r.is_err() { return },
                    _ = sleep => {}
                    _ = tx.closed() => return,
                }
            }
        });
        rx
    }
}
