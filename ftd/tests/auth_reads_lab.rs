//! Reading ftd's domain objects is checked by polkit like `Status`: properties
//! (`Get`, `GetAll`) and `GetManagedObjects`, on a lab host with its real system
//! bus, a real polkitd (ftd's real actions) and ftd. The unprivileged caller is
//! uid 65534 (nobody), through `dbus-send` under `setpriv`; the test process
//! reads as root.

mod common;

use common::callers::*;
use common::*;
use ftd_proxy::{domain_path, DomainProxy, OBJECT_PATH};
use ftvirt_lab::{Lab, LabConfig};
use std::time::{Duration, Instant};

const DOMAIN_IFACE: &str = "org.ftvirt.Ftd1.Domain";
/// The standard interfaces refuse with the standard name.
const FDO_ACCESS_DENIED: &str = "org.freedesktop.DBus.Error.AccessDenied";

/// `Properties.<method>` of g's object as `uid`.
fn props_as(lab: &Lab, uid: u32, method: &str, args: &[&str]) -> Result<String, BusError> {
    let path = domain_path("g");
    let r = send_as(
        lab,
        "a",
        uid,
        BUS_NAME,
        path.as_str(),
        &format!("org.freedesktop.DBus.Properties.{method}"),
        args,
    );
    eprintln!("uid {uid}: {method}{args:?} -> {r:?}");
    r
}

fn managed_objects_as(lab: &Lab, uid: u32) -> Result<String, BusError> {
    let r = send_as(
        lab,
        "a",
        uid,
        BUS_NAME,
        OBJECT_PATH,
        "org.freedesktop.DBus.ObjectManager.GetManagedObjects",
        &[],
    );
    eprintln!("uid {uid}: GetManagedObjects -> {r:?}");
    r
}

/// `e` is a refusal of org.ftvirt.ftd1.monitor for nobody, with error `name`.
fn assert_read_denied(e: &BusError, name: &str) {
    assert_eq!(e.0, name, "{e:?}");
    assert!(e.1.contains(&format!("polkit action {MONITOR}")), "{e:?}");
    assert!(e.1.contains(&format!("uid {NOBODY} ")), "{e:?}");
}

