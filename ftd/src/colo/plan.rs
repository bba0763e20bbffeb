//! The COLO QMP plans: which command, on which side, in which order, and how each
//! is undone. Pure: a plan is a list of [`Op`]s built from [`Wiring`]; the domain
//! task runs them through the libvirt driver. Cleanup plans tolerate "already
//! gone" so they can run after any partial failure.
//!
//! ## Protect (primary A, secondary B)
//! ```text
//! B  CreateSecondary: empty parent0 (disk size), hidden, active images;
//!    define + start the generated secondary XML (its TLS objects on the command
//!    line; -incoming defer: paused, "inmigrate"); nbd-server-start <B>:<nbd>
//!    (TLS, only A's certificate admitted); nbd-server-add parent0 writable;
//!    migrate-set-parameters tls-creds, tls-authz; migrate-incoming
//!    tcp:<B>:<migration> (B's replication address only)
//! A  Sync, part 1 (pivot): the running disk moves under a quorum without a
//!    restart: blockdev-add <base> (a fresh local image) and quorum <quorum>
//!    over it; blockdev-mirror <device root> -> <quorum>, sync full; wait ready;
//!    block-job-complete (the device now writes through the quorum); blockdev-del
//!    the previous protection's quorum and base, if the disk was under them
//! A  Sync, part 2: object-add the TLS objects (`super::tls`: server and client
//!    creds, authz pinned to B's name); blockdev-add an NBD client of
//!    <B>:<nbd>/parent0 (TLS, B's name checked); blockdev-mirror <quorum> -> it,
//!    full; wait ready
//! A  StartColo: stop; block-job-cancel the sync (B is now identical); blockdev-del
//!    the sync's NBD client; blockdev-add replication0 (mode primary, NBD to B,
//!    TLS); x-blockdev-change quorum += replication0; chardev-add mirror0,
//!    compare1 (TLS servers on A's replication address, only B's certificate
//!    admitted; B's red0/red1 reconnect to them), compare0/compare0-0 and
//!    compare_out/compare_out0 (loopback pairs); object-add filter-mirror m0,
//!    filter-redirector redire0/redire1, IOThread 900 (added through libvirt, which
//!    must know it to reconnect after a restart), colo-compare comp0; wait until
//!    both proxy servers have B connected (fail closed if another client holds
//!    one); migrate-set-capabilities x-colo; migrate-set-parameters
//!    x-checkpoint-delay (200 ms, so that the first checkpoint comes soon; the
//!    domain task sets the configured interval once it completed), tls-creds,
//!    tls-hostname B's name; migrate tcp:<B>:<migration>; wait until
//!    query-colo-status says primary. The guest resumes by itself when COLO starts.
//! ```
//! ## Fail over
//! ```text
//! B  TakeOver (A lost): first the domain's COLO sockets to A are destroyed
//!    (`crate::sockets`: a dead host sends no RST and QEMU may be blocked reading
//!    a checkpoint under its big lock); nbd-server-stop; x-colo-lost-heartbeat; object-del f2, f1;
//!    chardev-remove red1, red0 (rew0 stays: connections opened under COLO keep
//!    their sequence-number fix-ups); announce-self (switches learn the MAC's
//!    new port)
//! A  LeaveColo (B lost, or disable): with B lost, its sockets destroyed first (as
//!    above: A may be blocked writing a checkpoint); x-blockdev-change quorum -= children.1;
//!    blockdev-del replication0; object-del comp0, m0, redire0, redire1; IOThread
//!    900 removed through libvirt;
//!    x-colo-lost-heartbeat; chardev-remove the six chardevs; cont
//! A  Undo (a protection attempt failed anywhere): cont; yank every NBD
//!    connection; cancel the sync job; migrate_cancel; then every LeaveColo
//!    removal, each tolerated if absent
//! A  (peer lost during Sync or StartColo: first, at once, yank every NBD
//!    connection, the proxy's servers and the migration, so the step fails now)
//! ```

