//! Fakes of this host's drivers for the tier between unit and lab tests (the
//! house style's middle tier): [`FakeCluster`] holds several [`FakeHost`]s, each of
//! which is a [`Hypervisor`] (libvirt and QEMU's monitors) and a [`HostOs`]
//! (images, sockets, links, TCP probes) in memory.
//!
//! The model is what the COLO plans, re-attach and the domain tasks read and
//! change: domains (running or not, live and persistent XML, metadata), and per
//! running domain QEMU's run status, block nodes and jobs, QOM objects, chardevs,
//! the NBD server, COLO's mode and the QMP events a real QEMU sends (`STOP`,
//! `RESUME`, `COLO_EXIT`). `migrate` into COLO finds the secondary's host by its
//! replication address, as the real stream would. A command the model does not
//! know fails with `CommandNotFound`, so a plan that starts using a new command
//! fails its tests until the fake learns it.
//!
//! Every call is logged with the time it was made ([`FakeHost::calls`]), so tests
//! assert the QMP and libvirt calls made, in order, and when. Faults: a domain
//! whose every call hangs ([`FakeHost::hang`]), a killed QEMU
//! ([`FakeHost::kill_qemu`]), a dead host ([`FakeCluster::kill_host`]), a command
//! that fails ([`FakeHost::fail`]). Time is tokio's, so tests run with the
//! clock paused.

mod qmp;

use crate::host::{HostOs, Hypervisor};
use crate::libvirt::{DomState, LibvirtError};
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
                events: tx,
            })),
            cluster: self.clone(),
        };
        self.hosts.lock().unwrap().push(h.clone());
        (h, rx)
    }

    fn by_addr(&self, addr: &str) -> Option<FakeHost> {
        let hosts = self.hosts.lock().unwrap();
        hosts.iter().find(|h| h.lock().addr == addr).cloned()
    }

    /// The host is gone: every call to it fails, its QEMUs say nothing more,
    /// and their COLO peers see the stream break (`COLO_EXIT` reason `error`).
    pub fn kill_host(&self, host: &FakeHost) {
        let names: Vec<String> = {
            let mut g = host.lock();
            g.alive = false;
            g.domains.keys().cloned().collect()
        };
        for n in names {
            self.peer_stream_broke(host, &n);
        }
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
}

/// The size of every fake disk.
pub const DISK_SIZE: u64 = 1 << 30;

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
        let xml = domain_xml(name, disk);
        let mut d = Dom {
            persistent: true,
            live_xml: xml.clone(),
            inactive_xml: xml,
            ..Dom::default()
        };
        if running {
            boot(&mut d, false);
        }
        self.lock().domains.insert(name.into(), d);
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

fn timeout(op: &str, domain: &str, d: Duration) -> LibvirtError {
    LibvirtError::Timeout {
        op: if op == "qmp" {
            "QMP command"
        } else {
            "fake call"
        },
        domain: domain.into(),
        secs: d.as_secs_f64(),
    }
}

/// QEMU starts: plain (running) or incoming (`-incoming`: paused, waiting).
fn boot(d: &mut Dom, incoming: bool) {
    d.running = true;
    d.killed = false;
    d.status = if incoming { "inmigrate" } else { "running" }.into();
    d.colo_mode = "none".into();
    d.colo_reason = String::new();
    d.root_node = "libvirt-1-format".into();
    d.disk_size = DISK_SIZE;
    d.nodes = BTreeMap::from([("libvirt-1-format".to_string(), None)]);
    d.jobs.clear();
    d.objects.clear();
    d.chardevs.clear();
    d.nbd = None;
    d.exports.clear();
    d.params.clear();
}

fn shut_off(d: &mut Dom) {
    d.running = false;
    d.killed = false;
    d.colo_mode = "none".into();
    d.live_xml = d.inactive_xml.clone();
}

fn name_of(xml: &str) -> Result<String, LibvirtError> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| LibvirtError::Op {
        op: "define",
        domain: "(new)".into(),
        msg: format!("XML error: {e}"),
    })?;
    doc.descendants()
        .find(|n| n.has_tag_name("name") && n.parent().is_some_and(|p| p.has_tag_name("domain")))
        .and_then(|n| n.text())
        .map(str::to_string)
        .ok_or_else(|| LibvirtError::Op {
            op: "define",
            domain: "(new)".into(),
            msg: "the XML names no domain".into(),
        })
}

#[async_trait::async_trait]
impl Hypervisor for FakeHost {
    async fn state(&self, domain: &str) -> Result<DomState, LibvirtError> {
        self.enter("state", domain, "", LIBVIRT_DEADLINE).await?;
        self.with_dom(domain, |d| {
            Ok(match (d.running, d.status.as_str()) {
                (false, _) => DomState::ShutOff,
                (true, "paused") => DomState::Paused,
                (true, _) => DomState::Running,
            })
        })
    }

    async fn xml(&self, domain: &str, inactive: bool) -> Result<String, LibvirtError> {
        self.enter(
            "dumpxml",
            domain,
            if inactive { "--inactive" } else { "" },
            LIBVIRT_DEADLINE,
        )
        .await?;
        self.with_dom(domain, |d| {
            Ok(if inactive || !d.running {
                d.inactive_xml.clone()
            } else {
                d.live_xml.clone()
            })
        })
    }

    async fn define(&self, xml: &str) -> Result<String, LibvirtError> {
        let name = name_of(xml)?;
        self.enter("define", &name, "", LIBVIRT_DEADLINE).await?;
        let mut g = self.lock();
        let d = g.domains.entry(name.clone()).or_default();
        d.persistent = true;
        d.inactive_xml = xml.to_string();
        if !d.running {
            d.live_xml = xml.to_string();
        }
        Ok(name)
    }