/// The properties a `GetAll` printed by dbus-send names (`string "Name"` keys).
fn names_in(getall: &str) -> Vec<String> {
    getall
        .lines()
        .filter_map(|l| l.trim().strip_prefix("string \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|k| k.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn polkit_decides_who_reads_properties_and_managed_objects() {
    let t0 = Instant::now();
    let Some(mut lab) = Lab::for_test(LabConfig::hosts(&["a"])) else {
        return;
    };
    start_lone_ftd(&mut lab, true);
    // A domain ftd tracks, so that it has an object: a stopped one is enough.
    define_stopped(&lab, "a", "g");
    let st = client(&lab, "a")
        .await
        .enable("g", ftd_proxy::no_options())
        .await
        .expect("root may Enable");
    assert_eq!(st, "stopped");
    let addr = lab.host("a").unwrap().bus_address();
    let conn = zbus::connection::Builder::address(addr.as_str())
        .unwrap()
        .build()
        .await
        .unwrap();
    let root_view = DomainProxy::builder(&conn)
        .path(domain_path("g"))
        .unwrap()
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap();
    // The object appears when ftd publishes the domain's first snapshot.
    let until = Instant::now() + Duration::from_secs(10);
    while let Err(e) = root_view.name().await {
        assert!(Instant::now() < until, "g has no object on a's bus: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // polkit's default for monitor is yes: nobody reads everything.
    let s = props_as(
        &lab,
        NOBODY,
        "Get",
        &[&format!("string:{DOMAIN_IFACE}"), "string:State"],
    )
    .expect("nobody may Get");
    assert!(s.contains("\"stopped\""), "{s}");
    let all = props_as(&lab, NOBODY, "GetAll", &[&format!("string:{DOMAIN_IFACE}")])
        .expect("nobody may GetAll");
    let names = names_in(&all);
    for want in [
        "Name",
        "State",
        "Wanted",
        "Peer",
        "LastError",
        "LastFailover",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    let objs = managed_objects_as(&lab, NOBODY).expect("nobody may GetManagedObjects");
    assert!(
        objs.contains(domain_path("g").as_str()) && objs.contains("\"LastError\""),
        "{objs}"
    );

    // A rule takes monitor away from nobody.
    lab.host("a")
        .unwrap()
        .add_polkit_rule(
            "10-ftvirt-test-monitor",
            "polkit.addRule(function(action, subject) {\n\
             \x20   if (action.id == \"org.ftvirt.ftd1.monitor\" && subject.user == \"nobody\")\n\
             \x20       return polkit.Result.NO;\n\
             });\n",
        )
        .expect("rule loaded");
    for prop in ["State", "LastError", "Peer"] {
        let e = props_as(
            &lab,
            NOBODY,
            "Get",
            &[&format!("string:{DOMAIN_IFACE}"), &format!("string:{prop}")],
        )
        .unwrap_err();
        assert_read_denied(&e, FDO_ACCESS_DENIED);
        assert!(e.1.contains("Ask the administrator"), "{e:?}");
    }
    // GetAll leaves out what the caller may not read (the D-Bus spec's rule):
    // nothing is left.
    let all = props_as(&lab, NOBODY, "GetAll", &[&format!("string:{DOMAIN_IFACE}")])
        .expect("GetAll answers, without the refused properties");
    assert!(
        names_in(&all).is_empty(),
        "nobody read {:?}",
        names_in(&all)
    );
    let e = managed_objects_as(&lab, NOBODY).unwrap_err();
    assert_read_denied(&e, FDO_ACCESS_DENIED);
    // ... and the methods refuse as before.
    let e = call_as(&lab, "a", NOBODY, "Status", &["string:g"]).unwrap_err();
    assert_denied(&e, MONITOR, NOBODY);
    // The refusals are logged with the caller and the action.
    let log = ftd_log(&lab, "a");
    assert!(
        log.lines()
            .any(|l| l.contains("refused") && l.contains(MONITOR) && l.contains("uid 65534")),
        "no refusal logged:\n{log}"
    );

    // Root is not asked about.
    assert_eq!(root_view.state().await.unwrap(), "stopped");
    assert_eq!(root_view.last_error().await.unwrap(), "");
    let objs = zbus::fdo::ObjectManagerProxy::builder(&conn)
        .destination(BUS_NAME)
        .unwrap()
        .path(OBJECT_PATH)
        .unwrap()
        .build()
        .await
        .unwrap()
        .get_managed_objects()
        .await
        .expect("root may GetManagedObjects");
    let g = objs
        .get(&domain_path("g"))
        .and_then(|i| i.iter().find(|(k, _)| k.as_str() == DOMAIN_IFACE))
        .map(|(_, p)| p)
        .expect("g listed");
    assert_eq!(g.len(), 11, "every property: {:?}", g.keys());

    // Fail closed: with polkitd gone, nobody's reads are refused and say why.
    lab.host_mut("a")
        .unwrap()
        .stop_polkit()
        .expect("polkitd stopped");
    let e = props_as(
        &lab,
        NOBODY,
        "Get",
        &[&format!("string:{DOMAIN_IFACE}"), "string:State"],
    )
    .unwrap_err();
    assert_read_denied(&e, FDO_ACCESS_DENIED);
    assert!(e.1.contains("is not running"), "{e:?}");
    let e = managed_objects_as(&lab, NOBODY).unwrap_err();
    assert!(e.1.contains("is not running"), "{e:?}");
    assert_eq!(root_view.state().await.unwrap(), "stopped");
    lab.shutdown().unwrap();
    eprintln!("whole test {:.1?}", t0.elapsed());
}