pub use super::ports::Ports;
use super::tls::{ColoTls, Ids};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// One operation of a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A QMP command; with `tolerate`, an error is logged and the plan goes on.
    Qmp { cmd: Value, tolerate: bool },
    /// Poll `query-block-jobs` until the job is ready (or gone).
    WaitJob {
        job: String,
        until: JobState,
        timeout: Duration,
    },
    /// Poll `query-chardev` until each of these server chardevs has a client
    /// connected from `peer` (after TLS and the authz check, QEMU shows
    /// `<-> peer:port` in its filename only then).
    WaitConnected {
        chardevs: Vec<String>,
        peer: String,
        timeout: Duration,
    },
    /// Poll `query-colo-status` until COLO reports this mode.
    WaitColoMode {
        mode: &'static str,
        timeout: Duration,
    },
    /// Yank every NBD connection of the domain (the block-node instances
    /// `query-yank` lists; only NBD clients have them): whatever waits on a dead
    /// peer's export fails at once instead of at TCP's time-out. Tolerant.
    YankNbd,
    /// Add (or remove) IOThread `id` through libvirt (`virDomainAddIOThread`), so
    /// that libvirt knows it: an IOThread added behind libvirt's back makes a
    /// restarted libvirtd fail to reconnect to the domain and kill it. With
    /// `tolerate`, a failure is logged and the plan goes on.
    IoThread { id: u32, add: bool, tolerate: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Ready,
    Gone,
}

/// Everything the plans need to know about one protected domain.
#[derive(Debug, Clone, PartialEq)]
pub struct Wiring {
    /// The node the virtio-blk device writes to now (e.g. `libvirt-1-format`).
    pub device_node: String,
    /// Generation of this protection attempt; makes node names unique.
    pub gen: u32,
    /// The fresh local image under the new quorum (same virtual size, created).
    pub base_image: PathBuf,
    /// QEMU netdev id of the NIC (`hostnet0`).
    pub netdev: String,
    pub primary_addr: String,
    pub secondary_addr: String,
    pub ports: Ports,
    pub checkpoint_ms: u64,
    pub compare_timeout_ms: u64,
    pub sync_timeout: Duration,
    /// COLO's channels over mutual TLS with the secondary's host (`None`: in
    /// clear, `colo.tls: false`).
    pub tls: Option<ColoTls>,
}

/// Fixed ids of the objects ftd adds, so that clean-up can find them.
pub const SYNC_JOB: &str = "ftvirt-sync";
pub const PIVOT_JOB: &str = "ftvirt-pivot";
pub const REPLICATION_NODE: &str = "ftvirt-replication";
/// The NBD client under the replication node (named, so that it can be yanked).
pub const NBD_NODE: &str = "ftvirt-nbd";
/// The sync's NBD client (the mirror's target), deleted once the sync ends.
pub const SYNC_NBD_NODE: &str = "ftvirt-sync-nbd";
/// How long the proxy's servers wait for the secondary's sockets: they
/// reconnect every second.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The first checkpoint comes this soon after COLO starts (or at the configured
/// interval if that is shorter): protection counts once a checkpoint completed, and
/// waiting a whole interval for it would only delay that. The domain task then sets
/// the configured interval ([`checkpoint_delay`]).
pub const FIRST_CHECKPOINT_MS: u64 = 200;

pub fn first_checkpoint_delay(checkpoint_ms: u64) -> u64 {
    checkpoint_ms.min(FIRST_CHECKPOINT_MS)
}

/// A: the checkpoint interval from now on.
pub fn checkpoint_delay(checkpoint_ms: u64) -> Value {
    exec(
        "migrate-set-parameters",
        json!({"x-checkpoint-delay": checkpoint_ms}),
    )
}

/// colo-compare's IOThread, `iothread<COLO_IOTHREAD>` in QEMU (libvirt's naming).
pub const COLO_IOTHREAD: u32 = 900;
/// The QOM objects the primary's COLO adds.
pub const PRIMARY_OBJECTS: [&str; 4] = ["comp0", "m0", "redire0", "redire1"];
const PRIMARY_CHARDEVS: [&str; 6] = [
    "mirror0",
    "compare1",
    "compare0",
    "compare0-0",
    "compare_out",
    "compare_out0",
];

impl Wiring {
    pub fn quorum(&self) -> String {
        format!("ftvirt-quorum{}", self.gen)
    }
    pub fn base(&self) -> String {
        format!("ftvirt-base{}", self.gen)
    }
}

fn q(cmd: Value) -> Op {
    Op::Qmp {
        cmd,
        tolerate: false,
    }
}

fn tolerated(cmd: Value) -> Op {
    Op::Qmp {
        cmd,
        tolerate: true,
    }
}

fn exec(name: &str, args: Value) -> Value {
    json!({"execute": name, "arguments": args})
}

fn socket(id: &str, host: &str, port: u16, server: bool, tls: Option<&Ids>) -> Value {
    let mut data = json!({"addr": {"type": "inet", "data": {"host": host, "port": port.to_string()}}, "server": server});
    if server {
        data["wait"] = json!(false);
    }
    if let Some(ids) = tls {
        data["tls-creds"] = json!(ids.server);
        data["tls-authz"] = json!(ids.authz);
    }
    exec(
        "chardev-add",
        json!({"id": id, "backend": {"type": "socket", "data": data}}),
    )
}

