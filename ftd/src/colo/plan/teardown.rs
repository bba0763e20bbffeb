//! The primary's way out of COLO ([`super`]'s "Fail over" block): leaving it
//! (peer lost, or disable), cutting a lost peer during a protection attempt, and
//! undoing a failed attempt. Every removal is tolerated if already gone.

use super::JobState;
use super::{
    exec, primary_ids, tolerated, Op, Wiring, COLO_IOTHREAD, NBD_NODE, PIVOT_JOB, PRIMARY_CHARDEVS,
    PRIMARY_OBJECTS, REPLICATION_NODE, SYNC_JOB, SYNC_NBD_NODE,
};
use serde_json::json;
use std::time::Duration;

/// A: leave COLO and run alone; every removal tolerated if already gone.
///
/// First every connection to the peer is yanked (NBD, the proxy's two servers,
/// the COLO migration stream): with the peer powered off, an NBD request or a
/// graph change would otherwise wait for TCP to give up (tens of seconds, the
/// guest frozen meanwhile). One `yank` per instance, since one unknown instance
/// fails the whole command.
pub fn leave_colo(w: &Wiring) -> Vec<Op> {
    let mut v: Vec<Op> = [
        json!({"type": "block-node", "node-name": NBD_NODE}),
        json!({"type": "chardev", "id": "mirror0"}),
        json!({"type": "chardev", "id": "compare1"}),
        json!({"type": "migration"}),
    ]
    .into_iter()
    .map(|i| tolerated(exec("yank", json!({"instances": [i]}))))
    .collect();
    v.extend([
        tolerated(exec(
            "x-blockdev-change",
            json!({"parent": w.quorum(), "child": "children.1"}),
        )),
        tolerated(exec("blockdev-del", json!({"node-name": REPLICATION_NODE}))),
        tolerated(exec("blockdev-del", json!({"node-name": SYNC_NBD_NODE}))),
    ]);
    v.extend(
        PRIMARY_OBJECTS
            .iter()
            .map(|id| tolerated(exec("object-del", json!({"id": id})))),
    );
    v.push(Op::IoThread {
        id: COLO_IOTHREAD,
        add: false,
        tolerate: true,
    });
    v.push(tolerated(json!({"execute": "x-colo-lost-heartbeat"})));
    v.extend(
        PRIMARY_CHARDEVS
            .iter()
            .map(|id| tolerated(exec("chardev-remove", json!({"id": id})))),
    );
    if let Some(ids) = primary_ids(w) {
        v.extend(
            ids.all()
                .into_iter()
                .map(|id| tolerated(exec("object-del", json!({"id": id})))),
        );
    }
    v.push(tolerated(json!({"execute": "cont"})));
    v
}

/// A: the peer is gone while a protection attempt runs: cut every connection
/// to it, so that the running step fails now. A sync's mirror waiting on the
/// dead NBD export holds the guest's disk drained meanwhile (its convergence
/// check flushes the target), so the guest would wait with it.
pub fn cut_peer() -> Vec<Op> {
    let mut v = vec![Op::YankNbd];
    v.extend(
        [
            json!({"type": "chardev", "id": "mirror0"}),
            json!({"type": "chardev", "id": "compare1"}),
            json!({"type": "migration"}),
        ]
        .into_iter()
        .map(|i| tolerated(exec("yank", json!({"instances": [i]})))),
    );
    v
}

/// A: undo a failed protection attempt, leaving the guest running.
pub fn undo(w: &Wiring) -> Vec<Op> {
    let mut v = vec![
        tolerated(json!({"execute": "cont"})),
        Op::YankNbd,
        tolerated(exec(
            "block-job-cancel",
            json!({"device": SYNC_JOB, "force": true}),
        )),
        tolerated(exec(
            "block-job-cancel",
            json!({"device": PIVOT_JOB, "force": true}),
        )),
        tolerated(json!({"execute": "migrate_cancel"})),
        Op::WaitJob {
            job: SYNC_JOB.into(),
            until: JobState::Gone,
            timeout: Duration::from_secs(30),
        },
    ];
    v.extend(leave_colo(w));
    v
}
