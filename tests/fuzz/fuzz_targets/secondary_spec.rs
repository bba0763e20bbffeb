//! The secondary's spec from the peer: the input is the primary's live XML
//! (seeded with the lab guest's), or, when it starts with `{`, a whole
//! `SecondarySpec` in JSON as the link carries it. It goes through what
//! `domain::create` does before anything is touched: [`validate::spec`], then
//! [`secondary_xml`]; and the XML also through [`takeover_definition`].
//!
//! Properties: no panic; whatever is accepted is within the allow-list:
//! - every QEMU option string is `key=value` pairs of ftd's own keys whose
//!   values have no comma, `=`, space or control character (paths: commas
//!   doubled), and no argument has a newline;
//! - every element and attribute of the XML is on `colo::allow`'s list or one
//!   ftd writes itself (the commandline, the local serial/channel ends, the
//!   loopback graphics, the survivor's disk), no value has a control character,
//!   and every emulator, kernel, initrd, loader or DTB is under the trusted
//!   directory;
//! - the survivor's definition has no other namespace at all.

#![no_main]

use ftd::colo::allow::{self, Rule};
use ftd::colo::definition::LocalFiles;
use ftd::colo::plan::Ports;
use ftd::colo::secondary::{secondary_xml, DiskDevice, SecondaryParams, QEMU_NS};
use ftd::colo::tls::ColoTls;
use ftd::colo::spec::{takeover_definition, SecondarySpec};
use ftd::colo::validate::{self, Local};
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};

const TRUSTED: &str = "/var/cache/ftvirt";

fn good(live: &str) -> SecondarySpec {
    SecondarySpec {
        primary_live_xml: live.to_string(),
        primary_inactive_xml: live.to_string(),
        disk: DiskDevice {
            id: "virtio-disk0".into(),
            bus: "pci.0".into(),
            addr: "0x3".into(),
            bootindex: Some(1),
            write_cache: Some("on".into()),
        },
        disk_size: 1 << 30,
        ports: Ports::DEFAULT,
        primary_addr: "10.200.0.11".into(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let spec = if text.starts_with('{') {
        match serde_json::from_str::<SecondarySpec>(text) {
            Ok(s) => s,
            Err(_) => return,
        }
    } else {
        good(text)
    };
    let local = Local {
        peer_addr: Some("10.200.0.11".parse().unwrap()),
        port_bases: Ports::DEFAULT,
    };
    let name = "ftguest";
    let trusted = vec![PathBuf::from(TRUSTED)];
    if validate::spec(&spec, name, &local).is_ok() {
        let p = SecondaryParams {
            primary_addr: spec.primary_addr.clone(),
            mirror_port: spec.ports.mirror,
            compare_port: spec.ports.compare,
            parent: "/o/ftguest,x/secondary/parent0.qcow2".into(),
            active: "/o/ftguest,x/secondary/active.qcow2".into(),
            hidden: "/o/ftguest,x/secondary/hidden.qcow2".into(),
            serial_log: "/o/ftguest,x/secondary/serial.log".into(),
            trusted_dirs: trusted.clone(),
            tls: Some(ColoTls {
                dir: "/s/qemu,tls".into(),
                peer: "hosta".into(),
            }),
        };
        if let Ok(b) = secondary_xml(&spec.primary_live_xml, name, &spec.disk, &p) {
            check_xml(&b.xml, true);
        }
    }
    let log = PathBuf::from("/o/ftguest/disk/ftguest.serial.log");
    let files = LocalFiles {
        trusted_dirs: &trusted,
        serial_log: &log,
    };
    let disk = Path::new("/o/ftguest/disk/ftguest.qcow2");
    if let Ok(b) = takeover_definition(&spec.primary_inactive_xml, name, disk, &files) {
        assert!(!b.xml.contains("qemu:") && !b.xml.contains(QEMU_NS), "{}", b.xml);
        check_xml(&b.xml, false);
    }
});

/// The option keys ftd's `-chardev`, `-object`, `-drive`, `-device` strings use.
const KEYS: &[&str] = &[
    "id", "host", "port", "reconnect", "netdev", "queue", "indev", "outdev", "vnet_hdr_support",
    "if", "driver", "file.filename", "cache.direct", "mode", "top-id", "file.driver",
    "file.file.filename", "file.backing.driver", "file.backing.file.filename",
    "file.backing.backing", "read-pattern", "vote-threshold", "children.0", "drive", "bus",
    "addr", "bootindex", "write-cache", "tls-creds", "dir", "endpoint", "verify-peer",
    "identity",
];

fn check_arg(a: &str) {
    assert!(!a.chars().any(char::is_control), "{a:?}");
    if a.starts_with('-') || a.starts_with("tcp:") {
        return;
    }
    // Doubled commas are one literal comma inside a value.
    let plain = a.replace(",,", "\u{1}");
    let mut parts = plain.split(',');
    let head = parts.next().unwrap_or("");
    let head_is_kv = head.contains('=');
    for kv in parts.chain(head_is_kv.then_some(head)) {
        let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("{kv:?} in {a:?}"));
        assert!(KEYS.contains(&k), "key {k:?} in {a:?}");
        // authz-simple's identity is a distinguished name: CN=<host name>.
        let v = if k == "identity" {
            v.strip_prefix("CN=").unwrap_or_else(|| panic!("identity {v:?} in {a:?}"))
        } else {
            v
        };
        assert!(
            !v.contains('=') && !v.contains(' '),
            "value {v:?} of {k} in {a:?}"
        );
    }
}

