//! The D-Bus API on a private bus (a real `dbus-daemon`) over the fake hosts:
//! errors as callers see them, status and list, and the committed introspection
//! XML, `dbus/org.ftvirt.Ftd1.xml`, checked against the live interfaces: every
//! method, signal and property of `org.ftvirt.Ftd1.Manager` and
//! `org.ftvirt.Ftd1.Domain`, with argument names, types and directions, property
//! access and annotations (comments and order do not count). After a deliberate
//! change of the interface, `FTVIRT_BLESS=1` rewrites the file from the live
//! interfaces (then review the diff and add the comments back).
//!
//! These run on tokio's real clock: the bus is real I/O, and a paused clock would
//! jump ahead while waiting for it, past the peer link's detection time.

use super::*;
use crate::api;
use crate::auth::Authorizer;
use crate::config::Authorization;
use ftd_proxy::{domain_path, FtdProxy, OBJECT_PATH};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A private bus that anyone may use; killed when dropped.
struct PrivateBus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl PrivateBus {
    fn start() -> PrivateBus {
        let dir = tempfile::tempdir().expect("temporary directory");
        let conf = dir.path().join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                "<busconfig><type>session</type><listen>unix:path={}</listen>\
                 <auth>EXTERNAL</auth><policy context=\"default\">\
                 <allow send_destination=\"*\" eavesdrop=\"true\"/><allow eavesdrop=\"true\"/>\
                 <allow own=\"*\"/></policy></busconfig>",
                dir.path().join("bus").display()
            ),
        )
        .expect("bus configuration");
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon (package dbus) starts");
        // Ready when it prints its address.
        let mut address = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut address)
            .expect("the bus's address");
        PrivateBus {
            child,
            address: address.trim().to_string(),
            _dir: dir,
        }
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// a's daemon served on a private bus, as ftd's main serves it.
async fn serve(w: &World, bus: &PrivateBus) -> zbus::Connection {
    let builder = zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .name(api::BUS_NAME)
        .unwrap();
    let (builder, reads) = api::serve(
        builder,
        w.a.daemon.clone(),
        Authorizer::new(Authorization::None),
    )
    .unwrap();
    let server = builder.build().await.expect("serving on the private bus");
    tokio::spawn(api::publish(server.clone(), reads, w.a.changes()));
    zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_get_typed_errors_that_name_the_fix() {
    let w = World::new().await;
    let bus = PrivateBus::start();
    let conn = serve(&w, &bus).await;
    let ftd = FtdProxy::new(&conn).await.unwrap();
    let e = ftd
        .enable("nope", ftd_proxy::no_options())
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("org.ftvirt.Ftd1.Error.NoSuchDomain"),
        "{e}"
    );
    let mut bad = ftd_proxy::no_options();
    bad.insert(
        "chekpoint-interval".into(),
        zbus::zvariant::Value::from(5u32).try_into().unwrap(),
    );
    let e = ftd.enable("g", bad).await.unwrap_err().to_string();
    assert!(
        e.contains("InvalidArgument") && e.contains("checkpoint-interval"),
        "{e}"
    );
    let e = ftd.failover("g").await.unwrap_err().to_string();
    assert!(e.contains("org.ftvirt.Ftd1.Error.Refused"), "{e}");
    let s = ftd.status("g").await.unwrap();
    assert_eq!(s.state, "unprotected");
    // Failover made ftd track g (it looked at it); bad options did not.
    let l = ftd.list().await.unwrap();
    assert_eq!(
        l.iter().map(|s| s.domain.as_str()).collect::<Vec<_>>(),
        ["g"]
    );
    assert_eq!(ftd.notify("g", "reconnect").await.unwrap(), "ignored");
}

/// An interface, reduced to what a client depends on.
type Members = BTreeMap<String, String>;

fn parse(xml: &str) -> roxmltree::Document<'_> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(xml, opts).expect("introspection XML parses")
}

fn interfaces(xml: &str) -> BTreeMap<String, Members> {
    let doc = parse(xml);
    let mut out = BTreeMap::new();
    for i in doc
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("interface"))
        .filter(|n| n.attribute("name").unwrap_or("").starts_with("org.ftvirt."))
    {
        let mut m = Members::new();
        for e in i.children().filter(|n| n.is_element()) {
            let kind = e.tag_name().name();
            let name = e.attribute("name").unwrap_or("?");
            let mut sig = Vec::new();
            for a in e.children().filter(|n| n.is_element()) {
                let attrs: Vec<String> = a
                    .attributes()
                    .map(|x| format!("{}={}", x.name(), x.value()))
                    .collect();
                sig.push(format!("{}({})", a.tag_name().name(), attrs.join(",")));
            }
            if let (Some(t), Some(acc)) = (e.attribute("type"), e.attribute("access")) {
                sig.insert(0, format!("type={t},access={acc}"));
            }
            m.insert(format!("{kind} {name}"), sig.join(" "));
        }
        out.insert(i.attribute("name").unwrap().to_string(), m);
    }
    out
}

