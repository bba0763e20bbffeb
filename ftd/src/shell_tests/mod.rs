//! The middle tier: the daemon, the domain tasks and the D-Bus API on fake hosts
//! ([`crate::testing`]) and an in-memory peer link, with tokio's clock paused. Each
//! test drives two hosts, `a` (the domain's first primary) and `b`, as the lab does,
//! and asserts the libvirt and QMP calls made, in order, and the states reached.

mod api;
mod bounds;
mod daemon;
mod failover;
mod fit;
mod protect;
mod witness;

use crate::colo::plan::Ports;
use crate::coordinator::State;
use crate::daemon::{self as d, DaemonHandle};
use crate::domain::{HostCtx, PortPool};
use crate::observe::{Observer, Status};
use crate::peer::memory::MemoryNet;
use crate::testing::{FakeCluster, FakeHost, FakeWitness};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The peer link's timing in these tests (ftd's defaults).
pub(super) const HEARTBEAT: Duration = Duration::from_millis(100);
pub(super) const DETECTION: Duration = Duration::from_millis(500);

/// One simulated host: its fake libvirt/QEMU, its ftd's daemon.
pub(super) struct Side {
    pub name: &'static str,
    pub fake: FakeHost,
    pub daemon: DaemonHandle,
    pub dir: PathBuf,
    pub peer: crate::peer::PeerHandle,
    /// This ftd's COLO port slots.
    pub ports: PortPool,
    /// What the domain tasks publish (for the D-Bus side), until taken.
    changes: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<crate::observe::Change>>>,
    cancel: CancellationToken,
}

pub(super) struct World {
    pub cluster: FakeCluster,
    pub net: MemoryNet,
    /// The witness both ftds claim on (`World::with_witness`).
    pub witness: Option<FakeWitness>,
    pub a: Side,
    pub b: Side,
    _tmp: tempfile::TempDir,
}

pub(super) const ADDR_A: &str = "10.77.0.1";
pub(super) const ADDR_B: &str = "10.77.0.2";

impl World {
    /// Two hosts; `g` is defined and running on `a`, unknown to `b`.
    pub async fn new() -> World {
        World::build(None).await
    }

    /// The same, both ftds with a witness (`arbiter: kind: etcd`).
    pub async fn with_witness() -> World {
        World::build(Some(FakeWitness::new())).await
    }

    async fn build(witness: Option<FakeWitness>) -> World {
        let tmp = tempfile::tempdir().expect("temporary directory");
        let cluster = FakeCluster::new();
        let net = MemoryNet::new();
        let (fa, qa) = cluster.host("a", ADDR_A);
        let (fb, qb) = cluster.host("b", ADDR_B);
        let w = witness.clone();
        let a = side(
            &net,
            fa,
            qa,
            tmp.path(),
            ("a", ADDR_A),
            ("b", ADDR_B),
            w.clone(),
        );
        let b = side(&net, fb, qb, tmp.path(), ("b", ADDR_B), ("a", ADDR_A), w);
        a.fake.add_domain("g", &a.dir.join("images/g.qcow2"), true);
        let w = World {
            cluster,
            net,
            witness,
            a,
            b,
            _tmp: tmp,
        };
        w.wait("the peer link up", || async {
            w.a.peer_up().await && w.b.peer_up().await
        })
        .await;
        w
    }