fn check_xml(x: &str, secondary: bool) {
    let doc = roxmltree::Document::parse(x).unwrap_or_else(|e| panic!("{e}: {x}"));
    for n in doc.descendants().filter(|n| n.is_element()) {
        let path: Vec<&str> = n
            .ancestors()
            .filter(|a| a.is_element())
            .map(|a| a.tag_name().name())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let path = path.join("/");
        for a in n.attributes() {
            assert!(!a.value().chars().any(char::is_control), "{path} {a:?}");
        }
        if let Some(t) = n.text() {
            assert!(!t.trim().chars().any(char::is_control), "{path} {t:?}");
        }
        if n.tag_name().namespace() == Some(QEMU_NS) {
            assert!(secondary, "{path}");
            if let Some(v) = n.attribute("value") {
                check_arg(v);
            }
            continue;
        }
        // What ftd writes itself.
        if matches!(
            path.as_str(),
            "domain/devices/serial/source"
                | "domain/devices/console/source"
                | "domain/devices/channel/source"
                | "domain/devices/graphics/listen"
                | "domain/devices/disk/source"
        ) {
            for a in n.attributes() {
                let v = a.value();
                let ours = v.starts_with("/o/ftguest") || v == "127.0.0.1" || v == "bind" || v == "address";
                assert!(ours, "{path} {a:?}");
            }
            continue;
        }
        // The survivor's disk: qcow2 on this host, the cache mode from a set.
        if path == "domain/devices/disk/driver" && n.parent().and_then(|d| d.attribute("device")) == Some("disk") {
            assert!(!secondary, "{x}");
            for a in n.attributes() {
                let ok = matches!(
                    (a.name(), a.value()),
                    ("name", "qemu")
                        | ("type", "qcow2")
                        | ("cache", "none" | "writeback" | "writethrough" | "directsync" | "unsafe")
                );
                assert!(ok, "{path} {a:?}");
            }
            continue;
        }
        match allow::rule(&path) {
            Some(Rule::Copy { attrs, .. }) => {
                for a in n.attributes() {
                    let own = path == "domain" && a.name() == "type"
                        || matches!(
                            (path.as_str(), a.name()),
                            ("domain/devices/serial" | "domain/devices/console" | "domain/devices/channel", "type")
                        );
                    assert!(attrs.contains(&a.name()) || own, "{path} {}", a.name());
                }
            }
            Some(Rule::Special(_)) => {
                if matches!(n.tag_name().name(), "emulator" | "kernel" | "initrd" | "loader" | "dtb") {
                    let t = n.text().unwrap_or("").trim();
                    assert!(
                        t.starts_with(&format!("{TRUSTED}/")) && !t.contains("/../") && !t.contains("/./"),
                        "{path}: {t:?}"
                    );
                }
            }
            None => panic!("{path} is not on the allow-list:\n{x}"),
        }
    }
}