/// A: move the running disk under a fresh quorum, without a restart.
pub fn pivot(w: &Wiring) -> Vec<Op> {
    let mut v = vec![
        q(exec(
            "blockdev-add",
            json!({"driver": "qcow2", "node-name": w.base(), "cache": {"direct": true},
                   "file": {"driver": "file", "filename": w.base_image, "cache": {"direct": true}}}),
        )),
        q(exec(
            "blockdev-add",
            json!({"driver": "quorum", "node-name": w.quorum(), "vote-threshold": 1,
                   "read-pattern": "fifo", "children": [w.base()]}),
        )),
        q(exec(
            "blockdev-mirror",
            json!({"job-id": PIVOT_JOB, "device": w.device_node, "target": w.quorum(), "sync": "full"}),
        )),
        Op::WaitJob {
            job: PIVOT_JOB.into(),
            until: JobState::Ready,
            timeout: w.sync_timeout,
        },
        q(exec("block-job-complete", json!({"device": PIVOT_JOB}))),
        Op::WaitJob {
            job: PIVOT_JOB.into(),
            until: JobState::Gone,
            timeout: Duration::from_secs(30),
        },
    ];
    // An earlier protection's quorum and base image (the disk was under them
    // until now): nothing uses them any more; they would hold the old image
    // open for the life of the QEMU.
    if let Some(old) = w.device_node.strip_prefix("ftvirt-quorum") {
        v.push(tolerated(exec(
            "blockdev-del",
            json!({"node-name": w.device_node}),
        )));
        v.push(tolerated(exec(
            "blockdev-del",
            json!({"node-name": format!("ftvirt-base{old}")}),
        )));
    }
    v
}

/// The generation of a new protection attempt: `gen`, or above the one the disk
/// is under now (a QEMU that ftd protected before, in an earlier life of ftd),
/// so that node names never collide.
pub fn next_gen(device_node: &str, gen: u32) -> u32 {
    match device_node
        .strip_prefix("ftvirt-quorum")
        .and_then(|n| n.parse::<u32>().ok())
    {
        Some(now) if now >= gen => now + 1,
        _ => gen,
    }
}

/// `host:port` of a URI (an IPv6 address in brackets).
fn uri_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The primary's TLS object ids, when COLO runs over TLS.
fn primary_ids(w: &Wiring) -> Option<Ids> {
    w.tls.as_ref().map(|_| Ids::primary(w.gen))
}

/// An NBD client of the secondary's export, named `node` (with TLS: the client
/// creds, and the server's certificate checked for the peer's name).
fn nbd_client(w: &Wiring, node: &str) -> Value {
    let mut v = json!({"driver": "nbd", "node-name": node, "export": "parent0",
        "server": {"type": "inet", "host": w.secondary_addr, "port": w.ports.nbd.to_string()}});
    if let (Some(t), Some(ids)) = (&w.tls, primary_ids(w)) {
        v["tls-creds"] = json!(ids.client);
        v["tls-hostname"] = json!(t.peer);
    }
    v
}

/// A: copy the whole disk into the secondary's NBD export and keep it in sync.
/// First the TLS objects every later channel names (an earlier attempt's of the
/// same generation, if any, replaced).
pub fn sync(w: &Wiring) -> Vec<Op> {
    let mut v = vec![];
    if let (Some(t), Some(ids)) = (&w.tls, primary_ids(w)) {
        for (id, obj) in ids.all().into_iter().zip(t.objects(&ids)) {
            v.push(tolerated(exec("object-del", json!({"id": id}))));
            v.push(q(exec("object-add", obj)));
        }
    }
    v.extend([
        tolerated(exec("blockdev-del", json!({"node-name": SYNC_NBD_NODE}))),
        q(exec("blockdev-add", nbd_client(w, SYNC_NBD_NODE))),
        q(exec(
            "blockdev-mirror",
            json!({"device": w.quorum(), "job-id": SYNC_JOB, "target": SYNC_NBD_NODE,
                   "sync": "full"}),
        )),
        Op::WaitJob {
            job: SYNC_JOB.into(),
            until: JobState::Ready,
            timeout: w.sync_timeout,
        },
    ]);
    v
}

