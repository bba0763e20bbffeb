use super::*;

fn wiring() -> Wiring {
    Wiring {
        device_node: "libvirt-1-format".into(),
        gen: 1,
        base_image: "/var/lib/libvirt/images/g.ftvirt1.qcow2".into(),
        netdev: "hostnet0".into(),
        primary_addr: "10.200.0.11".into(),
        secondary_addr: "10.200.0.12".into(),
        ports: Ports::slot(0),
        checkpoint_ms: 2000,
        compare_timeout_ms: 3000,
        sync_timeout: Duration::from_secs(600),
        tls: Some(ColoTls {
            dir: "/var/lib/ftvirt/qemu-tls".into(),
            peer: "hostb".into(),
        }),
    }
}

fn cmd(plan: &[Op], i: usize) -> Value {
    match &plan[i] {
        Op::Qmp { cmd, .. } => cmd.clone(),
        other => panic!("op {i} is {other:?}"),
    }
}

#[test]
fn pivot_moves_the_device_under_a_fresh_quorum() {
    let p = pivot(&wiring());
    assert_eq!(
        commands(&p),
        [
            "blockdev-add",
            "blockdev-add",
            "blockdev-mirror",
            "wait ftvirt-pivot Ready",
            "block-job-complete",
            "wait ftvirt-pivot Gone"
        ]
    );
    assert_eq!(
        cmd(&p, 0),
        json!({"execute": "blockdev-add", "arguments": {"driver": "qcow2", "node-name": "ftvirt-base1", "cache": {"direct": true},
               "file": {"driver": "file", "filename": "/var/lib/libvirt/images/g.ftvirt1.qcow2", "cache": {"direct": true}}}})
    );
    assert_eq!(
        cmd(&p, 1)["arguments"],
        json!({"driver": "quorum", "node-name": "ftvirt-quorum1", "vote-threshold": 1, "read-pattern": "fifo", "children": ["ftvirt-base1"]})
    );
    assert_eq!(
        cmd(&p, 2)["arguments"],
        json!({"job-id": "ftvirt-pivot", "device": "libvirt-1-format", "target": "ftvirt-quorum1", "sync": "full"})
    );
}

#[test]
fn sync_mirrors_into_the_secondary_export() {
    let p = sync(&wiring());
    assert_eq!(
        commands(&p),
        [
            "object-del",
            "object-add",
            "object-del",
            "object-add",
            "object-del",
            "object-add",
            "blockdev-del",
            "blockdev-add",
            "blockdev-mirror",
            "wait ftvirt-sync Ready"
        ]
    );
    assert_eq!(
        cmd(&p, 7)["arguments"],
        json!({"driver": "nbd", "node-name": "ftvirt-sync-nbd", "export": "parent0",
               "server": {"type": "inet", "host": "10.200.0.12", "port": "9999"},
               "tls-creds": "ftvirt-tls-client1", "tls-hostname": "hostb"})
    );
    assert_eq!(
        cmd(&p, 8)["arguments"],
        json!({"device": "ftvirt-quorum1", "job-id": "ftvirt-sync", "target": "ftvirt-sync-nbd", "sync": "full"})
    );
    assert!(
        matches!(&p[9], Op::WaitJob { until: JobState::Ready, timeout, .. } if *timeout == Duration::from_secs(600))
    );
}

