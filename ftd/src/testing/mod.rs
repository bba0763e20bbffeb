//! Fakes of this host's drivers for the tier between unit and lab tests (the
//! house style's middle tier): [`FakeCluster`] holds several [`FakeHost`]s, each of
//! which is a [`Hypervisor`](crate::host::Hypervisor) (libvirt and QEMU's monitors) and a [`HostOs`](crate::host::HostOs)
//! (images, sockets, links, TCP probes, free memory) in memory.
//!
//! The model is what the COLO plans, re-attach and the domain tasks read and
//! change: domains (running or not, live and persistent XML, metadata), and per
//! running domain QEMU's run status, block nodes and jobs, QOM objects, chardevs,
//! the NBD server, COLO's mode and the QMP events a real QEMU sends (`STOP`,
//! `RESUME`, `COLO_EXIT`). `migrate` into COLO finds the secondary's host by its
//! replication address, as the real stream would. A command the model does not
//! know fails with `CommandNotFound`, so a plan that starts using a new command
//! fails its tests until the fake learns it. Per host: its available memory
//! ([`FakeHost::set_mem_available`]) and the CPU features its hypervisor
//! provides ([`FakeHost::set_cpu_features`]), which libvirt's CPU comparison
//! checks a guest's required features against.
//!
//! Every call is logged with the time it was made ([`FakeHost::calls`]), so tests
//! assert the QMP and libvirt calls made, in order, and when. Faults: a domain
//! whose every call hangs ([`FakeHost::hang`]), a killed QEMU
//! ([`FakeHost::kill_qemu`]), a dead host ([`FakeCluster::kill_host`]), a command
//! that fails ([`FakeHost::fail`]). Time is tokio's, so tests run with the
//! clock paused.
//!
//! [`FakeWitness`] (`witness.rs`) is the copy-of-record store of [`crate::witness`] in
//! memory, with its own faults (unreachable, a malformed value written by hand).

mod hypervisor;
mod qmp;
mod witness;

pub use witness::{FakeWitness, WitnessCall};

use hypervisor::{boot, shut_off, timeout};