/// A: enter COLO (guest paused from `stop` until COLO runs).
pub fn start_colo(w: &Wiring) -> Vec<Op> {
    let p = &w.ports;
    let ids = primary_ids(w);
    let mut v = vec![
        q(json!({"execute": "stop"})),
        q(exec("block-job-cancel", json!({"device": SYNC_JOB}))),
        Op::WaitJob {
            job: SYNC_JOB.into(),
            until: JobState::Gone,
            timeout: Duration::from_secs(30),
        },
        tolerated(exec("blockdev-del", json!({"node-name": SYNC_NBD_NODE}))),
        q(exec(
            "blockdev-add",
            json!({"driver": "replication", "mode": "primary", "node-name": REPLICATION_NODE,
                   "file": nbd_client(w, NBD_NODE)}),
        )),
        q(exec(
            "x-blockdev-change",
            json!({"parent": w.quorum(), "node": REPLICATION_NODE}),
        )),
        q(socket(
            "mirror0",
            &w.primary_addr,
            p.mirror,
            true,
            ids.as_ref(),
        )),
        q(socket(
            "compare1",
            &w.primary_addr,
            p.compare,
            true,
            ids.as_ref(),
        )),
        q(socket("compare0", "127.0.0.1", p.compare_in, true, None)),
        q(socket("compare0-0", "127.0.0.1", p.compare_in, false, None)),
        q(socket(
            "compare_out",
            "127.0.0.1",
            p.compare_out,
            true,
            None,
        )),
        q(socket(
            "compare_out0",
            "127.0.0.1",
            p.compare_out,
            false,
            None,
        )),
    ];
    let nd = &w.netdev;
    for obj in [
        json!({"qom-type": "filter-mirror", "id": "m0", "netdev": nd, "queue": "tx", "outdev": "mirror0", "vnet_hdr_support": true}),
        json!({"qom-type": "filter-redirector", "id": "redire0", "netdev": nd, "queue": "rx", "indev": "compare_out", "vnet_hdr_support": true}),
        json!({"qom-type": "filter-redirector", "id": "redire1", "netdev": nd, "queue": "rx", "outdev": "compare0", "vnet_hdr_support": true}),
        json!({"qom-type": "colo-compare", "id": "comp0", "primary_in": "compare0-0", "secondary_in": "compare1",
               "outdev": "compare_out0", "iothread": format!("iothread{COLO_IOTHREAD}"), "vnet_hdr_support": true,
               "compare_timeout": w.compare_timeout_ms}),
    ] {
        if obj["qom-type"] == "colo-compare" {
            v.push(Op::IoThread {
                id: COLO_IOTHREAD,
                add: true,
                tolerate: false,
            });
        }
        v.push(q(exec("object-add", obj)));
    }
    // The migration's TLS: the client creds and B's name, or none at all (a
    // survivor's QEMU still holds the server creds of its incoming side).
    let mut params = json!({"x-checkpoint-delay": first_checkpoint_delay(w.checkpoint_ms),
                            "tls-creds": "", "tls-hostname": ""});
    if let (Some(t), Some(ids)) = (&w.tls, &ids) {
        params["tls-creds"] = json!(ids.client);
        params["tls-hostname"] = json!(t.peer);
    }
    v.extend([
        Op::WaitConnected {
            chardevs: vec!["mirror0".into(), "compare1".into()],
            peer: w.secondary_addr.clone(),
            timeout: CONNECT_TIMEOUT,
        },
        q(exec(
            "migrate-set-capabilities",
            json!({"capabilities": [{"capability": "x-colo", "state": true}]}),
        )),
        q(exec("migrate-set-parameters", params)),
        q(exec(
            "migrate",
            json!({"uri": format!("tcp:{}", uri_addr(&w.secondary_addr, p.migration))}),
        )),
        Op::WaitColoMode {
            mode: "primary",
            timeout: Duration::from_secs(120),
        },
    ]);
    v
}

/// The QMP command names of a plan, in order (for logs and tests).
pub fn commands(plan: &[Op]) -> Vec<String> {
    plan.iter()
        .map(|op| match op {
            Op::Qmp { cmd, .. } => cmd["execute"].as_str().unwrap_or("?").to_string(),
            Op::WaitJob { job, until, .. } => format!("wait {job} {until:?}"),
            Op::WaitColoMode { mode, .. } => format!("wait colo {mode}"),
            Op::WaitConnected { chardevs, .. } => format!("wait connected {}", chardevs.join(",")),
            Op::YankNbd => "yank NBD".to_string(),
            Op::IoThread { id, add: true, .. } => format!("libvirt add iothread {id}"),
            Op::IoThread { id, add: false, .. } => format!("libvirt del iothread {id}"),
        })
        .collect()
}

mod secondary_side;
mod teardown;
pub use secondary_side::{announce, secondary_export, take_over};
pub use teardown::{cut_peer, leave_colo, undo};

#[cfg(test)]
mod tests;
