//! ftd logs to a real journald (one per lab host) with structured fields: each
//! line about a domain carries DOMAIN, and state changes carry ROLE and STATE, so
//! `journalctl DOMAIN=g` shows one domain's story.

mod common;

use common::*;
use ftvirt_lab::{wait_until, Lab, LabConfig, Look};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn ftd_logs_domain_role_and_state_to_journald() {
    let Some(mut lab) = Lab::for_test(LabConfig::hosts(&["a", "b"])) else {
        return;
    };
    define_stopped(&lab, "a", "x");
    lab.host("a").unwrap().start_journald().expect("journald");
    let yaml = {
        let (me, p) = (lab.host("a").unwrap(), lab.host("b").unwrap());
        ftd_yaml(me, p, 2000).replace("output: stderr", "output: auto")
    };
    start_ftd_with(&mut lab, "a", &yaml);
    let c = client(&lab, "a").await;
    assert_eq!(
        c.enable("x", ftd_proxy::no_options()).await.unwrap(),
        "stopped"
    );

    // journald writes asynchronously: wait for the entry.
    let entry = wait_until(
        "ftd's entry in host a's journal",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || {
            let lines = lab.host("a").unwrap().journal().unwrap();
            let n = lines.len();
            let hit = lines
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| {
                    v["SYSLOG_IDENTIFIER"] == "ftd" && v["MESSAGE"] == "user request accepted"
                });
            Look::when(hit, || format!("{n} entries, none of ftd's"))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}; ftd's stderr:\n{}",
            std::fs::read_to_string(lab.host("a").unwrap().ftd_log()).unwrap_or_default()
        )
    });
    eprintln!("journal entry: {entry}");
    assert_eq!(entry["DOMAIN"], "x");
    assert_eq!(entry["ROLE"], "none");
    assert_eq!(entry["STATE"], "stopped");
    // tracing-journald maps INFO to notice (5).
    assert_eq!(entry["PRIORITY"], "5");
    // And nothing went to stderr instead.
    let stderr = std::fs::read_to_string(lab.host("a").unwrap().ftd_log()).unwrap_or_default();
    assert!(!stderr.contains("user request accepted"), "{stderr}");
    lab.shutdown().unwrap();
}
