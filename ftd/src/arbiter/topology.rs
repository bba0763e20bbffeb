//! What ftd needs from corosync's configuration, read from its cmap keys and
//! checked: this node's and the peer's node ids, and the timings that bound the
//! arbiter's waits. A configuration that cannot arbitrate a partition between the
//! two hosts is refused, with the key and the fix named.

use super::judge::Timing;
use super::ArbiterError;
use std::collections::BTreeMap;
use std::time::Duration;

/// A cmap value, as far as ftd reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Num(u64),
    Str(String),
}

/// The cmap keys ftd reads (prefixes; everything under them).
pub const PREFIXES: [&str; 4] = [
    "nodelist.node.",
    "quorum.",
    "runtime.config.totem.",
    "runtime.votequorum.this_node_id",
];

/// The pair as corosync knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub me: u32,
    pub peer: u32,
    /// Every node: (node id, name).
    pub nodes: Vec<(u32, String)>,
    pub timing: Timing,
    /// The quorum device's model, if one is configured.
    pub qdevice: Option<String>,
}

fn num(keys: &BTreeMap<String, Value>, k: &str) -> Option<u64> {
    match keys.get(k)? {
        Value::Num(n) => Some(*n),
        Value::Str(s) => s.trim().parse().ok(),
    }
}

fn text<'a>(keys: &'a BTreeMap<String, Value>, k: &str) -> Option<&'a str> {
    match keys.get(k)? {
        Value::Str(s) => Some(s),
        Value::Num(_) => None,
    }
}

/// One node's `nodeid`, `name` and `ring0_addr` keys.
type NodeKeys<'a> = (Option<u32>, Option<&'a str>, Option<&'a str>);

fn bad(msg: String) -> ArbiterError {
    ArbiterError::Config(msg)
}

