//! Checks that need the whole parsed configuration: ranges, detection time against
//! the heartbeat, duplicate peers and ports, a peer that is this host. Each problem
//! names the key(s) it is about; `locate` turns that into a line and column.

use super::locate::{locate, Seg};
use super::{Config, ConfigError};
use std::collections::HashMap;
use std::time::Duration;

/// What is wrong, about which keys (the first one written in the file is shown).
#[derive(Debug)]
pub struct Problem {
    paths: Vec<Vec<Seg>>,
    message: String,
}

impl Problem {
    fn at(path: Vec<Seg>, message: String) -> Problem {
        Problem {
            paths: vec![path],
            message,
        }
    }

    pub fn into_error(self, text: &str, origin: &str) -> ConfigError {
        let found: Vec<_> = self.paths.iter().filter_map(|p| locate(text, p)).collect();
        let at = found
            .iter()
            .find(|f| f.exact)
            .or(found.first())
            .map(|f| f.at);
        ConfigError::Invalid {
            origin: origin.into(),
            at,
            message: self.message,
        }
    }
}

use Seg::{Index, Key};

#[derive(Clone, Copy)]
enum Unit {
    Ms,
    S,
}

/// Allowed values of `defaults:` (inclusive).
const CHECKPOINT_INTERVAL_MS: (u64, u64) = (100, 60_000);
const HEARTBEAT_INTERVAL_MS: (u64, u64) = (10, 10_000);
const DETECTION_TIME_MS: (u64, u64) = (30, 60_000);
const COMPARE_TIMEOUT_MS: (u64, u64) = (10, 60_000);
const SYNC_TIMEOUT_S: (u64, u64) = (10, 86_400);
/// Allowed values of `arbiter.fence-margin` (ms).
const FENCE_MARGIN_MS: (u64, u64) = (100, 60_000);
/// Allowed values of `arbiter.witness.timeout` (ms).
const WITNESS_TIMEOUT_MS: (u64, u64) = (10, 10_000);
/// Allowed values of `colo.secondary-memory-percent`: at least the guest's RAM;
/// 1000 is far beyond any cache COLO keeps.
const SECONDARY_MEMORY_PERCENT: (u64, u64) = (100, 1000);
/// Allowed values of `colo.secondary-memory-headroom` (MiB).
const SECONDARY_MEMORY_HEADROOM_MIB: (u64, u64) = (0, 65_536);

fn range(
    key: &'static str,
    v: Duration,
    (min, max): (u64, u64),
    unit: Unit,
) -> Result<(), Problem> {
    let (n, unit) = match unit {
        Unit::Ms => (v.as_millis() as u64, "ms"),
        Unit::S => (v.as_secs(), "s"),
    };
    if (min..=max).contains(&n) {
        return Ok(());
    }
    Err(Problem::at(
        vec![Key("defaults"), Key(key)],
        format!("{key} {n} is out of range: use {min} to {max} {unit}"),
    ))
}

pub fn check(c: &Config) -> Result<(), Problem> {
    let t = &c.defaults;
    range(
        "checkpoint-interval",
        t.checkpoint_interval,
        CHECKPOINT_INTERVAL_MS,
        Unit::Ms,
    )?;
    range(
        "heartbeat-interval",
        t.heartbeat_interval,
        HEARTBEAT_INTERVAL_MS,
        Unit::Ms,
    )?;
    range(
        "detection-time",
        t.detection_time,
        DETECTION_TIME_MS,
        Unit::Ms,
    )?;
    range(
        "compare-timeout",
        t.compare_timeout,
        COMPARE_TIMEOUT_MS,
        Unit::Ms,
    )?;
    range("sync-timeout", t.sync_timeout, SYNC_TIMEOUT_S, Unit::S)?;
    let m = c.arbiter.fence_margin.as_millis() as u64;
    if !(FENCE_MARGIN_MS.0..=FENCE_MARGIN_MS.1).contains(&m) {
        return Err(Problem::at(
            vec![Key("arbiter"), Key("fence-margin")],
            format!(
                "fence-margin {m} is out of range: use {} to {} ms",
                FENCE_MARGIN_MS.0, FENCE_MARGIN_MS.1
            ),
        ));
    }
    check_witness(c)?;
    check_memory(c)?;
    if t.detection_time < 3 * t.heartbeat_interval {
        let (d, h) = (
            t.detection_time.as_millis(),
            t.heartbeat_interval.as_millis(),
        );
        return Err(Problem {
            paths: vec![
                vec![Key("defaults"), Key("detection-time")],
                vec![Key("defaults"), Key("heartbeat-interval")],
            ],
            message: format!(
                "detection-time {d} ms is less than 3 x heartbeat-interval ({h} ms): \
                 raise detection-time to at least {} or lower heartbeat-interval to at most {}",
                3 * h,
                d / 3
            ),
        });
    }
    check_peers(c)?;
    check_ports(c)
}