#[test]
fn start_colo_is_the_recipe_sequence_with_vnet_hdr() {
    let p = start_colo(&wiring());
    assert_eq!(
        commands(&p),
        [
            "stop",
            "block-job-cancel",
            "wait ftvirt-sync Gone",
            "blockdev-del",
            "blockdev-add",
            "x-blockdev-change",
            "chardev-add",
            "chardev-add",
            "chardev-add",
            "chardev-add",
            "chardev-add",
            "chardev-add",
            "object-add",
            "object-add",
            "object-add",
            "libvirt add iothread 900",
            "object-add",
            "wait connected mirror0,compare1",
            "migrate-set-capabilities",
            "migrate-set-parameters",
            "migrate",
            "wait colo primary",
        ]
    );
    assert_eq!(
        cmd(&p, 4)["arguments"],
        json!({"driver": "replication", "mode": "primary", "node-name": "ftvirt-replication",
               "file": {"driver": "nbd", "node-name": "ftvirt-nbd", "export": "parent0", "server": {"type": "inet", "host": "10.200.0.12", "port": "9999"},
                        "tls-creds": "ftvirt-tls-client1", "tls-hostname": "hostb"}})
    );
    assert_eq!(
        cmd(&p, 5)["arguments"],
        json!({"parent": "ftvirt-quorum1", "node": "ftvirt-replication"})
    );
    assert_eq!(
        cmd(&p, 6)["arguments"],
        json!({"id": "mirror0", "backend": {"type": "socket", "data": {"addr": {"type": "inet", "data": {"host": "10.200.0.11", "port": "9003"}}, "server": true, "wait": false,
               "tls-creds": "ftvirt-tls-server1", "tls-authz": "ftvirt-authz1"}}})
    );
    assert_eq!(
        cmd(&p, 9)["arguments"],
        json!({"id": "compare0-0", "backend": {"type": "socket", "data": {"addr": {"type": "inet", "data": {"host": "127.0.0.1", "port": "9001"}}, "server": false}}})
    );
    // Every filter and colo-compare carries the virtio-net header (libvirt taps have it).
    for i in [12, 13, 14, 16] {
        assert_eq!(
            cmd(&p, i)["arguments"]["vnet_hdr_support"],
            json!(true),
            "op {i}"
        );
        if i != 16 {
            assert_eq!(cmd(&p, i)["arguments"]["netdev"], json!("hostnet0"));
        }
    }
    assert_eq!(cmd(&p, 16)["arguments"]["compare_timeout"], json!(3000));
    assert_eq!(
        p[17],
        Op::WaitConnected {
            chardevs: vec!["mirror0".into(), "compare1".into()],
            peer: "10.200.0.12".into(),
            timeout: CONNECT_TIMEOUT
        }
    );
    assert_eq!(
        cmd(&p, 19)["arguments"],
        json!({"x-checkpoint-delay": 200, "tls-creds": "ftvirt-tls-client1", "tls-hostname": "hostb"})
    );
    assert_eq!(
        cmd(&p, 20)["arguments"],
        json!({"uri": "tcp:10.200.0.12:9998"})
    );
}

/// Every channel that leaves the host: its QMP command and, where it has one,
/// the TLS it must carry.
fn peer_channels(plan: &[Op]) -> Vec<Value> {
    plan.iter()
        .filter_map(|op| match op {
            Op::Qmp { cmd, .. } => Some(cmd.clone()),
            _ => None,
        })
        .filter(|c| {
            let a = &c["arguments"];
            match c["execute"].as_str().unwrap_or_default() {
                "chardev-add" => a["backend"]["data"]["addr"]["data"]["host"] != "127.0.0.1",
                "blockdev-add" => a["driver"] == "nbd" || a["file"]["driver"] == "nbd",
                "nbd-server-start" | "migrate" | "migrate-incoming" => true,
                _ => false,
            }
        })
        .collect()
}