    /// Poll `cond` (every 10 ms of the paused clock) until it holds; panics after
    /// 60 s of simulated time with `what`.
    pub async fn wait<F, Fut>(&self, what: &str, cond: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let t0 = tokio::time::Instant::now();
        while !cond().await {
            if t0.elapsed() > Duration::from_secs(60) {
                panic!(
                    "waited 60 s for {what}\n a: {:?}\n b: {:?}\n a's calls: {:#?}\n b's calls: {:#?}",
                    self.a.status("g").await,
                    self.b.status("g").await,
                    self.a.fake.calls(),
                    self.b.fake.calls()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `name`'s ftd starts again (the old one must be stopped), on the same host.
    pub async fn restart(&self, name: &str) -> Side {
        let (old, peer, addr, peer_addr) = match name {
            "a" => (&self.a, "b", ADDR_A, ADDR_B),
            _ => (&self.b, "a", ADDR_B, ADDR_A),
        };
        assert!(old.cancel.is_cancelled(), "stop {name}'s ftd first");
        let qmp = old.fake.reconnect_events();
        let dir = old.dir.parent().expect("scratch").to_path_buf();
        side(
            &self.net,
            old.fake.clone(),
            qmp,
            &dir,
            (old.name, addr),
            (peer, peer_addr),
            self.witness.clone(),
        )
    }

    /// Enable `g` on `a` and wait until both sides say the pair is protected
    /// (the first checkpoint came).
    pub async fn protect(&self) {
        let st = self.a.daemon.enable("g", Default::default()).await;
        assert_eq!(st, Ok(State::Preparing));
        self.wait("COLO to start", || async {
            self.a.fake.colo_mode("g") == "primary"
        })
        .await;
        self.wait("a in Starting", || async {
            self.a.state("g").await == Some(State::Starting)
        })
        .await;
        self.cluster.checkpoint("g");
        self.wait("a protected, b secondary", || async {
            self.a.state("g").await == Some(State::Protected)
                && self.b.state("g").await == Some(State::Secondary)
        })
        .await;
    }
}

fn side(
    net: &MemoryNet,
    fake: FakeHost,
    qmp: tokio::sync::mpsc::UnboundedReceiver<crate::qmp_events::QmpEvent>,
    dir: &std::path::Path,
    (name, addr): (&'static str, &str),
    (peer, peer_addr): (&str, &str),
    witness: Option<FakeWitness>,
) -> Side {
    let dir = crate::testing::scratch(dir, name);
    let cancel = CancellationToken::new();
    let (observer, changes) = Observer::channel();
    let mut cfg = crate::peer::memory::config(name, peer);
    cfg.interval = HEARTBEAT;
    cfg.detection = DETECTION;
    let (peer_handle, links) = net
        .spawn(cfg, cancel.child_token())
        .expect("the in-memory peer link");
    let ports = PortPool::load(Ports::DEFAULT, &dir.join("state")).expect("port pool");
    let ctx = HostCtx {
        host: name.into(),
        rep_addr: addr.into(),
        peer_rep_addr: peer_addr.into(),
        overlay_dir: dir.join("overlays"),
        trusted_dirs: vec!["/usr/bin".into()],
        secondary_memory: Default::default(),
        checkpoint_ms: 2000,
        compare_timeout_ms: 3000,
        sync_timeout: Duration::from_secs(60),
        auto_reprotect: true,
        lv: Arc::new(fake.clone()),
        os: Arc::new(fake.clone()),
        ports: ports.clone(),
        peer: peer_handle.clone(),
        peers: vec![peer.into()],
        observer,
        arbiter: None,
        witness: witness.map(|w| Arc::new(w) as Arc<dyn crate::witness::Witness>),
        claim_delay: crate::witness::claim::secondary_delay(HEARTBEAT),
        colo_tls: Some(dir.join("qemu-tls")),
        qemu: crate::host::QemuUser::current(),
    };
    let (daemon, _) = d::spawn(ctx, links, qmp, cancel.child_token());
    Side {
        name,
        fake,
        daemon,
        dir,
        peer: peer_handle,
        ports,
        changes: std::sync::Mutex::new(Some(changes)),
        cancel,
    }
}

impl Side {
    pub async fn status(&self, domain: &str) -> Option<Status> {
        self.daemon.status(domain).await.ok()
    }

    /// The reported state, if this ftd tracks the domain.
    pub async fn state(&self, domain: &str) -> Option<State> {
        let l = self.daemon.list().await.ok()?;
        l.into_iter().find(|s| s.domain == domain).map(|s| s.state)
    }

    pub async fn peer_up(&self) -> bool {
        self.peer.is_up()
    }

    /// The stream of published changes (once).
    pub fn changes(&self) -> tokio::sync::mpsc::UnboundedReceiver<crate::observe::Change> {
        self.changes
            .lock()
            .unwrap()
            .take()
            .expect("changes taken once")
    }

    /// This ftd stops (its daemon, domain tasks and link), as on SIGKILL.
    pub fn stop_ftd(&self) {
        self.cancel.cancel();
    }

    /// The QMP commands sent for `domain`, in order (`"stop"`, `"cont"`, ...).
    pub fn qmp(&self, domain: &str) -> Vec<String> {
        let prefix = format!("qmp {domain} ");
        self.fake
            .calls()
            .into_iter()
            .filter_map(|c| c.strip_prefix(&prefix).map(String::from))
            .collect()
    }

    /// Position of the first call containing `what`, if any.
    pub fn call_index(&self, what: &str) -> Option<usize> {
        self.fake.calls().iter().position(|c| c.contains(what))
    }
}
