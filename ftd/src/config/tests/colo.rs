//! The `colo:` section: its defaults, and `colo.secondary-memory-*` set and
//! refused out of range with the key's line and what to use.

use super::{err, HOST, ORIGIN};
use crate::colo::fit::MemoryNeed;
use crate::config::{Colo, ColoPorts, Config};
use std::path::PathBuf;

#[test]
fn a_minimal_config_gets_the_colo_defaults() {
    let c = Config::from_str(HOST, ORIGIN).unwrap();
    assert_eq!(
        c.colo,
        Colo {
            ports: ColoPorts {
                migration: 9998,
                nbd: 9999,
                mirror: 9003,
                compare: 9004,
                compare_in: 9001,
                compare_out: 9005,
            },
            overlay_dir: "/var/lib/ftvirt/overlays".into(),
            tls: true,
            tls_ca: "/etc/ftvirt/tls/colo-ca.crt".into(),
            tls_cert: "/etc/ftvirt/tls/colo.crt".into(),
            tls_key: "/etc/ftvirt/tls/colo.key".into(),
            trusted_dirs: crate::config::colo::TRUSTED_DIRS
                .iter()
                .map(PathBuf::from)
                .collect(),
            secondary_memory_percent: 200,
            secondary_memory_headroom: 128,
        }
    );
}

#[test]
fn the_secondary_needs_twice_the_guest_and_128_mib_unless_configured() {
    let c = Config::from_str(HOST, ORIGIN).unwrap();
    assert_eq!(c.colo.memory_need(), MemoryNeed::default());
    let text =
        format!("{HOST}colo:\n  secondary-memory-percent: 150\n  secondary-memory-headroom: 0\n");
    let c = Config::from_str(&text, ORIGIN).unwrap();
    assert_eq!(
        c.colo.memory_need(),
        MemoryNeed {
            percent: 150,
            headroom_mib: 0
        }
    );
}

#[test]
fn out_of_range_memory_settings_are_refused_where_written() {
    let e = err(&format!("{HOST}colo:\n  secondary-memory-percent: 50\n"));
    assert_eq!(
        e,
        format!(
            "{ORIGIN}:5:29: colo.secondary-memory-percent 50 is out of range: use 100 to \
             1000% of the guest's memory (200: its RAM and COLO's cache of it)"
        )
    );
    let e = err(&format!(
        "{HOST}colo:\n  tls: true\n  secondary-memory-headroom: 70000\n"
    ));
    assert!(
        e.contains(
            ":6:30: colo.secondary-memory-headroom 70000 is out of range: use 0 to 65536 MiB"
        ),
        "{e}"
    );
    let e = err(&format!("{HOST}colo:\n  secondary-memory-percent: -1\n"));
    assert!(e.contains("secondary-memory-percent"), "{e}");
}
