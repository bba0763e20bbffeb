//! The libvirt driver's pure parts: QMP replies and monitor errors.

use super::*;
use serde_json::json;

#[test]
fn a_closed_monitor_is_told_from_other_failures() {
    // As libvirt 9.0 answered right after a SIGKILL of QEMU (fault matrix).
    assert!(monitor_gone(
        "Unable to read from monitor: Connection reset by peer"
    ));
    assert!(monitor_gone("End of file from qemu monitor"));
    assert!(monitor_gone(
        "Requested operation is not valid: domain is not running"
    ));
    assert!(!monitor_gone(
        "Timed out during operation: cannot acquire state change lock"
    ));
    assert!(!monitor_gone(
        "internal error: unable to execute QEMU command 'cont'"
    ));
}

#[test]
fn qmp_replies_are_unwrapped_or_turned_into_errors() {
    assert_eq!(
        parse_qmp_reply(
            "d",
            "query-status",
            r#"{"return":{"running":true},"id":"x"}"#
        )
        .unwrap(),
        json!({"running": true})
    );
    assert_eq!(
        parse_qmp_reply("d", "stop", r#"{"return":{}}"#).unwrap(),
        json!({})
    );
    let e = parse_qmp_reply(
        "d",
        "x-blockdev-change",
        r#"{"error":{"class":"GenericError","desc":"Node 'x' not found"}}"#,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"QMP x-blockdev-change on domain "d" failed: GenericError: Node 'x' not found"#
    );
    assert!(parse_qmp_reply("d", "stop", "not json")
        .unwrap_err()
        .to_string()
        .contains("unreadable reply to stop"));
}

/// Found by the fuzz target `qmp` (tests/fuzz): serde_json's default float
/// parsing is not correctly rounded, so a number QEMU wrote read as a neighbour
/// of the nearest double and did not read back as itself once written out.
#[test]
fn numbers_read_as_the_nearest_double_and_read_back_unchanged() {
    let v = parse_qmp_reply("d", "x", r#"{"return": 13333166666651666666666}"#).unwrap();
    assert_eq!(v, json!(1.3333166666651668e22));
    let again = parse_qmp_reply("d", "x", &json!({ "return": v }).to_string()).unwrap();
    assert_eq!(again, v);
}
