//! ftd's D-Bus surface against the real daemons on the lab: `Enable`'s options and
//! their errors (nothing changes on bad input), the per-domain objects with their
//! properties and `PropertiesChanged`, the manager's `StateChanged` signal, the
//! ObjectManager, the annotation `Enable` writes and `Disable` removes, and a
//! marked domain protected at ftd's start-up with no call at all.

mod common;

use common::*;
use ftd::annotation::NAMESPACE;
use ftd_proxy::{domain_path, DomainProxy, EnableOptions, FtdProxy, BUS_NAME};
use ftvirt_lab::{GuestSpec, Lab, LabConfig};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zbus::zvariant::{OwnedValue, Value};

async fn bus(lab: &Lab, host: &str) -> zbus::Connection {
    let addr = lab.host(host).unwrap().bus_address();
    zbus::connection::Builder::address(addr.as_str())
        .unwrap()
        .build()
        .await
        .unwrap()
}

/// The D-Bus error name and message of a failed call.
fn error_of(e: zbus::Error) -> (String, String) {
    match e {
        zbus::Error::MethodError(name, msg, _) => (name.to_string(), msg.unwrap_or_default()),
        other => panic!("not a method error: {other:?}"),
    }
}

fn metadata(lab: &Lab, host: &str) -> Option<String> {
    lab.host(host)
        .unwrap()
        .virsh(&["metadata", "g", NAMESPACE])
        .ok()
        .filter(|s| !s.trim().is_empty())
}

