//! What QEMU's disk error events mean for protection, in words a user can act
//! on. On the secondary's host, any failed read or write of the replicated disk
//! is a failure of the secondary's images (the overlays and its copy of the
//! disk under `colo.overlay-dir`): most often that file system is full. On the
//! primary, a `QUORUM_REPORT_BAD` of ftd's replication node means the secondary's
//! copy did not take a write (its NBD export answered with an error), so it is
//! no copy to fail over to. Other errors (the primary's own disk) are only
//! logged: leaving COLO would not help them.

use crate::colo::plan::{NBD_NODE, REPLICATION_NODE};
use crate::coordinator::State;
use serde_json::Value;
use std::path::Path;

/// Where the domain's task runs and what it can name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Here<'a> {
    pub host: &'a str,
    pub peer: &'a str,
    pub overlay_dir: &'a Path,
}

/// The failure to report for QMP event `event` with `details` in state `st`, if
/// it ends this host's part in the protection.
pub(crate) fn failure(st: State, event: &str, details: &Value, here: Here) -> Option<String> {
    let text = |k: &str| details[k].as_str().map(str::to_string);
    let (reason, nospace, op) = match event {
        "BLOCK_IO_ERROR" => (
            text("reason")?,
            details["nospace"].as_bool().unwrap_or(false),
            text("operation").unwrap_or_else(|| "write".into()),
        ),
        "QUORUM_REPORT_BAD" => (
            text("error")?,
            false,
            text("type").unwrap_or_else(|| "write".into()),
        ),
        _ => return None,
    };
    let nospace = nospace || reason.to_lowercase().contains("no space left");
    match st {
        State::SecondaryPreparing | State::Secondary => {
            let dir = here.overlay_dir.display();
            let host = here.host;
            Some(if nospace {
                format!(
                    "host {host} ran out of space for the secondary's disk images in {dir} \
                     (colo.overlay-dir): {reason}; free space there or point colo.overlay-dir \
                     at a larger file system, then enable protection again"
                )
            } else {
                format!(
                    "host {host} could not {op} the secondary's disk images in {dir} \
                     (colo.overlay-dir): {reason}; check that file system (the kernel log says \
                     more), then enable protection again"
                )
            })
        }
        State::Protected | State::Starting => {
            let node = details["node-name"].as_str().unwrap_or("");
            if event != "QUORUM_REPORT_BAD" || ![REPLICATION_NODE, NBD_NODE].contains(&node) {
                return None;
            }
            let peer = here.peer;
            Some(if nospace {
                format!(
                    "the secondary's copy on host {peer} did not take a {op}: {reason}; free \
                     space in {peer}'s colo.overlay-dir or point it at a larger file system, \
                     then enable protection again"
                )
            } else {
                format!(
                    "the secondary's copy on host {peer} did not take a {op}: {reason}; see \
                     {peer}'s ftd log, then enable protection again"
                )
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn here() -> Here<'static> {
        Here {
            host: "b",
            peer: "a",
            overlay_dir: Path::new("/srv/overlays"),
        }
    }

    #[test]
    fn a_full_overlay_file_system_is_named_with_the_fix() {
        // As QEMU 7.2 reported it in the fault matrix's disk-full scenario.
        let ev = json!({"action":"stop","device":"colo-disk0","node-name":"#block720",
                        "nospace":true,"operation":"write","reason":"No space left on device"});
        let m = failure(State::Secondary, "BLOCK_IO_ERROR", &ev, here()).unwrap();
        assert!(
            m.contains("host b ran out of space")
                && m.contains("/srv/overlays (colo.overlay-dir)")
                && m.contains("No space left on device")
                && m.contains("free space there"),
            "{m}"
        );
        let bad = json!({"error":"No space left on device","node-name":"#block682",
                         "sector-num":2176,"sectors-count":8,"type":"write"});
        assert!(failure(State::Secondary, "QUORUM_REPORT_BAD", &bad, here())
            .unwrap()
            .contains("ran out of space"));
        // QUORUM_FAILURE carries no reason: the BLOCK_IO_ERROR that follows does.
        let f = json!({"reference":"colo-disk0","sector-num":2176,"sectors-count":8});
        assert_eq!(
            failure(State::Secondary, "QUORUM_FAILURE", &f, here()),
            None
        );
    }

    #[test]
    fn other_secondary_errors_name_the_operation_and_the_directory() {
        let ev = json!({"device":"colo-disk0","nospace":false,"operation":"read",
                        "reason":"Input/output error","action":"report"});
        let m = failure(State::SecondaryPreparing, "BLOCK_IO_ERROR", &ev, here()).unwrap();
        assert!(
            m.contains("could not read") && m.contains("/srv/overlays") && m.contains("kernel log"),
            "{m}"
        );
    }

    #[test]
    fn on_the_primary_only_the_replication_nodes_count() {
        let rep =
            json!({"error":"No space left on device","node-name":REPLICATION_NODE,"type":"write"});
        let m = failure(State::Protected, "QUORUM_REPORT_BAD", &rep, here()).unwrap();
        assert!(
            m.contains("copy on host a did not take a write") && m.contains("a's colo.overlay-dir"),
            "{m}"
        );
        let own = json!({"error":"Input/output error","node-name":"ftvirt-base1","type":"write"});
        assert_eq!(
            failure(State::Protected, "QUORUM_REPORT_BAD", &own, here()),
            None
        );
        let io = json!({"reason":"No space left on device","nospace":true,"operation":"write"});
        assert_eq!(
            failure(State::Protected, "BLOCK_IO_ERROR", &io, here()),
            None,
            "the primary's own disk"
        );
        assert_eq!(
            failure(State::Degraded, "QUORUM_REPORT_BAD", &rep, here()),
            None
        );
    }
}
