//! What a scenario may leave behind, checked for real:
//! - on the survivor after `Disable` ([`survivor`]): ftd's COLO objects, chardevs,
//!   block jobs, the replication and NBD nodes, an NBD export, and block nodes of
//!   ftd's that nothing uses any more (from QEMU's block graph);
//! - on the other host, if up ([`peer`]): the secondary still running, its images;
//! - on every live host ([`orphan_qemu`]): QEMU processes libvirt does not run;
//! - ftd ([`ftd_fds`]): more open file descriptors than when the scenario began;
//! - after tear-down ([`after_teardown`]): the lab's namespaces and processes.
//!
//! Each finding is a short line; the row counts them.

use ftvirt_lab::{wait_until, Host, Lab, Look};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// QEMU objects ftd adds on either side (`rew0`, the secondary's rewriter, stays
/// on purpose after a takeover: connections opened under COLO keep its fix-ups).
const OBJECTS: &[&str] = &[
    "comp0",
    "m0",
    "redire0",
    "redire1",
    "f1",
    "f2",
    "iothread900",
];
const CHARDEVS: &[&str] = &[
    "mirror0",
    "compare1",
    "compare0",
    "compare0-0",
    "compare_out",
    "compare_out0",
    "red0",
    "red1",
];
const NODES: &[&str] = &["ftvirt-replication", "ftvirt-nbd"];

/// Extra file descriptors ftd may hold at the end over its count at the start
/// (a D-Bus or libvirt connection being reopened at that moment).
pub const FD_SLACK: usize = 2;

fn qmp(h: &Host, dom: &str, cmd: &str) -> Result<Value, String> {
    let out = h
        .virsh(&[
            "qemu-monitor-command",
            dom,
            &format!(r#"{{"execute":"{cmd}"}}"#),
        ])
        .map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&out).map_err(|e| format!("{cmd}: {e}: {out:.200}"))?;
    Ok(v["return"].clone())
}

fn qmp_args(h: &Host, dom: &str, cmd: &str, args: &str) -> Result<Value, String> {
    let out = h
        .virsh(&[
            "qemu-monitor-command",
            dom,
            &format!(r#"{{"execute":"{cmd}","arguments":{args}}}"#),
        ])
        .map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&out).map_err(|e| format!("{cmd}: {e}: {out:.200}"))?;
    Ok(v["return"].clone())
}

/// ftd's COLO pieces still in `dom`'s QEMU on `host` (the survivor, after
/// `Disable`).
pub fn survivor(lab: &Lab, host: &str, dom: &str) -> Vec<String> {
    let Ok(h) = lab.host(host) else {
        return vec![format!("no host {host}")];
    };
    if !h.is_up() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let here = |what: &str| format!("{what} in {dom}'s QEMU on {host}");
    match qmp_args(h, dom, "qom-list", r#"{"path":"/objects"}"#) {
        Ok(v) => {
            let names: HashSet<&str> = v
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["name"].as_str())
                .collect();
            for id in OBJECTS.iter().filter(|id| names.contains(**id)) {
                out.push(here(&format!("object {id}")));
            }
        }
        Err(e) => out.push(here(&format!("(objects unreadable: {e})"))),
    }
    if let Ok(v) = qmp(h, dom, "query-chardev") {
        for c in v.as_array().into_iter().flatten() {
            if let Some(l) = c["label"].as_str().filter(|l| CHARDEVS.contains(l)) {
                out.push(here(&format!("chardev {l}")));
            }
        }
    }
    if let Ok(v) = qmp(h, dom, "query-block-jobs") {
        for j in v.as_array().into_iter().flatten() {
            out.push(here(&format!("block job {}", j["device"])));
        }
    }
    if let Ok(v) = qmp(h, dom, "query-block-exports") {
        for e in v.as_array().into_iter().flatten() {
            out.push(here(&format!("block export {}", e["id"])));
        }
    }
    match qmp(h, dom, "x-debug-query-block-graph") {
        Ok(g) => out.extend(
            unused_nodes(&g)
                .into_iter()
                .map(|n| here(&format!("block node {n}"))),
        ),
        Err(e) => out.push(here(&format!("(block graph unreadable: {e})"))),
    }
    if let Ok(v) = qmp(h, dom, "query-colo-status") {
        if v["mode"] != "none" {
            out.push(here(&format!("COLO still in mode {}", v["mode"])));
        }
    }
    out
}

/// ftd's named block nodes (`ftvirt-*`, the replication and NBD nodes) in QEMU's
/// block graph that no device reaches any more, plus the replication and NBD
/// nodes wherever they are (after `Disable` nothing should replicate).
pub fn unused_nodes(graph: &Value) -> Vec<String> {
    let nodes = graph["nodes"].as_array().cloned().unwrap_or_default();
    let mut children: HashMap<u64, Vec<u64>> = HashMap::new();
    for e in graph["edges"].as_array().into_iter().flatten() {
        if let (Some(p), Some(c)) = (e["parent"].as_u64(), e["child"].as_u64()) {
            children.entry(p).or_default().push(c);
        }
    }
    let mut reach: HashSet<u64> = HashSet::new();
    let mut todo: Vec<u64> = nodes
        .iter()
        .filter(|n| n["type"] == "block-backend")
        .filter_map(|n| n["id"].as_u64())
        .collect();
    while let Some(id) = todo.pop() {
        if reach.insert(id) {
            todo.extend(children.get(&id).into_iter().flatten().copied());
        }
    }
    let mut out = Vec::new();
    for n in &nodes {
        let (Some(id), Some(name)) = (n["id"].as_u64(), n["name"].as_str()) else {
            continue;
        };
        if NODES.contains(&name) {
            out.push(format!("{name} (replication left in place)"));
        } else if name.starts_with("ftvirt-") && n["type"] == "block-driver" && !reach.contains(&id)
        {
            out.push(format!("{name} (used by nothing)"));
        }
    }
    out
}