#[test]
fn every_channel_to_the_peer_carries_tls() {
    let w = wiring();
    let (sync, start) = (sync(&w), start_colo(&w));
    let b = secondary_export(&Ports::slot(0), "10.200.0.12", w.tls.as_ref());
    let all: Vec<Value> = [&sync, &start, &b]
        .into_iter()
        .flat_map(|p| peer_channels(p))
        .collect();
    assert_eq!(all.len(), 7, "{all:#?}");
    for c in &all {
        let a = &c["arguments"];
        match c["execute"].as_str().unwrap() {
            "chardev-add" => {
                assert_eq!(
                    a["backend"]["data"]["tls-creds"], "ftvirt-tls-server1",
                    "{c}"
                );
                assert_eq!(a["backend"]["data"]["tls-authz"], "ftvirt-authz1", "{c}");
            }
            "blockdev-add" => {
                let nbd = if a["driver"] == "nbd" { a } else { &a["file"] };
                assert_eq!(nbd["tls-creds"], "ftvirt-tls-client1", "{c}");
                assert_eq!(nbd["tls-hostname"], "hostb", "{c}");
            }
            "nbd-server-start" => {
                assert_eq!(a["tls-creds"], "ftvirt-tls-server", "{c}");
                assert_eq!(a["tls-authz"], "ftvirt-authz", "{c}");
                assert_eq!(
                    a["addr"]["data"]["host"], "10.200.0.12",
                    "bound to the replication address"
                );
            }
            "migrate-incoming" => {
                assert_eq!(
                    a["uri"], "tcp:10.200.0.12:9998",
                    "bound to the replication address"
                );
            }
            "migrate" => {}
            other => panic!("{other}"),
        }
    }
    // The migration's TLS is set right before each side's migrate command.
    let params = |plan: &[Op], before: &str| {
        let i = commands(plan).iter().position(|c| c == before).unwrap();
        cmd(plan, i - 1)["arguments"].clone()
    };
    assert_eq!(params(&start, "migrate")["tls-creds"], "ftvirt-tls-client1");
    assert_eq!(params(&start, "migrate")["tls-hostname"], "hostb");
    assert_eq!(
        params(&b, "migrate-incoming"),
        json!({"tls-creds": "ftvirt-tls-server", "tls-authz": "ftvirt-authz"})
    );
    // The TLS objects exist before the first channel names them.
    assert_eq!(
        sync.iter()
            .take(6)
            .filter_map(|op| match op {
                Op::Qmp {
                    cmd,
                    tolerate: false,
                } => cmd["arguments"]["qom-type"].as_str(),
                _ => None,
            })
            .collect::<Vec<_>>(),
        ["tls-creds-x509", "tls-creds-x509", "authz-simple"]
    );
}

#[test]
fn with_tls_off_no_channel_names_tls_and_old_settings_are_cleared() {
    let w = Wiring {
        tls: None,
        ..wiring()
    };
    let (sync, start) = (sync(&w), start_colo(&w));
    let b = secondary_export(&Ports::slot(0), "10.200.0.12", None);
    for c in [&sync, &start, &b]
        .into_iter()
        .flat_map(|p| peer_channels(p))
    {
        assert!(!c.to_string().contains("tls"), "{c}");
    }
    assert!(!commands(&sync).contains(&"object-add".to_string()));
    let i = commands(&start)
        .iter()
        .position(|c| c == "migrate")
        .unwrap();
    assert_eq!(cmd(&start, i - 1)["arguments"]["tls-creds"], "");
    assert!(!commands(&leave_colo(&w)).is_empty());
}

#[test]
fn leave_colo_removes_everything_start_colo_added_and_tolerates_absence() {
    let w = wiring();
    let start: Vec<Op> = sync(&w).into_iter().chain(start_colo(&w)).collect();
    let leave = leave_colo(&w);
    assert!(leave.iter().all(|op| matches!(
        op,
        Op::Qmp { tolerate: true, .. } | Op::IoThread { tolerate: true, .. }
    )));
    // colo-compare's IOThread goes through libvirt both ways (a restarted
    // libvirtd must find only IOThreads it knows).
    assert!(start.iter().any(|op| matches!(
        op,
        Op::IoThread {
            id: COLO_IOTHREAD,
            add: true,
            tolerate: false
        }
    )));
    assert!(leave.iter().any(|op| matches!(
        op,
        Op::IoThread {
            id: COLO_IOTHREAD,
            add: false,
            ..
        }
    )));
    assert!(!start
        .iter()
        .any(|op| matches!(op, Op::Qmp { cmd, .. } if cmd["arguments"]["qom-type"] == "iothread")));
    let removed: Vec<String> = leave
        .iter()
        .filter_map(|op| match op {
            Op::Qmp { cmd, .. } => cmd["arguments"]["id"]
                .as_str()
                .or(cmd["arguments"]["node-name"].as_str())
                .map(String::from),
            _ => None,
        })
        .collect();
    for op in &start {
        if let Op::Qmp { cmd, .. } = op {
            let a = &cmd["arguments"];
            if let Some(id) = a["id"].as_str().or(a["node-name"].as_str()) {
                assert!(
                    removed.contains(&id.to_string()),
                    "{id} is added by start_colo but never removed"
                );
            }
        }
    }
    assert_eq!(
        commands(&leave).last().map(String::as_str),
        Some("cont"),
        "the guest must be left running"
    );
}

