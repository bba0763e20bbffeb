//! Cutting single paths of the lab's replication network, with everything else
//! left running: one host's port (the host keeps its LAN port, so its guest could
//! still answer clients), or only the path between two hosts (each still reaches
//! every other host, e.g. the witness), with nftables bridge rules in the switch.

use crate::error::{LabError, Result};
use crate::{cmd, Lab};

/// The switch's nftables table and chain for path cuts.
const TABLE: &str = "ftvirt_lab";
const CHAIN: &str = "cuts";

impl Lab {
    /// Cut (`up = false`) or restore only `host`'s port on the replication network.
    pub fn set_rep_link(&self, host: &str, up: bool) -> Result<()> {
        let name = self.any_host(host)?.name.clone();
        self.switch.link(&format!("{name}-rep"), up)
    }

    fn nft(&self, args: &[&str]) -> Result<String> {
        let mut v = vec!["netns", "exec", self.switch.name.as_str(), "nft"];
        v.extend_from_slice(args);
        cmd::run("ip", v)
    }

    /// Drop every frame between `a` and `b` on the replication network, both ways.
    pub fn cut_path(&self, a: &str, b: &str) -> Result<()> {
        let (pa, pb) = (self.rep_port(a)?, self.rep_port(b)?);
        self.nft(&["add", "table", "bridge", TABLE])?;
        self.nft(&[
            "add",
            "chain",
            "bridge",
            TABLE,
            CHAIN,
            "{ type filter hook forward priority 0; policy accept; }",
        ])?;
        let tag = cut_tag(a, b);
        for (from, to) in [(&pa, &pb), (&pb, &pa)] {
            self.nft(&[
                "add",
                "rule",
                "bridge",
                TABLE,
                CHAIN,
                "iifname",
                from,
                "oifname",
                to,
                "drop",
                "comment",
                &format!("\"{tag}\""),
            ])?;
        }
        Ok(())
    }

    /// Undo [`Lab::cut_path`].
    pub fn heal_path(&self, a: &str, b: &str) -> Result<()> {
        let tag = cut_tag(a, b);
        let list = self.nft(&["-a", "list", "chain", "bridge", TABLE, CHAIN])?;
        let handles: Vec<&str> = list
            .lines()
            .filter(|l| l.contains(&format!("comment \"{tag}\"")))
            .filter_map(|l| l.rsplit_once("# handle ").map(|(_, h)| h.trim()))
            .collect();
        if handles.is_empty() {
            return Err(LabError::Usage(format!(
                "no cut between {a} and {b} to heal"
            )));
        }
        for h in handles {
            self.nft(&["delete", "rule", "bridge", TABLE, CHAIN, "handle", h])?;
        }
        Ok(())
    }

    fn rep_port(&self, host: &str) -> Result<String> {
        Ok(format!("{}-rep", self.any_host(host)?.name))
    }
}

fn cut_tag(a: &str, b: &str) -> String {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    format!("cut {x} {y}")
}