use crate::libvirt::LibvirtError;
use crate::qmp_events::QmpEvent;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The deadline of libvirt calls other than QMP (as ftd's real driver has).
pub const LIBVIRT_DEADLINE: Duration = Duration::from_secs(30);

/// Several fake hosts that can reach each other (for `migrate` and NBD probes).
#[derive(Debug, Clone, Default)]
pub struct FakeCluster {
    hosts: Arc<Mutex<Vec<FakeHost>>>,
}

impl FakeCluster {
    pub fn new() -> FakeCluster {
        FakeCluster::default()
    }

    /// A new host named `name` with replication address `addr`; its QMP events
    /// come out of the receiver.
    pub fn host(&self, name: &str, addr: &str) -> (FakeHost, mpsc::UnboundedReceiver<QmpEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let h = FakeHost {
            inner: Arc::new(Mutex::new(Inner {
                name: name.into(),
                addr: addr.into(),
                alive: true,
                domains: BTreeMap::new(),
                calls: Vec::new(),
                hangs: HashMap::new(),
                failing: HashMap::new(),
                mem_available: DEFAULT_MEM_AVAILABLE,
                cpu_features: None,
                events: tx,
            })),
            cluster: self.clone(),
        };
        self.hosts.lock().unwrap().push(h.clone());
        (h, rx)
    }

    fn hosts(&self) -> Vec<FakeHost> {
        self.hosts.lock().unwrap().clone()
    }

    fn by_addr(&self, addr: &str) -> Option<FakeHost> {
        let hosts = self.hosts.lock().unwrap();
        hosts.iter().find(|h| h.lock().addr == addr).cloned()
    }

    /// The host is gone (power cut): every call to it runs into its deadline,
    /// its QEMUs say nothing more, and their COLO peers hear nothing either (a
    /// dead host sends no reset: their streams just stall).
    pub fn kill_host(&self, host: &FakeHost) {
        host.lock().alive = false;
    }

    /// A checkpoint of `domain`: every copy in COLO pauses and resumes.
    pub fn checkpoint(&self, domain: &str) {
        for h in self.hosts.lock().unwrap().iter() {
            let g = h.lock();
            if !g.alive {
                continue;
            }
            let in_colo = g
                .domains
                .get(domain)
                .is_some_and(|d| d.running && d.colo_mode != "none" && !d.killed);
            if in_colo {
                g.emit(domain, "STOP", json!({}));
                g.emit(domain, "RESUME", json!({}));
            }
        }
    }

    /// The other copies of `domain` in COLO (on live hosts) lose their stream.
    fn peer_stream_broke(&self, from: &FakeHost, domain: &str) {
        for h in self.hosts.lock().unwrap().iter() {
            if Arc::ptr_eq(&h.inner, &from.inner) {
                continue;
            }
            let g = h.lock();
            if !g.alive {
                continue;
            }
            let mode = match g.domains.get(domain) {
                Some(d) if d.running && d.colo_mode != "none" && !d.killed => d.colo_mode.clone(),
                _ => continue,
            };
            g.emit(
                domain,
                "COLO_EXIT",
                json!({"mode": mode, "reason": "error"}),
            );
        }
    }
}

/// One fake host (cheap to clone).
#[derive(Debug, Clone)]
pub struct FakeHost {
    inner: Arc<Mutex<Inner>>,
    cluster: FakeCluster,
}

#[derive(Debug)]
struct Inner {
    name: String,
    addr: String,
    alive: bool,
    domains: BTreeMap<String, Dom>,
    calls: Vec<(Instant, String)>,
    /// Domain -> how long each of its calls hangs.
    hangs: HashMap<String, Duration>,
    /// Command (QMP `execute` or a libvirt call's name) -> the error it fails with.
    failing: HashMap<String, String>,
    /// `MemAvailable` in bytes.
    mem_available: u64,
    /// The CPU features the hypervisor provides; `None`: every CPU runs here.
    cpu_features: Option<BTreeSet<String>>,
    events: mpsc::UnboundedSender<QmpEvent>,
}

impl Inner {
    fn emit(&self, domain: &str, event: &str, details: Value) {
        let _ = self.events.send(QmpEvent {
            domain: domain.into(),
            event: event.into(),
            at: Duration::ZERO,
            details,
        });
    }
}

/// A domain and, while it runs, its QEMU.
#[derive(Debug, Clone, Default)]
pub(crate) struct Dom {
    pub persistent: bool,
    /// `virsh autostart` is set.
    pub autostart: bool,
    pub running: bool,
    /// QEMU was killed: its monitor is closed; libvirt still lists it running
    /// until [`FakeHost::reap`].
    pub killed: bool,
    pub live_xml: String,
    pub inactive_xml: String,
    pub metadata: BTreeMap<String, String>,
    pub status: String,
    pub colo_mode: String,
    pub colo_reason: String,
    /// The node the disk device writes to, and the disk's size.
    pub root_node: String,
    pub disk_size: u64,
    /// Block node name -> its file, if any.
    pub nodes: BTreeMap<String, Option<String>>,
    /// Block job id -> its target node (ready at once).
    pub jobs: BTreeMap<String, String>,
    pub objects: BTreeSet<String>,
    pub chardevs: BTreeSet<String>,
    /// The NBD server's port, while it runs, and its exports.
    pub nbd: Option<u16>,
    pub exports: BTreeSet<String>,
    pub params: BTreeMap<String, Value>,
    /// `migrate-incoming`'s URI, once QEMU (started with `-incoming defer`)
    /// listens for the primary's state.
    pub incoming: Option<String>,
}

/// The size of every fake disk.
pub const DISK_SIZE: u64 = 1 << 30;
/// Every fake host's available memory unless a test sets it: room for a few
/// secondaries of the 512 MiB guest.
pub const DEFAULT_MEM_AVAILABLE: u64 = 16 << 30;

/// A domain definition like the lab's guest (one virtio disk, one NIC).
pub fn domain_xml(name: &str, disk: &Path) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><memory unit='KiB'>524288</memory>\
         <vcpu>2</vcpu><os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os>\
         <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
         <source file='{}'/><target dev='vda' bus='virtio'/><alias name='virtio-disk0'/>\
         <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/></disk>\
         <interface type='bridge'><mac address='52:54:00:f7:00:10'/><source bridge='br0'/>\
         <target dev='vnet-{name}'/><model type='virtio'/><alias name='net0'/>\
         <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/></interface>\
         </devices></domain>",
        disk.display()
    )
}

impl FakeHost {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn name(&self) -> String {
        self.lock().name.clone()
    }

    /// Define `name` (like the lab's guest, its disk at `disk`), running or not.
    pub fn add_domain(&self, name: &str, disk: &Path, running: bool) {
        self.add_domain_xml(name, &domain_xml(name, disk), running);
    }

    /// The user undefines a shut-off domain (`virsh undefine`): libvirt no
    /// longer knows it. A running one stays (as transient).
    pub fn undefine(&self, name: &str) {
        let mut g = self.lock();
        match g.domains.get_mut(name) {
            Some(d) if d.running => d.persistent = false,
            Some(_) => {
                g.domains.remove(name);
            }
            None => {}
        }
    }

    /// Set `virsh autostart` on a defined domain.
    pub fn set_autostart(&self, name: &str, on: bool) {
        if let Some(d) = self.lock().domains.get_mut(name) {
            d.autostart = on;
        }
    }