#[tokio::test(flavor = "multi_thread")]
async fn options_objects_signals_and_the_annotation() {
    let Some((lab, _g)) = lab_with_guest() else {
        return;
    };
    let conn = bus(&lab, "a").await;
    let ftd = FtdProxy::new(&conn).await.unwrap();

    // Listen before anything happens: StateChanged and the object's PropertiesChanged.
    let transitions: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let mut sigs = ftd.receive_state_changed().await.unwrap();
    let t = transitions.clone();
    tokio::spawn(async move {
        while let Some(s) = sigs.next().await {
            let a = s.args().unwrap();
            t.lock()
                .unwrap()
                .push((a.domain.to_string(), a.from.to_string(), a.to.to_string()));
        }
    });
    let changed: Arc<Mutex<Vec<String>>> = Arc::default();
    let props = zbus::fdo::PropertiesProxy::builder(&conn)
        .destination(BUS_NAME)
        .unwrap()
        .path(domain_path("g"))
        .unwrap()
        .build()
        .await
        .unwrap();
    let mut pc = props.receive_properties_changed().await.unwrap();
    let c = changed.clone();
    tokio::spawn(async move {
        while let Some(s) = pc.next().await {
            let a = s.args().unwrap();
            for (k, v) in a.changed_properties() {
                c.lock().unwrap().push(format!("{k}={v:?}"));
            }
            // Properties a refused caller must not see change by value are
            // announced by name only (EmitsChangedSignal=invalidates).
            for k in a.invalidated_properties().iter() {
                c.lock().unwrap().push(format!("{k} invalidated"));
            }
        }
    });

    // Bad input: each is refused with the field named, and nothing changes.
    let mut typo: HashMap<String, OwnedValue> = HashMap::new();
    typo.insert("intreval".into(), Value::U32(500).try_to_owned().unwrap());
    let bad: Vec<(HashMap<String, OwnedValue>, &str)> = vec![
        (typo, "\"intreval\""),
        (
            EnableOptions {
                peer: Some("zz".into()),
                ..Default::default()
            }
            .to_dict(),
            "peer \"zz\" is not one of this ftd's peers (b)",
        ),
        (
            EnableOptions {
                checkpoint_interval_ms: Some(50),
                ..Default::default()
            }
            .to_dict(),
            "checkpoint-interval 50 ms is out of range: use 100 to 60000 ms",
        ),
    ];
    for (opts, want) in bad {
        let (name, msg) = error_of(ftd.enable("g", opts).await.unwrap_err());
        assert_eq!(name, "org.ftvirt.Ftd1.Error.InvalidArgument", "{msg}");
        assert!(msg.contains(want), "{msg:?} should contain {want:?}");
    }
    // A broken annotation is named too.
    lab.host("a")
        .unwrap()
        .virsh(&[
            "metadata",
            "g",
            NAMESPACE,
            "--key",
            "ft",
            "--set",
            "<protection peer='b' checkpoint-interval='fast'/>",
        ])
        .unwrap();
    let (name, msg) = error_of(ftd.enable("g", ftd_proxy::no_options()).await.unwrap_err());
    assert_eq!(name, "org.ftvirt.Ftd1.Error.InvalidArgument");
    assert!(
        msg.contains("checkpoint-interval=\"fast\"") && msg.contains("virsh metadata g"),
        "{msg}"
    );
    lab.host("a")
        .unwrap()
        .virsh(&["metadata", "g", NAMESPACE, "--remove"])
        .unwrap();
    // Missing domain.
    let (name, msg) = error_of(
        ftd.enable("nope", ftd_proxy::no_options())
            .await
            .unwrap_err(),
    );
    assert_eq!(name, "org.ftvirt.Ftd1.Error.NoSuchDomain", "{msg}");
    assert!(
        msg.contains("\"nope\"") && msg.contains("virsh list --all"),
        "{msg}"
    );
    let s = ftd.status("g").await.unwrap();
    assert_eq!((s.state.as_str(), s.wanted), ("unprotected", false));
    assert_eq!(metadata(&lab, "a"), None, "nothing was marked");
    assert!(lab.host("b").unwrap().domains(true).unwrap().is_empty());

    // Enable with a checkpoint interval of its own.
    let opts = EnableOptions {
        checkpoint_interval_ms: Some(1000),
        ..Default::default()
    };
    assert_eq!(ftd.enable("g", opts.to_dict()).await.unwrap(), "preparing");
    wait_state(&lab, "a", "g", "protected", Duration::from_secs(120)).await;
    wait_state(&lab, "b", "g", "secondary", Duration::from_secs(30)).await;
    // The annotation records what was chosen, and QEMU uses it.
    let m = metadata(&lab, "a").expect("marked");
    assert!(
        m.contains("peer=\"b\"") && m.contains("checkpoint-interval=\"1000\""),
        "{m}"
    );
    wait_checkpoint_delay(&lab, "a", 1000);
    // Then two checkpoints at that interval, and what D-Bus says of them.
    let cp0 = client(&lab, "a")
        .await
        .status("g")
        .await
        .unwrap()
        .checkpoints;
    let cps = wait_checkpoints(&lab, "a", "g", cp0 + 2, Duration::from_secs(30)).await;
    eprintln!("{} checkpoints", cps.checkpoints);

    // The domain's object on both hosts.
    let d = DomainProxy::builder(&conn)
        .path(domain_path("g"))
        .unwrap()
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap();
    assert_eq!(d.name().await.unwrap(), "g");
    assert_eq!(d.state().await.unwrap(), "protected");
    assert_eq!(d.role().await.unwrap(), "primary");
    assert_eq!(d.peer().await.unwrap(), "b");
    assert!(d.peer_up().await.unwrap() && d.wanted().await.unwrap());
    let cps = d.checkpoints().await.unwrap();
    assert!(
        cps >= 2,
        "two checkpoints were counted, the property says {cps}"
    );
    let age = d.last_checkpoint_age().await.unwrap();
    let lag = d.replication_lag().await.unwrap();
    assert!(
        (0.0..3.0).contains(&age) && (0.0..3.0).contains(&lag),
        "{age} {lag}"
    );
    assert_eq!(d.last_error().await.unwrap(), "");
    let conn_b = bus(&lab, "b").await;
    let db = DomainProxy::builder(&conn_b)
        .path(domain_path("g"))
        .unwrap()
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap();
    assert_eq!(db.state().await.unwrap(), "secondary");
    assert_eq!(db.role().await.unwrap(), "secondary");

    // The ObjectManager lists it.
    let om = zbus::fdo::ObjectManagerProxy::builder(&conn)
        .destination(BUS_NAME)
        .unwrap()
        .path(ftd_proxy::OBJECT_PATH)
        .unwrap()
        .build()
        .await
        .unwrap();
    let objs = om.get_managed_objects().await.unwrap();
    let path = domain_path("g");
    assert!(
        objs.get(&path)
            .is_some_and(|i| i.keys().any(|k| k.as_str() == "org.ftvirt.Ftd1.Domain")),
        "{:?}",
        objs.keys().collect::<Vec<_>>()
    );

    // Signals seen on the way.
    let seen: Vec<(String, String)> = transitions
        .lock()
        .unwrap()
        .iter()
        .filter(|t| t.0 == "g")
        .map(|t| (t.1.clone(), t.2.clone()))
        .collect();
    eprintln!("StateChanged: {seen:?}");
    for want in [
        ("unprotected", "preparing"),
        ("preparing", "syncing"),
        ("syncing", "starting"),
        ("starting", "protected"),
    ] {
        assert!(
            seen.contains(&(want.0.into(), want.1.into())),
            "{want:?} not in {seen:?}"
        );
    }
    let pcs = changed.lock().unwrap().clone();
    eprintln!("PropertiesChanged: {pcs:?}");
    assert!(
        pcs.iter()
            .any(|p| p.starts_with("State=") && p.contains("protected")),
        "{pcs:?}"
    );
    assert!(
        pcs.iter().any(|p| p == "Checkpoints invalidated"),
        "{pcs:?}"
    );
    assert!(
        !pcs.iter().any(|p| p.starts_with("Checkpoints=")),
        "a checkpoint count is not broadcast: {pcs:?}"
    );

    // Disable: unprotected, and the mark is gone.
    ftd.disable("g").await.unwrap();
    wait_state(&lab, "a", "g", "unprotected", Duration::from_secs(60)).await;
    assert_eq!(metadata(&lab, "a"), None);
    assert_eq!(d.state().await.unwrap(), "unprotected");
    lab.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_marked_running_domain_is_protected_when_ftd_starts() {
    let Some(mut lab) = Lab::for_test(LabConfig::hosts(&["a", "b"])) else {
        return;
    };
    lab.boot_guest("a", &GuestSpec::standard("g", 0))
        .expect("boot");
    lab.host("a")
        .unwrap()
        .virsh(&[
            "metadata",
            "g",
            NAMESPACE,
            "--key",
            "ft",
            "--set",
            "<protection peer='b'/>",
        ])
        .unwrap();
    // b first, so that a's start-up finds its peer.
    start_ftd(&mut lab, "b", "a");
    start_ftd(&mut lab, "a", "b");
    let s = wait_state(&lab, "a", "g", "protected", Duration::from_secs(120)).await;
    assert!(s.wanted);
    wait_state(&lab, "b", "g", "secondary", Duration::from_secs(30)).await;
    let log = std::fs::read_to_string(lab.host("a").unwrap().ftd_log()).unwrap();
    assert!(log.contains("start-up: running and marked"), "{log}");
    lab.shutdown().unwrap();
}
