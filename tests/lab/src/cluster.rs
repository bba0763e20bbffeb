//! The partition arbiter's cluster in a lab: corosync 3 (votequorum) on the pair,
//! a quorum device (corosync-qdevice, model net, algorithm ffsplit) on each of
//! them, and its witness (corosync-qnetd) on the lab's witness host, all on the
//! replication network (the network whose loss splits the pair). ftd with
//! `arbiter: {kind: corosync}` follows each host's corosync.
//!
//! Timings ([`ClusterTiming::LAB`]): token 1000 ms (consensus 1200 ms, corosync's
//! 1.2 x token), so a silent node leaves the membership 2.2 s after its last token;
//! qdevice timeout 2000 ms (it votes every second; the witness drops a silent
//! device after 2.4 s) and sync_timeout 2000 ms (after a membership change,
//! votequorum waits at most that for the device's vote). corosync runs with
//! real-time priority, so the guests' TCG load does not starve its token.

use crate::error::{LabError, Result};
use crate::wait::{wait_until, Look};
use crate::Lab;
use std::fmt::Write;
use std::time::{Duration, Instant};

/// corosync's timings for a lab cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterTiming {
    pub token_ms: u32,
    pub qdevice_timeout_ms: u32,
    pub qdevice_sync_timeout_ms: u32,
}

impl ClusterTiming {
    pub const LAB: ClusterTiming = ClusterTiming {
        token_ms: 1000,
        qdevice_timeout_ms: 2000,
        qdevice_sync_timeout_ms: 2000,
    };
}

/// `corosync.conf` for `nodes` (name, replication address; node ids 1, 2, ... in
/// this order, so the tie-breaker `lowest` favours the first), the witness at
/// `witness`, kept in `state_dir`.
pub fn corosync_conf(
    cluster: &str,
    nodes: &[(String, String)],
    witness: &str,
    state_dir: &str,
    t: ClusterTiming,
) -> String {
    let mut list = String::new();
    for (i, (name, addr)) in nodes.iter().enumerate() {
        let _ = write!(
            list,
            "  node {{\n    name: {name}\n    nodeid: {}\n    ring0_addr: {addr}\n  }}\n",
            i + 1
        );
    }
    format!(
        "# written by ftvirt-lab\n\
         totem {{\n  version: 2\n  cluster_name: {cluster}\n  transport: knet\n  \
         crypto_cipher: none\n  crypto_hash: none\n  token: {token}\n}}\n\
         nodelist {{\n{list}}}\n\
         quorum {{\n  provider: corosync_votequorum\n  device {{\n    model: net\n    votes: 1\n    \
         timeout: {qt}\n    sync_timeout: {qs}\n    net {{\n      host: {witness}\n      \
         algorithm: ffsplit\n      tie_breaker: lowest\n      tls: off\n    }}\n  }}\n}}\n\
         logging {{\n  to_stderr: yes\n  to_syslog: no\n  to_logfile: no\n  timestamp: hires\n}}\n\
         system {{\n  state_dir: {state_dir}\n}}\n",
        token = t.token_ms,
        qt = t.qdevice_timeout_ms,
        qs = t.qdevice_sync_timeout_ms,
    )
}

impl Lab {
    /// Start the arbiter's cluster on `nodes` (lab hosts) and the witness (the lab
    /// needs [`crate::LabConfig::witness`]); returns once every node is quorate with
    /// every node and the quorum device's vote.
    pub fn start_cluster(&mut self, nodes: &[&str], t: ClusterTiming) -> Result<Duration> {
        let t0 = Instant::now();
        let id = self.id.clone();
        let witness = self
            .witness
            .as_mut()
            .ok_or_else(|| LabError::Usage("this lab has no witness host".into()))?;
        witness.start_qnetd()?;
        let witness_ip = witness.rep_ip.to_string();
        let mut list = Vec::new();
        for n in nodes {
            let h = self.host(n)?;
            list.push((h.name.clone(), h.rep_ip.to_string()));
        }
        for n in nodes {
            let h = self.host_mut(n)?;
            let conf = corosync_conf(
                &format!("ftl{id}"),
                &list,
                &witness_ip,
                &h.corosync_dir().to_string_lossy(),
                t,
            );
            h.start_corosync(&conf)?;
        }
        for n in nodes {
            self.host_mut(n)?.start_qdevice()?;
        }
        let votes = format!("Total votes:      {}", nodes.len() + 1);
        for n in nodes {
            let h = self.host(n)?;
            wait_until(
                &format!("host {n} to be quorate with every node and the witness's vote"),
                Duration::from_secs(60),
                Duration::from_millis(100),
                || match h.quorum_status() {
                    Ok(s) => {
                        let ok = s.contains("Quorate:          Yes") && s.contains(&votes);
                        Look::holds(ok, || s)
                    }
                    Err(e) => Look::Seen(e.to_string()),
                },
            )?;
        }
        Ok(t0.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_corosync_conf_names_each_node_and_the_witness() {
        let c = corosync_conf(
            "ftl0a1b2c",
            &[
                ("a".into(), "10.200.0.11".into()),
                ("b".into(), "10.200.0.12".into()),
            ],
            "10.200.0.10",
            "/var/tmp/x/a/corosync",
            ClusterTiming::LAB,
        );
        for want in [
            "cluster_name: ftl0a1b2c",
            "token: 1000",
            "name: a\n    nodeid: 1\n    ring0_addr: 10.200.0.11",
            "name: b\n    nodeid: 2\n    ring0_addr: 10.200.0.12",
            "host: 10.200.0.10",
            "algorithm: ffsplit",
            "sync_timeout: 2000",
            "state_dir: /var/tmp/x/a/corosync",
        ] {
            assert!(c.contains(want), "{want:?} missing in:\n{c}");
        }
    }
}
