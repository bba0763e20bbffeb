//! The daemon's router under trouble: a hung libvirt for one domain delays no
//! other domain; requests for unknown domains; status and list without waiting.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_hung_libvirt_call_for_one_domain_delays_no_other_domains_takeover() {
    let w = World::new().await;
    w.protect().await;
    // b also runs x, whose every libvirt call now hangs for 60 s; b's ftd is
    // asked to protect it (the router used to await that work inline).
    w.b.fake
        .add_domain("x", &w.b.dir.join("images/x.qcow2"), true);
    w.b.fake.hang("x", Some(Duration::from_secs(60)));
    let b = w.b.daemon.clone();
    let enable_x = tokio::spawn(async move { b.enable("x", Default::default()).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A Status for an unknown, hung domain does not hold the router either.
    let b = w.b.daemon.clone();
    let _status_x = tokio::spawn(async move { b.status("x").await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    w.b.fake.clear_calls();
    let t0 = tokio::time::Instant::now();
    w.cluster.kill_host(&w.a.fake);
    w.net.kill_host("a");
    w.wait("b's takeover of g", || async {
        w.b.fake
            .calls()
            .iter()
            .any(|c| c == "qmp g x-colo-lost-heartbeat")
    })
    .await;
    let (t, _) =
        w.b.fake
            .timed_calls()
            .into_iter()
            .find(|(_, c)| c == "qmp g x-colo-lost-heartbeat")
            .unwrap();
    assert!(
        t - t0 <= DETECTION + 2 * HEARTBEAT,
        "g's takeover began {:?} after the loss, behind x's hung call",
        t - t0
    );
    assert!(
        !enable_x.is_finished(),
        "x's Enable is still waiting on libvirt"
    );
    // The API answers meanwhile.
    let l = w.b.daemon.list().await.unwrap();
    assert!(l.iter().any(|s| s.domain == "g"));
}

#[tokio::test(start_paused = true)]
async fn requests_for_a_domain_being_looked_up_wait_their_turn() {
    let w = World::new().await;
    // Two requests race for a domain no task exists for: the first starts it,
    // the second is answered by the same task, in order.
    let (d1, d2) = (w.a.daemon.clone(), w.a.daemon.clone());
    let (r1, r2) = tokio::join!(
        d1.enable("g", Default::default()),
        d2.enable("g", Default::default())
    );
    assert_eq!(r1, Ok(State::Preparing));
    assert!(
        matches!(r2, Err(crate::domain::CommandError::Refused(_))),
        "{r2:?}"
    );
    // Status of a domain ftd has not touched comes from libvirt.
    w.a.fake
        .add_domain("off", &w.a.dir.join("images/off.qcow2"), false);
    let s = w.a.daemon.status("off").await.unwrap();
    assert_eq!(s.state, State::Stopped);
    assert!(!s.wanted);
    assert!(
        w.a.daemon
            .list()
            .await
            .unwrap()
            .iter()
            .all(|s| s.domain != "off"),
        "looking is not tracking"
    );
    assert!(matches!(
        w.a.daemon.status("nope").await,
        Err(crate::domain::CommandError::NoSuchDomain(_))
    ));
}

/// Every file and directory under `root`, for a before/after comparison.
fn tree(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

#[tokio::test(start_paused = true)]
async fn a_peer_naming_a_path_creates_no_task_and_touches_no_file() {
    let w = World::new().await;
    let root = w.b.dir.parent().unwrap().to_path_buf();
    let before = tree(&root);
    let abs = w.b.dir.join("overlays/g").display().to_string();
    for name in ["../../x", abs.as_str(), "x\ny", "."] {
        for msg in [
            crate::coordinator::PeerMsg::HostSecondary,
            crate::coordinator::PeerMsg::ReleaseSecondary,
            crate::coordinator::PeerMsg::TakeOver,
        ] {
            w.a.peer.send(name, msg).unwrap();
        }
        let r =
            w.a.peer
                .request(
                    crate::peer::Request::SecondarySpec {
                        domain: name.into(),
                    },
                    Duration::from_secs(5),
                )
                .await;
        assert!(
            r.as_ref()
                .is_err_and(|e| e.to_string().contains("domain name")),
            "{r:?}"
        );
    }
    // A good name afterwards still arrives (the link stayed up): b, which
    // does not know h, answers its pair check without making a task for it.
    let log = crate::peer::tests::logs::Capture::of("ftd::daemon=warn");
    w.a.peer
        .send(
            "h",
            crate::coordinator::PeerMsg::CheckPair { primary: true },
        )
        .unwrap();
    log.line(&["peer=a", "domain=h", "CheckPair", "no task"])
        .await;
    assert_eq!(w.b.daemon.list().await.unwrap(), [], "no task at all");
    assert!(w.b.peer_up().await);
    let after: Vec<_> = tree(&root)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(after, Vec::<std::path::PathBuf>::new(), "files made");
    assert!(
        !w.b.fake
            .calls()
            .iter()
            .any(|c| c.contains("..") || c.contains("x\ny")),
        "{:#?}",
        w.b.fake.calls()
    );
}
