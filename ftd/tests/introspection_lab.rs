//! The committed introspection XML, `dbus/org.ftvirt.Ftd1.xml`, describes exactly
//! the interfaces a live ftd serves: every method, signal and property of
//! `org.ftvirt.Ftd1.Manager` and `org.ftvirt.Ftd1.Domain`, with argument names,
//! types and directions, property access and annotations. Comments and order do
//! not count. After a deliberate change of the interface, `FTVIRT_BLESS=1` rewrites
//! the file from the live daemon (then review the diff and add the comments back).

mod common;

use common::*;
use ftd_proxy::{domain_path, OBJECT_PATH};
use ftvirt_lab::{Lab, LabConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;

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
        .destination(BUS_NAME)
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

#[tokio::test(flavor = "multi_thread")]
async fn the_committed_introspection_xml_matches_the_live_interface() {
    let Some(mut lab) = Lab::for_test(LabConfig::hosts(&["a", "b"])) else {
        return;
    };
    // A defined (shut-off) domain is enough for ftd to serve its object.
    define_stopped(&lab, "a", "x");
    start_ftd(&mut lab, "a", "b");
    let c = client(&lab, "a").await;
    assert_eq!(
        c.enable("x", ftd_proxy::no_options()).await.unwrap(),
        "stopped"
    );

    let addr = lab.host("a").unwrap().bus_address();
    let conn = zbus::connection::Builder::address(addr.as_str())
        .unwrap()
        .build()
        .await
        .unwrap();
    let manager = introspect(&conn, OBJECT_PATH).await;
    let domain = introspect(&conn, domain_path("x").as_str()).await;
    let mut live = interfaces(&manager);
    live.extend(interfaces(&domain));
    assert!(
        live.contains_key("org.ftvirt.Ftd1.Manager") && live.contains_key("org.ftvirt.Ftd1.Domain")
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
    lab.shutdown().unwrap();
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