    async fn create(&self, xml: &str) -> Result<String, LibvirtError> {
        let name = name_of(xml)?;
        self.enter("create", &name, "", LIBVIRT_DEADLINE).await?;
        let mut g = self.lock();
        let d = g.domains.entry(name.clone()).or_default();
        if d.running {
            return Err(LibvirtError::Op {
                op: "create",
                domain: name,
                msg: "domain is already active".into(),
            });
        }
        if !d.persistent {
            d.inactive_xml = xml.to_string();
        }
        boot(d, xml.contains("-incoming"));
        d.live_xml = xml.to_string();
        g.emit(
            &name,
            crate::qmp_events::LIFECYCLE,
            json!({"event": "started", "detail": 0}),
        );
        Ok(name)
    }

    async fn destroy(&self, domain: &str) -> Result<(), LibvirtError> {
        self.enter("destroy", domain, "", LIBVIRT_DEADLINE).await?;
        let mut g = self.lock();
        let Some(d) = g.domains.get_mut(domain) else {
            return Ok(());
        };
        let was_running = d.running;
        shut_off(d);
        if !d.persistent {
            g.domains.remove(domain);
        }
        if was_running {
            g.emit(
                domain,
                crate::qmp_events::LIFECYCLE,
                json!({"event": "stopped", "detail": 1}),
            );
        }
        Ok(())
    }

    async fn iothread(&self, domain: &str, id: u32, add: bool) -> Result<(), LibvirtError> {
        self.enter(
            "iothread",
            domain,
            &format!("{} {id}", if add { "add" } else { "del" }),
            LIBVIRT_DEADLINE,
        )
        .await?;
        self.with_dom(domain, |d| {
            let obj = format!("iothread{id}");
            let changed = if add {
                d.objects.insert(obj)
            } else {
                d.objects.remove(&obj)
            };
            if changed {
                Ok(())
            } else {
                Err(LibvirtError::Op {
                    op: "iothread",
                    domain: domain.into(),
                    msg: format!(
                        "IOThread {id} {}",
                        if add {
                            "already exists"
                        } else {
                            "does not exist"
                        }
                    ),
                })
            }
        })
    }

    async fn metadata(&self, domain: &str, ns: &str) -> Result<Option<String>, LibvirtError> {
        self.enter("metadata", domain, "", LIBVIRT_DEADLINE).await?;
        self.with_dom(domain, |d| Ok(d.metadata.get(ns).cloned()))
    }

    async fn set_metadata(
        &self,
        domain: &str,
        el: Option<&str>,
        _key: &str,
        ns: &str,
    ) -> Result<(), LibvirtError> {
        self.enter(
            "set-metadata",
            domain,
            if el.is_some() { "set" } else { "remove" },
            LIBVIRT_DEADLINE,
        )
        .await?;
        self.with_dom(domain, |d| {
            match el {
                Some(x) => d.metadata.insert(ns.into(), x.into()),
                None => d.metadata.remove(ns),
            };
            Ok(())
        })
    }

    async fn list(&self) -> Result<Vec<(String, DomState)>, LibvirtError> {
        self.enter("list", "*", "", LIBVIRT_DEADLINE).await?;
        let g = self.lock();
        Ok(g.domains
            .iter()
            .map(|(n, d)| {
                (
                    n.clone(),
                    if d.running {
                        DomState::Running
                    } else {
                        DomState::ShutOff
                    },
                )
            })
            .collect())
    }

    async fn qmp(
        &self,
        domain: &str,
        cmd: &Value,
        deadline: Duration,
    ) -> Result<Value, LibvirtError> {
        let name = cmd["execute"].as_str().unwrap_or("?").to_string();
        self.enter("qmp", domain, &name, deadline).await?;
        qmp::execute(self, domain, &name, &cmd["arguments"])
    }
}

#[async_trait::async_trait]
impl HostOs for FakeHost {
    async fn create_image(&self, path: &Path, size: u64) -> Result<(), String> {
        self.lock().calls.push((
            Instant::now(),
            format!("qemu-img {} {size}", path.display()),
        ));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        std::fs::write(path, b"").map_err(|e| format!("creating {}: {e}", path.display()))
    }

    async fn cut_sockets(&self, peer: &str, ports: &[u16]) -> Result<usize, String> {
        self.lock()
            .calls
            .push((Instant::now(), format!("cut {peer} {ports:?}")));
        Ok(ports.len())
    }

    async fn set_link(&self, dev: &str, up: bool) -> Result<(), String> {
        self.lock().calls.push((
            Instant::now(),
            format!("link {dev} {}", if up { "up" } else { "down" }),
        ));
        Ok(())
    }

    async fn probe_tcp(&self, addr: &str, within: Duration) -> Result<(), String> {
        self.lock()
            .calls
            .push((Instant::now(), format!("probe {addr}")));
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("{addr}: no port"))?;
        let port: u16 = port.parse().map_err(|_| format!("{addr}: bad port"))?;
        let listening = self.cluster.by_addr(host).is_some_and(|h| {
            let g = h.lock();
            g.alive
                && g.domains
                    .values()
                    .any(|d| d.running && !d.killed && d.nbd == Some(port))
        });
        if listening {
            return Ok(());
        }
        tokio::time::sleep(within).await;
        Err(format!("{addr} did not answer within {within:?}"))
    }
}

/// Where a test keeps its fake hosts' files (overlays, images, state).
pub fn scratch(dir: &Path, host: &str) -> PathBuf {
    let p = dir.join(host);
    std::fs::create_dir_all(&p).expect("scratch directory");
    p
}
