//! What QEMU says through libvirt: the input is one QMP reply, as
//! `virDomainQemuMonitorCommand` returns it ([`parse_qmp_reply`], behind every
//! `Libvirt::qmp`), and the same text as an event's `data`, as
//! `virConnectDomainQemuMonitorEventRegister` hands it to ftd ([`QmpEvent::decode`]).
//!
//! Properties: no panic; a reply's `return` value reads back unchanged when QEMU
//! sends it again; an error reply is an error whatever else it holds; event details
//! are the JSON given or `null`.

#![no_main]

use ftd::libvirt::{parse_qmp_reply, LibvirtError};
use ftd::qmp_events::QmpEvent;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    match parse_qmp_reply("guest", "query-status", text) {
        Ok(v) => {
            let again = json!({ "return": v }).to_string();
            assert_eq!(
                parse_qmp_reply("guest", "query-status", &again)
                    .as_ref()
                    .ok(),
                Some(&v),
                "{again}"
            );
            assert!(parsed.as_ref().is_some_and(|p| p.get("error").is_none()));
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            let error_reply = parsed.as_ref().is_some_and(|p| p.get("error").is_some());
            assert_eq!(matches!(e, LibvirtError::Qmp { .. }), error_reply, "{e}");
        }
    }
    let ev = QmpEvent::decode("guest".into(), "COLO_EXIT".into(), -1, u32::MAX, text);
    assert_eq!(ev.details, parsed.unwrap_or(Value::Null));
    // What the domain task reads of it (`domain::qmp_event`).
    let _ = (
        ev.details["reason"].as_str(),
        ev.details["mode"].to_string(),
    );
});