async fn introspect(conn: &zbus::Connection, path: &str) -> String {
    zbus::fdo::IntrospectableProxy::builder(conn)
        .destination(crate::api::BUS_NAME)
        .unwrap()
        .path(path)
        .unwrap()
        .build()
        .await
        .unwrap()
        .introspect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committed_introspection_xml_matches_the_live_interface() {
    let w = World::new().await;
    let bus = PrivateBus::start();
    let conn = serve(&w, &bus).await;
    // A tracked domain has its object.
    w.a.fake
        .add_domain("x", &w.a.dir.join("images/x.qcow2"), false);
    let ftd = FtdProxy::new(&conn).await.unwrap();
    assert_eq!(
        ftd.enable("x", ftd_proxy::no_options()).await.unwrap(),
        "stopped"
    );
    let path = domain_path("x");
    let mut domain = String::new();
    for _ in 0..200 {
        domain = introspect(&conn, path.as_str()).await;
        if domain.contains("org.ftvirt.Ftd1.Domain") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let manager = introspect(&conn, OBJECT_PATH).await;
    let mut live = interfaces(&manager);
    live.extend(interfaces(&domain));
    assert!(
        live.contains_key("org.ftvirt.Ftd1.Manager") && live.contains_key("org.ftvirt.Ftd1.Domain"),
        "{live:?}"
    );
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dbus/org.ftvirt.Ftd1.xml");
    if std::env::var_os("FTVIRT_BLESS").is_some() {
        std::fs::write(&file, bless(&manager, &domain)).unwrap();
        eprintln!("wrote {}", file.display());
    }
    let committed = std::fs::read_to_string(&file).expect("dbus/org.ftvirt.Ftd1.xml");
    let committed = interfaces(&committed);
    for (name, members) in &live {
        let Some(c) = committed.get(name) else {
            panic!("interface {name} is live but not in {}", file.display());
        };
        for (m, sig) in members {
            assert_eq!(
                c.get(m),
                Some(sig),
                "{name}: {m} differs between the live interface and {} (live: {sig})",
                file.display()
            );
        }
        for m in c.keys() {
            assert!(
                members.contains_key(m),
                "{name}: {m} is in the file but not live"
            );
        }
    }
    assert_eq!(
        committed.len(),
        live.len(),
        "interfaces: {:?}",
        committed.keys()
    );
}

/// A file from the live XML: our interfaces only, in one node.
fn bless(manager: &str, domain: &str) -> String {
    let mut out = String::from(
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n \
         \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n",
    );
    for xml in [manager, domain] {
        let doc = parse(xml);
        for i in doc
            .root_element()
            .children()
            .filter(|n| n.has_tag_name("interface"))
            .filter(|n| n.attribute("name").unwrap_or("").starts_with("org.ftvirt."))
        {
            out.push_str("  ");
            out.push_str(&xml[i.range()]);
            out.push('\n');
        }
    }
    out.push_str("</node>\n");
    out
}

/// Signals go to anyone on the bus, so they carry domain and state names only:
/// `InterfacesAdded` the public properties, `PropertiesChanged` values only for
/// `State` and `Role`, `StateChanged` the event's name. A reader (here without
/// authorization) still gets every property.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_signals_carry_only_domain_and_state_names() {
    use futures::StreamExt;
    let w = World::new().await;
    let bus = PrivateBus::start();
    let conn = serve(&w, &bus).await;
    let om = zbus::fdo::ObjectManagerProxy::builder(&conn)
        .destination(api::BUS_NAME)
        .unwrap()
        .path(OBJECT_PATH)
        .unwrap()
        .build()
        .await
        .unwrap();
    let mut added = om.receive_interfaces_added().await.unwrap();
    let ftd = FtdProxy::new(&conn).await.unwrap();
    let mut transitions = ftd.receive_state_changed().await.unwrap();
    let props = zbus::fdo::PropertiesProxy::builder(&conn)
        .destination(api::BUS_NAME)
        .unwrap()
        .path(domain_path("g"))
        .unwrap()
        .build()
        .await
        .unwrap();
    let mut changed = props.receive_properties_changed().await.unwrap();

    // A failover of an unprotected domain is refused, but makes ftd track it.
    ftd.failover("g").await.unwrap_err();
    let a = tokio::time::timeout(Duration::from_secs(10), added.next())
        .await
        .expect("InterfacesAdded")
        .unwrap();
    let a = a.args().unwrap();
    assert_eq!(a.object_path().as_str(), domain_path("g").as_str());
    let keys: Vec<&str> = a
        .interfaces_and_properties()
        .get("org.ftvirt.Ftd1.Domain")
        .expect("the Domain interface")
        .keys()
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(keys, ["Name", "Role", "State"]);

    // Protection: state changes, checkpoints, the peer link.
    ftd.enable("g", ftd_proxy::no_options()).await.unwrap();
    let mut reasons = Vec::new();
    let mut values = std::collections::BTreeSet::new();
    let mut invalidated = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !(reasons.len() >= 2 && invalidated.contains("Wanted")) {
        tokio::select! {
            Some(s) = transitions.next() => {
                let s = s.args().unwrap();
                reasons.push(s.reason().to_string());
            }
            Some(p) = changed.next() => {
                let p = p.args().unwrap();
                values.extend(p.changed_properties().keys().map(|k| k.to_string()));
                invalidated.extend(p.invalidated_properties().iter().map(|k| k.to_string()));
            }
            _ = tokio::time::sleep_until(deadline) => panic!(
                "no protection seen: reasons {reasons:?}, values {values:?}, invalidated {invalidated:?}"
            ),
        }
    }
    assert!(
        reasons
            .iter()
            .all(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')),
        "{reasons:?}"
    );
    assert!(
        values.iter().all(|v| v == "State" || v == "Role"),
        "values sent to anyone: {values:?}"
    );
    // A reader still gets every property.
    let all = props
        .get_all(zbus::names::InterfaceName::from_static_str_unchecked(
            "org.ftvirt.Ftd1.Domain",
        ))
        .await
        .unwrap();
    assert_eq!(all.len(), 11, "{:?}", all.keys());
}
