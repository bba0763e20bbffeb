//! The fake QEMU's monitor: each QMP command the plans, re-attach and the
//! monitor send, applied to the domain's model ([`super::Dom`]) the way QEMU 7.2
//! does it, as far as ftd can tell. Unknown commands fail like QEMU's
//! `CommandNotFound`.

use super::{Dom, FakeHost};
use crate::libvirt::LibvirtError;
use serde_json::{json, Value};

fn qerr(cmd: &str, domain: &str, desc: impl Into<String>) -> LibvirtError {
    LibvirtError::Qmp {
        cmd: cmd.into(),
        domain: domain.into(),
        class: "GenericError".into(),
        desc: desc.into(),
    }
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

pub(super) fn execute(
    h: &FakeHost,
    domain: &str,
    cmd: &str,
    a: &Value,
) -> Result<Value, LibvirtError> {
    // Commands that reach the peer host are done outside the host's lock.
    if cmd == "migrate" {
        return migrate(h, domain, a);
    }
    if cmd == "query-chardev" {
        return query_chardev(h, domain);
    }
    // An NBD client connects when it is added (the sync's, or the one under
    // the replication node).
    let nbd = [&a["server"], &a["file"]["server"]]
        .into_iter()
        .find(|s| !s.is_null());
    if let (true, Some(server)) = (cmd == "blockdev-add", nbd) {
        let (host, port) = (s(&server["host"]), s(&server["port"]));
        let export = a["export"].as_str().or(a["file"]["export"].as_str());
        if !nbd_target(h, &host, &port, export.unwrap_or_default()) {
            return Err(qerr(
                cmd,
                domain,
                format!("Failed to connect to '{host}:{port}': Connection refused"),
            ));
        }
    }
    let mut left_colo = None;
    let r = {
        let mut g = h.lock();
        let Some(d) = g.domains.get_mut(domain) else {
            return Err(LibvirtError::NoDomain(domain.into()));
        };
        if !d.running {
            return Err(LibvirtError::Op {
                op: "QMP command",
                domain: domain.into(),
                msg: "Requested operation is not valid: domain is not running".into(),
            });
        }
        if d.killed {
            return Err(LibvirtError::MonitorGone {
                domain: domain.into(),
                msg: "Unable to read from monitor: Connection reset by peer".into(),
            });
        }
        let mut events = Vec::new();
        let r = apply(d, domain, cmd, a, &mut events, &mut left_colo);
        for (ev, data) in events {
            g.emit(domain, ev, data);
        }
        r
    };
    if left_colo.is_some() {
        h.cluster.peer_stream_broke(h, domain);
    }
    r
}

fn apply(
    d: &mut Dom,
    domain: &str,
    cmd: &str,
    a: &Value,
    events: &mut Vec<(&'static str, Value)>,
    left_colo: &mut Option<String>,
) -> Result<Value, LibvirtError> {
    let err = |desc: String| Err(qerr(cmd, domain, desc));
    let ok = Ok(json!({}));
    match cmd {
        "query-status" => Ok(json!({"status": d.status, "running": d.status == "running"})),
        "stop" => {
            d.status = "paused".into();
            events.push(("STOP", json!({})));
            ok
        }
        "cont" => {
            if d.status == "inmigrate" {
                return err("Migration is not finalized yet".into());
            }
            d.status = "running".into();
            events.push(("RESUME", json!({})));
            ok
        }
        "query-block" => Ok(json!([{
            "device": "",
            "qdev": "/machine/peripheral/virtio-disk0/virtio-backend",
            "inserted": {"node-name": d.root_node, "image": {"virtual-size": d.disk_size}}
        }])),
        "qom-get" => match s(&a["property"]).as_str() {
            "bootindex" => Ok(json!(-1)),
            "write-cache" => Ok(json!("on")),
            p => err(format!("Property '{p}' not found")),
        },
        "qom-list" => Ok(Value::Array(d.objects.iter().map(|o| json!({"name": o, "type": "child<object>"})).collect())),
        "query-named-block-nodes" => Ok(Value::Array(
            d.nodes.iter().map(|(n, f)| json!({"node-name": n, "file": f})).collect(),
        )),
        "query-block-jobs" => Ok(Value::Array(
            d.jobs.keys().map(|j| json!({"device": j, "ready": true, "offset": d.disk_size, "len": d.disk_size, "status": "ready"})).collect(),
        )),
        "blockdev-add" => {
            let node = s(&a["node-name"]);
            if d.nodes.contains_key(&node) {
                return err(format!("Duplicate nodes with node-name='{node}'"));
            }
            if a["driver"] == "quorum" {
                for c in a["children"].as_array().into_iter().flatten() {
                    if !d.nodes.contains_key(&s(c)) {
                        return err(format!("Cannot find device='' nor node-name='{}'", s(c)));
                    }
                }
            }
            let file = match a["driver"].as_str() {
                Some("nbd") => Some(format!("nbd://{}:{}/{}", s(&a["server"]["host"]), s(&a["server"]["port"]), s(&a["export"]))),
                _ => a["file"]["filename"].as_str().map(String::from),
            };
            d.nodes.insert(node, file);
            if let Some(inner) = a["file"]["node-name"].as_str() {
                d.nodes.insert(inner.into(), None);
            }
            ok
        }
        "blockdev-del" => {
            let node = s(&a["node-name"]);
            if node == d.root_node {
                return err(format!("Node '{node}' is busy: node is used as root"));
            }
            match d.nodes.remove(&node) {
                Some(_) => ok,
                None => err(format!("Failed to find node with node-name='{node}'")),
            }
        }
        "blockdev-mirror" => {
            let (job, dev, target) = (s(&a["job-id"]), s(&a["device"]), s(&a["target"]));
            if !d.nodes.contains_key(&dev) || !d.nodes.contains_key(&target) {
                return err(format!("Cannot find node {dev} or {target}"));
            }
            // A mirror into another host's export never moves the device there.
            let pivots = !d.nodes[&target].as_deref().is_some_and(|f| f.starts_with("nbd://"));
            d.jobs.insert(job, if pivots { target } else { String::new() });
            ok
        }
        "block-job-complete" => {
            let job = s(&a["device"]);
            match d.jobs.remove(&job) {
                // A mirror that completes moves the device onto its target.
                Some(target) if !target.is_empty() => {
                    d.root_node = target;
                    ok
                }
                Some(_) => ok,
                None => err(format!("Block job '{job}' not found")),
            }
        }
        "block-job-cancel" => {
            let job = s(&a["device"]);
            match d.jobs.remove(&job) {
                Some(_) => ok,
                None => err(format!("Block job '{job}' not found")),
            }
        }
        "x-blockdev-change" => {
            let parent = s(&a["parent"]);
            if !d.nodes.contains_key(&parent) {
                return err(format!("Cannot find device='' nor node-name='{parent}'"));
            }
            ok
        }
        "chardev-add" => {
            let id = s(&a["id"]);
            if !d.chardevs.insert(id.clone()) {
                return err(format!("attempt to add duplicate property '{id}'"));
            }
            ok
        }
        "chardev-remove" => {
            let id = s(&a["id"]);
            if !d.chardevs.remove(&id) {
                return err(format!("Chardev '{id}' not found"));
            }
            ok
        }
        "object-add" => {
            let id = s(&a["id"]);
            if !d.objects.insert(id.clone()) {
                return err(format!("attempt to add duplicate property '{id}'"));
            }
            ok
        }
        "object-del" => {
            let id = s(&a["id"]);
            if !d.objects.remove(&id) {
                return err(format!("object '{id}' not found"));
            }
            ok
        }
        "migrate-set-capabilities" => ok,
        "migrate-incoming" => {
            if d.status != "inmigrate" || d.incoming.is_some() {
                return err("The incoming migration has already been started".into());
            }
            d.incoming = Some(s(&a["uri"]));
            ok
        }
        "migrate-set-parameters" => {
            for (k, v) in a.as_object().into_iter().flatten() {
                d.params.insert(k.clone(), v.clone());
            }
            ok
        }
        "query-migrate-parameters" => Ok(Value::Object(d.params.clone().into_iter().collect())),
        "query-colo-status" => Ok(json!({"mode": d.colo_mode, "last-mode": "none", "reason": d.colo_reason})),
        "query-migrate" => Ok(json!({"status": if d.colo_mode == "none" { "none" } else { "colo" }})),
        "x-colo-lost-heartbeat" => {
            if d.colo_mode == "none" {
                return err("VM is not in COLO mode".into());
            }
            let mode = std::mem::replace(&mut d.colo_mode, "none".into());
            d.colo_reason = "request".into();
            d.status = "running".into();
            events.push(("COLO_EXIT", json!({"mode": mode, "reason": "request"})));
            *left_colo = Some(mode);
            ok
        }
        "nbd-server-start" => {
            if d.nbd.is_some() {
                return err("NBD server already running".into());
            }
            let port = s(&a["addr"]["data"]["port"]).parse().map_err(|_| qerr(cmd, domain, "bad port"))?;
            d.nbd = Some(port);
            ok
        }
        "nbd-server-add" => {
            if d.nbd.is_none() {
                return err("NBD server not running".into());
            }
            d.exports.insert(s(&a["device"]));
            ok
        }
        "nbd-server-stop" => {
            if d.nbd.take().is_none() {
                return err("NBD server not running".into());
            }
            d.exports.clear();
            ok
        }
        "query-yank" => Ok(json!([])),
        "yank" | "announce-self" | "migrate_cancel" => ok,
        other => Err(LibvirtError::Qmp {
            cmd: other.into(),
            domain: domain.into(),
            class: "CommandNotFound".into(),
            desc: format!("The command {other} has not been found (by the fake)"),
        }),
    }
}

/// Does a live host at `addr` export `export` on `port`?
fn nbd_target(h: &FakeHost, addr: &str, port: &str, export: &str) -> bool {
    let Ok(port) = port.parse::<u16>() else {
        return false;
    };
    h.cluster.by_addr(addr).is_some_and(|p| {
        let g = p.lock();
        g.alive
            && g.domains.values().any(|d| {
                d.running && !d.killed && d.nbd == Some(port) && d.exports.contains(export)
            })
    })
}

/// `query-chardev`: a proxy server (`mirror0`, `compare1`) has a client while
/// a live host runs the domain's secondary (its `red0`/`red1` reconnect).
fn query_chardev(h: &FakeHost, domain: &str) -> Result<Value, LibvirtError> {
    let (ids, me) = {
        let g = h.lock();
        let Some(d) = g.domains.get(domain) else {
            return Err(LibvirtError::NoDomain(domain.into()));
        };
        (d.chardevs.clone(), g.addr.clone())
    };
    let secondary = h.cluster.hosts().into_iter().find_map(|p| {
        let g = p.lock();
        let runs = g.alive
            && g.addr != me
            && g.domains.get(domain).is_some_and(|d| {
                d.running && !d.killed && (d.status == "inmigrate" || d.colo_mode == "secondary")
            });
        runs.then(|| g.addr.clone())
    });
    Ok(Value::Array(
        ids.iter()
            .map(|id| {
                let filename = match (&secondary, id.as_str()) {
                    (Some(b), "mirror0" | "compare1") => {
                        format!("tcp:{me}:0,server=on <-> {b}:40000")
                    }
                    _ => format!("disconnected:tcp:{me}:0,server=on"),
                };
                json!({"label": id, "filename": filename})
            })
            .collect(),
    ))
}

/// `migrate` with `x-colo`: the secondary at the URI's address, waiting with
/// `-incoming`, receives the state; both sides enter COLO and the guest resumes.
fn migrate(h: &FakeHost, domain: &str, a: &Value) -> Result<Value, LibvirtError> {
    let uri = s(&a["uri"]);
    let addr = uri
        .strip_prefix("tcp:")
        .and_then(|r| r.rsplit_once(':'))
        .map(|(a, _)| a.to_string())
        .ok_or_else(|| qerr("migrate", domain, format!("bad URI {uri}")))?;
    let peer = h.cluster.by_addr(&addr).filter(|p| p.lock().alive);
    let accepted = peer.as_ref().is_some_and(|p| {
        let mut g = p.lock();
        match g.domains.get_mut(domain) {
            Some(d)
                if d.running && !d.killed && d.status == "inmigrate" && d.incoming.is_some() =>
            {
                d.status = "running".into();
                d.colo_mode = "secondary".into();
                true
            }
            _ => false,
        }
    });
    if !accepted {
        return Err(qerr(
            "migrate",
            domain,
            format!("Failed to connect to '{uri}': Connection refused"),
        ));
    }
    let mut g = h.lock();
    let Some(d) = g.domains.get_mut(domain) else {
        return Err(LibvirtError::NoDomain(domain.into()));
    };
    d.colo_mode = "primary".into();
    d.status = "running".into();
    g.emit(domain, "RESUME", json!({}));
    Ok(json!({}))
}