/// `colo.secondary-memory-*`: within their ranges.
fn check_memory(c: &Config) -> Result<(), Problem> {
    let keys = [
        (
            "secondary-memory-percent",
            u64::from(c.colo.secondary_memory_percent),
            SECONDARY_MEMORY_PERCENT,
            "% of the guest's memory (200: its RAM and COLO's cache of it)",
        ),
        (
            "secondary-memory-headroom",
            c.colo.secondary_memory_headroom,
            SECONDARY_MEMORY_HEADROOM_MIB,
            " MiB",
        ),
    ];
    for (key, v, (min, max), unit) in keys {
        if !(min..=max).contains(&v) {
            return Err(Problem::at(
                vec![Key("colo"), Key(key)],
                format!("colo.{key} {v} is out of range: use {min} to {max}{unit}"),
            ));
        }
    }
    Ok(())
}

/// `arbiter.witness`: its deadline, and endpoints exactly when `kind` is etcd, each
/// listed once.
fn check_witness(c: &Config) -> Result<(), Problem> {
    use super::ArbiterKind;
    let w = &c.arbiter.witness;
    let here = |key| vec![Key("arbiter"), Key("witness"), Key(key)];
    let ms = w.timeout.as_millis() as u64;
    let (min, max) = WITNESS_TIMEOUT_MS;
    if !(min..=max).contains(&ms) {
        return Err(Problem::at(
            here("timeout"),
            format!(
                "arbiter.witness.timeout {ms} is out of range: use {min} to {max} ms (a \
                 failover waits this long when the witness does not answer)"
            ),
        ));
    }
    let kind = match c.arbiter.kind {
        ArbiterKind::Etcd => None,
        ArbiterKind::None => Some("none"),
        ArbiterKind::Corosync => Some("corosync"),
    };
    match (kind, w.endpoints.is_empty()) {
        (None, true) => {
            return Err(Problem {
                paths: vec![here("endpoints"), vec![Key("arbiter"), Key("kind")]],
                message: "arbiter.kind is etcd but arbiter.witness.endpoints lists no etcd \
                          member: add the witness's client addresses, e.g. endpoints: \
                          [10.200.0.20:2379]"
                    .into(),
            })
        }
        (Some(kind), false) => {
            return Err(Problem::at(
                here("endpoints"),
                format!(
                    "arbiter.witness.endpoints is set but arbiter.kind is {kind}: set kind: \
                     etcd to use the witness, or remove the endpoints"
                ),
            ))
        }
        _ => {}
    }
    let mut seen = HashMap::new();
    for (i, e) in w.endpoints.iter().enumerate() {
        if let Some(first) = seen.insert(e.0, i) {
            return Err(Problem::at(
                vec![Key("arbiter"), Key("witness"), Key("endpoints"), Index(i)],
                format!(
                    "endpoint {} is listed twice (arbiter.witness.endpoints[{first}] and \
                     [{i}]): remove one",
                    e.0
                ),
            ));
        }
    }
    Ok(())
}