/// Check corosync's configuration for arbitrating between this host and the peer
/// named `peer` (ftd's `peers[0].name`) at `peer_addr`.
pub fn read(
    keys: &BTreeMap<String, Value>,
    peer: &str,
    peer_addr: &str,
) -> Result<Topology, ArbiterError> {
    let provider = text(keys, "quorum.provider").unwrap_or("");
    if provider != "corosync_votequorum" {
        return Err(bad(format!(
            "quorum.provider is {provider:?}: set `provider: corosync_votequorum` in the \
             quorum section of corosync.conf"
        )));
    }
    let me = num(keys, "runtime.votequorum.this_node_id").ok_or_else(|| {
        bad("corosync does not say this node's id (runtime.votequorum.this_node_id)".into())
    })? as u32;
    // nodelist.node.<i>.<field>
    let mut by_index: BTreeMap<&str, NodeKeys> = BTreeMap::new();
    for (k, _) in keys.range("nodelist.node.".to_string()..) {
        let Some(rest) = k.strip_prefix("nodelist.node.") else {
            break;
        };
        let Some((i, field)) = rest.split_once('.') else {
            continue;
        };
        let e = by_index.entry(i).or_default();
        match field {
            "nodeid" => e.0 = num(keys, k).map(|n| n as u32),
            "name" => e.1 = text(keys, k),
            "ring0_addr" => e.2 = text(keys, k),
            _ => {}
        }
    }
    let nodes: Vec<(u32, String, Option<&str>)> = by_index
        .values()
        .filter_map(|(id, name, addr)| {
            Some(((*id)?, name.or(*addr).unwrap_or("?").to_string(), *addr))
        })
        .collect();
    let listed = nodes
        .iter()
        .map(|(id, n, _)| format!("{n} ({id})"))
        .collect::<Vec<_>>()
        .join(", ");
    let peer_id = nodes
        .iter()
        .find(|(_, n, _)| n == peer)
        .or_else(|| nodes.iter().find(|(_, _, a)| *a == Some(peer_addr)))
        .map(|(id, ..)| *id)
        .ok_or_else(|| {
            bad(format!(
                "corosync's nodelist has no node named {peer:?} nor with ring0_addr {peer_addr} \
                 (it lists: {listed}): give the peer's node `name: {peer}` in corosync.conf"
            ))
        })?;
    if peer_id == me {
        return Err(bad(format!(
            "the node named {peer:?} in corosync's nodelist is this node ({me}): each host's \
             node needs its own name and nodeid"
        )));
    }
    let qdevice = text(keys, "quorum.device.model").map(String::from);
    if qdevice.is_none() && nodes.len() < 3 {
        return Err(bad(format!(
            "corosync has {} node(s) and no quorum device: when the link between the hosts is \
             cut, either both sides keep quorum (two_node) or neither does. Add a quorum device \
             (quorum.device with `model: net`, `votes: 1` and a corosync-qnetd on a third host) \
             or a third node",
            nodes.len()
        )));
    }
    if num(keys, "quorum.two_node") == Some(1) {
        return Err(bad(
            "quorum.two_node is 1: it makes each side of a partition quorate on its own; \
             remove it and use a quorum device"
                .into(),
        ));
    }
    let ms = |k: &str, default: u64| Duration::from_millis(num(keys, k).unwrap_or(default));
    let token = ms("runtime.config.totem.token", 3000);
    let consensus = ms(
        "runtime.config.totem.consensus",
        token.as_millis() as u64 * 12 / 10,
    );
    let (qdevice_sync, qdevice_timeout) = if qdevice.is_some() {
        (
            ms("quorum.device.sync_timeout", 30_000),
            ms("quorum.device.timeout", 10_000),
        )
    } else {
        (Duration::ZERO, Duration::ZERO)
    };
    Ok(Topology {
        me,
        peer: peer_id,
        nodes: nodes.into_iter().map(|(id, n, _)| (id, n)).collect(),
        timing: Timing {
            membership: token + consensus,
            qdevice_sync,
            qdevice_timeout,
        },
        qdevice,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(extra: &[(&str, Value)]) -> BTreeMap<String, Value> {
        let s = |v: &str| Value::Str(v.into());
        let mut m: BTreeMap<String, Value> = [
            ("quorum.provider", s("corosync_votequorum")),
            ("quorum.device.model", s("net")),
            ("quorum.device.timeout", Value::Num(2000)),
            ("quorum.device.sync_timeout", Value::Num(2000)),
            ("runtime.votequorum.this_node_id", Value::Num(1)),
            ("runtime.config.totem.token", Value::Num(1000)),
            ("runtime.config.totem.consensus", Value::Num(1200)),
            ("nodelist.node.0.name", s("a")),
            ("nodelist.node.0.nodeid", Value::Num(1)),
            ("nodelist.node.0.ring0_addr", s("10.200.0.11")),
            ("nodelist.node.1.name", s("b")),
            ("nodelist.node.1.nodeid", Value::Num(2)),
            ("nodelist.node.1.ring0_addr", s("10.200.0.12")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in extra {
            m.insert(k.to_string(), v.clone());
        }
        m
    }

    #[test]
    fn the_lab_pair_with_a_quorum_device() {
        let t = read(&keys(&[]), "b", "10.200.0.12").unwrap();
        assert_eq!((t.me, t.peer), (1, 2));
        assert_eq!(t.timing.membership, Duration::from_millis(2200));
        assert_eq!(t.timing.qdevice_sync, Duration::from_millis(2000));
        assert_eq!(t.qdevice.as_deref(), Some("net"));
        // The peer is found by its address when its name differs.
        let t = read(&keys(&[]), "hostb", "10.200.0.12").unwrap();
        assert_eq!(t.peer, 2);
    }

    #[test]
    fn configurations_that_cannot_arbitrate_are_refused() {
        let e = read(&keys(&[]), "c", "10.200.0.13")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no node named \"c\"") && e.contains("a (1), b (2)"),
            "{e}"
        );
        let mut k = keys(&[]);
        k.remove("quorum.device.model");
        let e = read(&k, "b", "10.200.0.12").unwrap_err().to_string();
        assert!(
            e.contains("no quorum device") && e.contains("corosync-qnetd"),
            "{e}"
        );
        let e = read(&keys(&[("quorum.two_node", Value::Num(1))]), "b", "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("two_node"), "{e}");
        let e = read(
            &keys(&[("quorum.provider", Value::Str("corosync_ykd".into()))]),
            "b",
            "x",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("corosync_votequorum"), "{e}");
    }
}
