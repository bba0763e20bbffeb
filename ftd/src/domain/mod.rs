//! One task per domain: the only owner of its [`Coordinator`](crate::coordinator::Coordinator).
//!
//! - `handle`: what the outside sees ([`DomainHandle`], [`DomainCmd`], [`CommandError`]);
//! - `task`: the task's loop, executing the coordinator's actions;
//! - `events`: what QEMU events, COLO polls and libvirt's view mean (pure);
//! - `monitor`: the periodic look at COLO and libvirt;
//! - `enable`: `Enable`/`Disable` with the settings and the protection mark;
//! - `steps`: the coordinator's steps against libvirt, QEMU and the peer;
//! - `reattach`: what a restarted ftd finds of a running domain;
//! - `resolve`: what a new task starts from (libvirt's view, the mark);
//! - `retire`: when a task may end (its domain gone from this host);
//! - `ports`: the domains' COLO ports on this host, taken when a domain is
//!   first wired as the primary here;
//! - `disk`, `fence`: disk error events; cutting a guest off the network;
//! - `claim`: the witness's pairing record and go-live claims;
//! - `scratch`, `survivor`: the secondary's scratch images; the survivor's disk.

mod claim;
mod create;
pub use claim::start as claim_start;
mod disk;
mod enable;
mod events;
mod fence;
mod handle;
mod monitor;
mod overlay;
mod ports;
mod reattach;
mod resolve;
mod retire;
mod scratch;
mod steps;
mod survivor;
mod task;

pub use handle::{CommandError, DomainCmd, DomainHandle, UserReply};
pub use ports::PortPool;
pub(crate) use reattach::{exists, secondary_dir};
pub use resolve::{resolve, Resolved};

use crate::arbiter::ArbiterHandle;
use crate::colo::plan::Wiring;
use crate::colo::spec::SecondarySpec;
use crate::coordinator::{Coordinator, Event, Settings};
use crate::host::{HostOs, Hypervisor};
use crate::observe::{Observer, Publisher};
use crate::peer::PeerHandle;
use crate::witness::Witness;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// What this host contributes to every protected domain.
#[derive(Debug, Clone)]
pub struct HostCtx {
    pub host: String,
    /// This host's address on the replication network.
    pub rep_addr: String,
    /// The peer's address on the replication network.
    pub peer_rep_addr: String,
    /// Where secondaries' images go.
    pub overlay_dir: PathBuf,
    /// Where the emulator and boot files a peer's definition names may be
    /// (`colo.trusted-dirs`).
    pub trusted_dirs: Vec<PathBuf>,
    /// The memory a secondary needs on this host (`colo.secondary-memory-*`).
    pub secondary_memory: crate::colo::fit::MemoryNeed,
    pub checkpoint_ms: u64,
    pub compare_timeout_ms: u64,
    pub sync_timeout: Duration,
    pub auto_reprotect: bool,
    /// This host's libvirt and QEMU monitors.
    pub lv: Arc<dyn Hypervisor>,
    /// This host's tools beside libvirt (images, sockets, links).
    pub os: Arc<dyn HostOs>,
    /// The domains' COLO ports on this host.
    pub ports: PortPool,
    pub peer: PeerHandle,
    /// Every peer name in the configuration (`peer` is the one linked to).
    pub peers: Vec<String>,
    /// Where status changes go (the D-Bus objects and signals).
    pub observer: Observer,
    /// Who decides which host keeps a domain when the peer is lost (`None`: the
    /// peer is taken for dead, unsafe against partitions).
    pub arbiter: Option<ArbiterHandle>,
    /// The witness holding each domain's record: with it, every go-live is
    /// claimed there first (`crate::witness::claim`).
    pub witness: Option<Arc<dyn Witness>>,
    /// How long a secondary waits before claiming a domain whose primary is
    /// unreachable ([`crate::witness::claim::secondary_delay`]).
    pub claim_delay: Duration,
    /// Where QEMU's copy of the TLS files is ([`crate::colo::tls::write_dir`]):
    /// COLO's channels run over mutual TLS with the peer; `None`: in clear
    /// (`colo.tls: false`).
    pub colo_tls: Option<PathBuf>,
    /// Who libvirt runs QEMU as: the owner of the files ftd makes for QEMU
    /// ([`crate::host::qemu_user`]).
    pub qemu: crate::host::QemuUser,
}

impl HostCtx {
    /// COLO's TLS with the peer linked to, if on.
    pub fn colo_tls(&self) -> Option<crate::colo::tls::ColoTls> {
        self.colo_tls.as_ref().map(|dir| crate::colo::tls::ColoTls {
            dir: dir.clone(),
            peer: self.peer.peer_host().to_string(),
        })
    }

    /// The coordinator's settings for a domain on this host.
    pub fn settings(&self, auto_reprotect: bool) -> Settings {
        Settings {
            auto_reprotect,
            arbiter: self.arbiter.is_some() || self.witness.is_some(),
            witness: self.witness.is_some(),
        }
    }
}

/// A domain's own protection settings (from `Enable`'s options or its annotation;
/// the configuration's defaults otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainSettings {
    pub checkpoint_ms: u64,
    pub auto_reprotect: bool,
}

/// What a running step yields: the event to feed back, and side results.
pub(crate) struct StepOut {
    event: Event,
    wiring: Option<Wiring>,
    spec: Option<SecondarySpec>,
    /// Re-attach: the newest quorum generation the plans left in QEMU (the next
    /// protection attempt must use a new one).
    gen: Option<u32>,
}

/// Start the task for `name`, found as [`Resolved`] says on this host.
pub fn spawn(name: &str, found: Resolved, ctx: HostCtx, cancel: CancellationToken) -> DomainHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut coord = Coordinator::new(found.initial, ctx.settings(ctx.auto_reprotect));
    coord.set_wanted(found.marked.is_some());
    if ctx.peer.is_up() {
        let _ = coord.on(Event::PeerUp);
    }
    let start = coord.start();
    // Only a domain standing by starts out not defined here (see `resolve`).
    let defined = found.initial != crate::coordinator::State::Standby;
    let (snap_tx, snap_rx) = watch::channel(handle::Snapshot {
        status: crate::observe::Status {
            domain: name.to_string(),
            state: coord.reported_state(),
            wanted: coord.wanted(),
            peer: ctx.peer.peer_host().to_string(),
            peer_up: coord.peer_up(),
            checkpoints: 0,
            last_checkpoint_age: None,
            last_error: None,
            last_failover: None,
        },
        last_checkpoint: None,
        retirable_since: None,
        held_for_peer: retire::held_for_peer(defined, coord.state()),
    });
    let mut task = task::Task {
        name: name.to_string(),
        ctx,
        coord,
        queue: VecDeque::new(),
        running: None,
        stop: CancellationToken::new(),
        wiring: None,
        spec: None,
        defined,
        retirable_since: None,
        gen: 0,
        last_checkpoint: None,
        publisher: Publisher::default(),
        snapshot: snap_tx,
        seen: events::Seen::default(),
        interval_set: false,
        ticks: 0,
        transition: None,
        arbitration: None,
        retry: None,
    };
    if let Some(s) = found.marked {
        task.configure(s);
    }
    task.execute(start);
    tokio::spawn(task.run(rx, cancel));
    DomainHandle {
        name: name.to_string(),
        tx,
        snapshot: snap_rx,
    }
}