fn check_peers(c: &Config) -> Result<(), Problem> {
    let mut names = HashMap::new();
    let mut addrs = HashMap::new();
    for (i, p) in c.peers.iter().enumerate() {
        let here = |key| vec![Key("peers"), Index(i), Key(key)];
        if p.name == c.host.name {
            return Err(Problem::at(
                here("name"),
                format!(
                    "peer {:?} has this host's own name (host.name): a host is not its own \
                     peer; remove this peer or correct its name",
                    p.name
                ),
            ));
        }
        if p.addr() == c.host.listen_addr() {
            return Err(Problem::at(
                here("address"),
                format!(
                    "peer {:?} has this host's own address and port ({}): remove this peer \
                     or correct its address",
                    p.name,
                    p.addr()
                ),
            ));
        }
        if let Some(first) = names.insert(p.name.as_str(), i) {
            return Err(Problem::at(
                here("name"),
                format!(
                    "peer {:?} is listed twice (peers[{first}] and peers[{i}]): remove one",
                    p.name
                ),
            ));
        }
        if let Some(first) = addrs.insert(p.addr(), i) {
            return Err(Problem::at(
                here("address"),
                format!(
                    "peers {:?} and {:?} have the same address and port ({}): \
                     correct one of them",
                    c.peers[first].name,
                    p.name,
                    p.addr()
                ),
            ));
        }
    }
    Ok(())
}

fn check_ports(c: &Config) -> Result<(), Problem> {
    let p = &c.colo.ports;
    let colo = |key| vec![Key("colo"), Key("ports"), Key(key)];
    let ports = [
        ("host.port", vec![Key("host"), Key("port")], c.host.port),
        ("colo.ports.migration", colo("migration"), p.migration),
        ("colo.ports.nbd", colo("nbd"), p.nbd),
        ("colo.ports.mirror", colo("mirror"), p.mirror),
        ("colo.ports.compare", colo("compare"), p.compare),
        ("colo.ports.compare-in", colo("compare-in"), p.compare_in),
        ("colo.ports.compare-out", colo("compare-out"), p.compare_out),
    ];
    let mut seen = HashMap::new();
    for (name, path, port) in &ports {
        if let Some(other) = seen.insert(*port, *name) {
            // Point at whichever of the two is written in the file.
            let other_path = ports.iter().find(|q| q.0 == other).map(|q| q.1.clone());
            return Err(Problem {
                paths: [Some(path.clone()), other_path]
                    .into_iter()
                    .flatten()
                    .collect(),
                message: format!(
                    "port {port} is used twice, by {other} and {name}: give each its own port"
                ),
            });
        }
    }
    check_slots(c)
}

/// Every slot's ports (see `colo::plan::Ports::checked_nth`) must be valid port
/// numbers and differ from every other slot's and from host.port.
fn check_slots(c: &Config) -> Result<(), Problem> {
    use crate::colo::plan::Ports;
    let bases: Ports = c.colo.ports.into();
    let problem = |message: String| Problem {
        paths: vec![vec![Key("colo"), Key("ports")]],
        message,
    };
    let mut seen = HashMap::new();
    seen.insert(c.host.port, "host.port".to_string());
    for n in 0..Ports::SLOTS {
        let Some(p) = bases.checked_nth(n) else {
            return Err(problem(format!(
                "colo.ports leave no room for {} domains (slot n uses nbd and migration \
                 minus 10 n, the others plus 10 n): choose nbd and migration above {} and \
                 the others below {}",
                Ports::SLOTS,
                10 * (Ports::SLOTS - 1),
                65535 - 10 * (Ports::SLOTS - 1)
            )));
        };
        for port in p.all() {
            let who = format!("slot {n}'s COLO ports");
            if let Some(other) = seen.insert(port, who.clone()) {
                if other != who {
                    return Err(problem(format!(
                        "port {port} is used by {other} and by {who} (slot n adds or takes \
                         10 n to colo.ports): spread colo.ports further apart, or move host.port"
                    )));
                }
                return Err(problem(format!(
                    "port {port} is used twice within {who}: give each colo.ports its own port"
                )));
            }
        }
    }
    Ok(())
}