/// The secondary's remains on `host` (not the domain's host any more): the
/// domain running there, its images.
pub fn peer(lab: &Lab, host: &str, dom: &str) -> Vec<String> {
    let Ok(h) = lab.host(host) else {
        return Vec::new();
    };
    if !h.is_up() {
        return Vec::new();
    }
    let mut out = Vec::new();
    if h.domains(false)
        .unwrap_or_default()
        .iter()
        .any(|d| d == dom)
    {
        out.push(format!("{dom} still running on {host}"));
    }
    let dir = h.dir.join(format!("overlays/{dom}/secondary"));
    if dir.exists() {
        out.push(format!(
            "the secondary's images {} on {host}",
            dir.display()
        ));
    }
    out
}

/// QEMU processes on `host` beyond the domains its libvirtd runs.
pub fn orphan_qemu(lab: &Lab, host: &str) -> Vec<String> {
    let Ok(h) = lab.host(host) else {
        return Vec::new();
    };
    if !h.is_up() {
        return Vec::new();
    }
    let Ok(pids) = h.ns.pids() else {
        return Vec::new();
    };
    let qemus = pids
        .iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.starts_with("qemu"))
        })
        .count();
    let running = h.domains(false).map(|d| d.len()).unwrap_or(qemus);
    if qemus > running {
        vec![format!(
            "{} QEMU process(es) on {host} that libvirt does not run ({qemus} QEMU, {running} domains)",
            qemus - running
        )]
    } else {
        Vec::new()
    }
}

/// ftd on `host` holds more file descriptors than at the start (same process).
pub fn ftd_fds(host: &str, first: (u32, usize), now: Option<(u32, usize)>) -> Vec<String> {
    match now {
        Some((pid, fds)) if pid == first.0 && fds > first.1 + FD_SLACK => vec![format!(
            "ftd on {host} holds {fds} file descriptors, {} at the start",
            first.1
        )],
        _ => Vec::new(),
    }
}

/// After tear-down: namespaces of lab `id` (`ftl-<id>-*`) and processes that name
/// the lab directory, left after 30 s.
pub fn after_teardown(id: &str, dir: &std::path::Path) -> Vec<String> {
    let prefix = format!("{}{id}-", ftvirt_lab::netns::PREFIX);
    let dir = dir.to_string_lossy().to_string();
    let mut left = Vec::new();
    // What is left after the time-out is the answer, not an error.
    let _ = wait_until(
        "the lab's namespaces and processes to be gone",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            left = ftvirt_lab::netns::list_lab_namespaces()
                .into_iter()
                .filter(|n| n.starts_with(&prefix))
                .map(|n| format!("namespace {n}"))
                .collect();
            left.extend(
                processes_naming(&dir)
                    .into_iter()
                    .map(|p| format!("process {p}")),
            );
            Look::holds(left.is_empty(), || format!("{left:?}"))
        },
    );
    left
}

/// `pid (command)` of every process whose command line contains `needle`.
fn processes_naming(needle: &str) -> Vec<String> {
    let me = std::process::id();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| p != me)
        .filter_map(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(needle)
                .then(|| format!("{p} ({})", cmd.chars().take(80).collect::<String>()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nodes_no_device_reaches_are_found() {
        // device -> quorum2 -> base2; quorum1 -> base1 left from an earlier
        // protection; replication still attached.
        let g = json!({
            "nodes": [
                {"id": 1, "type": "block-backend", "name": "virtio-disk0"},
                {"id": 2, "type": "block-driver", "name": "ftvirt-quorum2"},
                {"id": 3, "type": "block-driver", "name": "ftvirt-base2"},
                {"id": 4, "type": "block-driver", "name": "ftvirt-quorum1"},
                {"id": 5, "type": "block-driver", "name": "ftvirt-base1"},
                {"id": 6, "type": "block-driver", "name": "ftvirt-replication"},
                {"id": 7, "type": "block-driver", "name": "#block123"},
            ],
            "edges": [
                {"parent": 1, "child": 2}, {"parent": 2, "child": 3},
                {"parent": 2, "child": 6}, {"parent": 4, "child": 5},
            ]
        });
        let mut u = unused_nodes(&g);
        u.sort();
        assert_eq!(
            u,
            vec![
                "ftvirt-base1 (used by nothing)",
                "ftvirt-quorum1 (used by nothing)",
                "ftvirt-replication (replication left in place)",
            ]
        );
    }

    #[test]
    fn ftd_fds_allow_a_little_slack_and_only_compare_one_process() {
        assert!(ftd_fds("a", (10, 20), Some((10, 20 + FD_SLACK))).is_empty());
        assert_eq!(ftd_fds("a", (10, 20), Some((10, 30))).len(), 1);
        assert!(
            ftd_fds("a", (10, 20), Some((11, 99))).is_empty(),
            "restarted ftd"
        );
        assert!(ftd_fds("a", (10, 20), None).is_empty());
    }
}