#[test]
fn leave_colo_yanks_every_peer_connection_before_touching_the_graph() {
    let l = leave_colo(&wiring());
    let names = commands(&l);
    assert_eq!(names[..4], ["yank", "yank", "yank", "yank"]);
    assert_eq!(names[4], "x-blockdev-change");
    let instances: Vec<Value> = l[..4]
        .iter()
        .map(|op| match op {
            Op::Qmp { cmd, .. } => cmd["arguments"]["instances"][0].clone(),
            _ => unreachable!(),
        })
        .collect();
    assert!(instances.contains(&json!({"type": "block-node", "node-name": "ftvirt-nbd"})));
    assert!(instances.contains(&json!({"type": "migration"})));
}

#[test]
fn undo_resumes_first_and_cancels_jobs() {
    let u = undo(&wiring());
    assert_eq!(
        commands(&u)[..5],
        [
            "cont",
            "yank NBD",
            "block-job-cancel",
            "block-job-cancel",
            "migrate_cancel"
        ]
    );
}

#[test]
fn cutting_a_lost_peer_yanks_every_connection_to_it() {
    let c = cut_peer();
    assert_eq!(commands(&c), ["yank NBD", "yank", "yank", "yank"]);
    assert_eq!(
        cmd(&c, 3)["arguments"],
        json!({"instances": [{"type": "migration"}]})
    );
    assert!(c[1..]
        .iter()
        .all(|op| matches!(op, Op::Qmp { tolerate: true, .. })));
}

#[test]
fn take_over_only_insists_on_the_failover_itself() {
    let t = take_over();
    assert_eq!(
        commands(&t),
        [
            "nbd-server-stop",
            "x-colo-lost-heartbeat",
            "object-del",
            "object-del",
            "chardev-remove",
            "chardev-remove",
            "announce-self"
        ]
    );
    assert_eq!(
        cmd(&t, 6)["arguments"],
        json!({"initial": 1, "max": 100, "rounds": 5, "step": 100})
    );
    for (i, op) in t.iter().enumerate() {
        let Op::Qmp { tolerate, .. } = op else {
            unreachable!()
        };
        assert_eq!(*tolerate, i != 1, "op {i}");
    }
}

#[test]
fn ports_of_different_slots_never_collide() {
    let mut all = Vec::new();
    for n in 0..8 {
        let p = Ports::slot(n);
        all.extend([
            p.nbd,
            p.migration,
            p.mirror,
            p.compare,
            p.compare_in,
            p.compare_out,
        ]);
    }
    let mut d = all.clone();
    d.sort_unstable();
    d.dedup();
    assert_eq!(d.len(), all.len());
}

#[test]
fn pivot_of_a_disk_protected_before_drops_the_old_quorum_and_base() {
    let w = Wiring {
        device_node: "ftvirt-quorum1".into(),
        gen: 2,
        ..wiring()
    };
    let p = pivot(&w);
    let n = p.len();
    assert_eq!(commands(&p)[n - 2..], ["blockdev-del", "blockdev-del"]);
    assert_eq!(
        cmd(&p, n - 2)["arguments"],
        json!({"node-name": "ftvirt-quorum1"})
    );
    assert_eq!(
        cmd(&p, n - 1)["arguments"],
        json!({"node-name": "ftvirt-base1"})
    );
    assert!(matches!(p[n - 1], Op::Qmp { tolerate: true, .. }));
    // A disk under libvirt's own nodes has nothing of ftd's to drop.
    assert!(!commands(&pivot(&wiring())).contains(&"blockdev-del".to_string()));
}

#[test]
fn a_new_generation_never_reuses_the_current_node_names() {
    assert_eq!(next_gen("libvirt-1-format", 1), 1);
    assert_eq!(next_gen("ftvirt-quorum1", 2), 2);
    assert_eq!(
        next_gen("ftvirt-quorum3", 1),
        4,
        "ftd restarted under a protected disk"
    );
    assert_eq!(next_gen("ftvirt-quorumx", 1), 1);
}