    /// A new ftd listens to this host's QMP events from now on.
    pub fn reconnect_events(&self) -> mpsc::UnboundedReceiver<QmpEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().events = tx;
        rx
    }

    /// Every call made so far, as `"<what> <domain> [details]"`, in order.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.iter().map(|(_, c)| c.clone()).collect()
    }

    /// Calls with the time each was made.
    pub fn timed_calls(&self) -> Vec<(Instant, String)> {
        self.lock().calls.clone()
    }

    /// Forget the calls made so far.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Every call for `domain` hangs for `d` from now on (`None`: no more).
    pub fn hang(&self, domain: &str, d: Option<Duration>) {
        let mut g = self.lock();
        match d {
            Some(d) => g.hangs.insert(domain.into(), d),
            None => g.hangs.remove(domain),
        };
    }

    /// `what` (a QMP command or a call's name: "create", "define", ...) fails
    /// with `error` from now on (`None`: works again).
    pub fn fail(&self, what: &str, error: Option<&str>) {
        let mut g = self.lock();
        match error {
            Some(e) => g.failing.insert(what.into(), e.into()),
            None => g.failing.remove(what),
        };
    }

    /// The host's available memory, in bytes, from now on.
    pub fn set_mem_available(&self, bytes: u64) {
        self.lock().mem_available = bytes;
    }

    /// The CPU features the host's hypervisor provides from now on (`None`:
    /// it runs every CPU).
    pub fn set_cpu_features(&self, features: Option<&[&str]>) {
        self.lock().cpu_features = features.map(|f| f.iter().map(|s| s.to_string()).collect());
    }

    /// Define `name` from `xml` (its live XML as libvirt shows it), running or not.
    pub fn add_domain_xml(&self, name: &str, xml: &str, running: bool) {
        let mut d = Dom {
            persistent: true,
            live_xml: xml.into(),
            inactive_xml: xml.into(),
            ..Dom::default()
        };
        if running {
            boot(&mut d, false);
        }
        self.lock().domains.insert(name.into(), d);
    }

    /// QEMU of `domain` is killed: its monitor closes at once; libvirt lists it
    /// running until [`FakeHost::reap`]; its COLO peer loses the stream.
    pub fn kill_qemu(&self, domain: &str) {
        if let Some(d) = self.lock().domains.get_mut(domain) {
            d.killed = true;
        }
        self.cluster.peer_stream_broke(self, domain);
    }

    /// libvirt noticed the killed QEMU: the domain is shut off.
    pub fn reap(&self, domain: &str) {
        let mut g = self.lock();
        if let Some(d) = g.domains.get_mut(domain) {
            shut_off(d);
            g.emit(
                domain,
                crate::qmp_events::LIFECYCLE,
                json!({"event": "stopped", "detail": 5}),
            );
        }
        if g.domains
            .get(domain)
            .is_some_and(|d| !d.persistent && !d.running)
        {
            g.domains.remove(domain);
        }
    }

    /// A copy of the domain's model (for assertions).
    pub(crate) fn dom(&self, domain: &str) -> Option<Dom> {
        self.lock().domains.get(domain).cloned()
    }

    /// Is `domain` running here (its QEMU alive)?
    pub fn runs(&self, domain: &str) -> bool {
        self.dom(domain).is_some_and(|d| d.running && !d.killed)
    }

    /// `query-colo-status`'s mode of `domain` here.
    pub fn colo_mode(&self, domain: &str) -> String {
        self.dom(domain)
            .map(|d| d.colo_mode)
            .unwrap_or_else(|| "none".into())
    }

    /// The domain's metadata element in `ns`, if any.
    pub fn metadata_of(&self, domain: &str, ns: &str) -> Option<String> {
        self.dom(domain).and_then(|d| d.metadata.get(ns).cloned())
    }

    /// Log the call, then wait as a hung domain does (bounded by `deadline`).
    async fn enter(
        &self,
        what: &str,
        domain: &str,
        detail: &str,
        deadline: Duration,
    ) -> Result<(), LibvirtError> {
        let (hang, alive) = {
            let mut g = self.lock();
            let line = if detail.is_empty() {
                format!("{what} {domain}")
            } else {
                format!("{what} {domain} {detail}")
            };
            g.calls.push((Instant::now(), line));
            (g.hangs.get(domain).copied(), g.alive)
        };
        // A real call goes to another thread and back: other tasks (the QEMU
        // events it causes among them) run meanwhile.
        tokio::task::yield_now().await;
        if !alive {
            // A dead host answers nothing: the call runs into its deadline.
            tokio::time::sleep(deadline).await;
            return Err(timeout(what, domain, deadline));
        }
        if let Some(h) = hang {
            if h >= deadline {
                tokio::time::sleep(deadline).await;
                return Err(timeout(what, domain, deadline));
            }
            tokio::time::sleep(h).await;
        }
        if let Some(e) = self.lock().failing.get(what) {
            return Err(LibvirtError::Op {
                op: "fake",
                domain: domain.into(),
                msg: e.clone(),
            });
        }
        Ok(())
    }

    fn with_dom<T>(
        &self,
        domain: &str,
        f: impl FnOnce(&mut Dom) -> Result<T, LibvirtError>,
    ) -> Result<T, LibvirtError> {
        let mut g = self.lock();
        match g.domains.get_mut(domain) {
            Some(d) => f(d),
            None => Err(LibvirtError::NoDomain(domain.into())),
        }
    }
}

/// Where a test keeps its fake hosts' files (overlays, images, state).
pub fn scratch(dir: &Path, host: &str) -> PathBuf {
    let p = dir.join(host);
    std::fs::create_dir_all(&p).expect("scratch directory");
    p
}
