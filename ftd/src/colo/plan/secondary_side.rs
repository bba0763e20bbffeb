//! The secondary's plans ([`super`]'s "Protect" and "Fail over" blocks, B's
//! lines): its export and incoming listener, and its takeover.

use super::{exec, q, tolerated, uri_addr, Op, Ports};
use crate::colo::tls::{ColoTls, Ids};
use serde_json::{json, Value};

/// B: export the secondary's base image for the primary's sync and replication,
/// and listen for the primary's state (`-incoming defer`), both on `bind` (the
/// replication address) only; with TLS, only the peer's certificate gets in.
pub fn secondary_export(ports: &Ports, bind: &str, tls: Option<&ColoTls>) -> Vec<Op> {
    let ids = Ids::secondary();
    let mut start =
        json!({"addr": {"type": "inet", "data": {"host": bind, "port": ports.nbd.to_string()}}});
    let mut params = json!({"tls-creds": "", "tls-authz": ""});
    if tls.is_some() {
        start["tls-creds"] = json!(ids.server);
        start["tls-authz"] = json!(ids.authz);
        params = json!({"tls-creds": ids.server, "tls-authz": ids.authz});
    }
    vec![
        q(exec("nbd-server-start", start)),
        q(exec(
            "nbd-server-add",
            json!({"device": "parent0", "writable": true}),
        )),
        q(exec("migrate-set-parameters", params)),
        q(exec(
            "migrate-incoming",
            json!({"uri": format!("tcp:{}", uri_addr(bind, ports.migration))}),
        )),
    ]
}

/// B: the primary is gone; become the primary. Last, the guest's NIC announces
/// itself (RARP from its MAC, QEMU's `announce-self`): the LAN's switches learn at
/// once that the guest is now behind this host. Otherwise, when the old primary's
/// port stayed up (a cut replication link, a planned switch-over), clients' frames
/// keep going there until the guest happens to send something.
pub fn take_over() -> Vec<Op> {
    vec![
        tolerated(json!({"execute": "nbd-server-stop"})),
        q(json!({"execute": "x-colo-lost-heartbeat"})),
        tolerated(exec("object-del", json!({"id": "f2"}))),
        tolerated(exec("object-del", json!({"id": "f1"}))),
        tolerated(exec("chardev-remove", json!({"id": "red1"}))),
        tolerated(exec("chardev-remove", json!({"id": "red0"}))),
        tolerated(announce()),
    ]
}

/// `announce-self` for every NIC: first at once (1 ms), then every 100 ms, 5 rounds.
pub fn announce() -> Value {
    exec(
        "announce-self",
        json!({"initial": 1, "max": 100, "rounds": 5, "step": 100}),
    )
}
