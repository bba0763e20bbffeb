//! The `arbiter:` section: its kind and fence margin; the witness (`arbiter.witness`):
//! its defaults, its syntax and checks, and the reading of its TLS files
//! (`Config::witness_settings`), with certificates made by `ftd make-certs`'s code.

use super::{err, HOST, ORIGIN};
use crate::certs;
use crate::config::{ArbiterKind, Config, Endpoint, TlsFiles};
use std::path::{Path, PathBuf};
use std::time::Duration;

const ETCD: &str = "arbiter:\n  kind: etcd\n  witness:\n    endpoints: [10.200.0.20:2379]\n";

#[test]
fn the_arbiter_section_is_checked() {
    let c = Config::from_str(HOST, "t").unwrap();
    assert_eq!(
        c.arbiter.kind,
        ArbiterKind::None,
        "no arbiter unless asked for"
    );
    let c = Config::from_str(
        &format!("{HOST}arbiter:\n  kind: corosync\n  fence-margin: 800\n"),
        "t",
    )
    .unwrap();
    assert_eq!(c.arbiter.kind, ArbiterKind::Corosync);
    assert_eq!(c.arbiter.fence_margin, Duration::from_millis(800));
    assert_eq!(
        err(&format!("{HOST}arbiter:\n  kind: pacemaker\n")),
        "/etc/ftvirt/ftd.yaml:5:9: unknown value \"pacemaker\" for arbiter.kind; use one of \
         none, corosync, etcd"
    );
    assert_eq!(
        err(&format!(
            "{HOST}arbiter:\n  kind: corosync\n  fence-margin: 50\n"
        )),
        "/etc/ftvirt/ftd.yaml:6:17: fence-margin 50 is out of range: use 100 to 60000 ms"
    );
    let e = err(&format!(
        "{HOST}arbiter:\n  kind: corosync\n  fence_margin: 800\n"
    ));
    assert!(e.contains("fence-margin"), "{e}");
}

#[test]
fn the_witness_defaults_to_nothing_and_the_peer_links_files() {
    let c = Config::from_str(HOST, ORIGIN).unwrap();
    let w = &c.arbiter.witness;
    assert!(w.endpoints.is_empty());
    assert_eq!(w.server_name, None);
    assert_eq!(w.prefix, "/ftvirt/v1");
    assert_eq!(w.timeout, Duration::from_millis(300));
    assert_eq!(c.witness_tls(), c.peer_link.tls);
}

#[test]
fn a_witness_of_one_or_three_members() {
    let c = Config::from_str(&format!("{HOST}{ETCD}"), ORIGIN).unwrap();
    assert_eq!(c.arbiter.kind, ArbiterKind::Etcd);
    assert_eq!(
        c.arbiter.witness.endpoints,
        [Endpoint("10.200.0.20:2379".parse().unwrap())]
    );
    let text = format!(
        "{HOST}peer-link:\n  tls:\n    ca: /srv/peer/ca.crt\n\
         arbiter:\n  kind: etcd\n  witness:\n    endpoints:\n      - 10.200.0.20:2379\n      \
         - 10.200.0.21:2379\n      - '[fd00::22]:2379'\n    server-name: witness\n    \
         tls:\n      cert: /srv/witness/hosta.crt\n    prefix: /lab/ftvirt\n    timeout: 150\n"
    );
    let c = Config::from_str(&text, ORIGIN).unwrap();
    let w = &c.arbiter.witness;
    assert_eq!(w.endpoints.len(), 3);
    assert_eq!(w.endpoints[2].0, "[fd00::22]:2379".parse().unwrap());
    assert_eq!(w.server_name.as_deref(), Some("witness"));
    assert_eq!(
        (w.prefix.as_str(), w.timeout),
        ("/lab/ftvirt", Duration::from_millis(150))
    );
    // Each file not given is the peer link's.
    assert_eq!(
        c.witness_tls(),
        TlsFiles {
            ca: "/srv/peer/ca.crt".into(),
            cert: "/srv/witness/hosta.crt".into(),
            key: "/etc/ftvirt/tls/host.key".into(),
        }
    );
    // An IP as the server name; null as none.
    for (v, want) in [
        ("10.200.0.20", Some("10.200.0.20")),
        ("null", None),
        ("~", None),
    ] {
        let c = Config::from_str(&format!("{HOST}{ETCD}    server-name: {v}\n"), ORIGIN).unwrap();
        assert_eq!(c.arbiter.witness.server_name.as_deref(), want, "{v}");
    }
}

#[test]
fn witness_mistakes_are_refused_with_position_and_fix() {
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{HOST}arbiter:\n  kind: etcd\n"),
            "5:9: arbiter.kind is etcd but arbiter.witness.endpoints lists no etcd member: add \
             the witness's client addresses, e.g. endpoints: [10.200.0.20:2379]",
        ),
        (
            format!("{HOST}arbiter:\n  kind: etcd\n  witness:\n    endpoints: []\n"),
            "7:16: arbiter.kind is etcd but arbiter.witness.endpoints lists no etcd member: add \
             the witness's client addresses, e.g. endpoints: [10.200.0.20:2379]",
        ),
        (
            format!("{HOST}arbiter:\n  witness:\n    endpoints: [10.200.0.20:2379]\n"),
            "6:16: arbiter.witness.endpoints is set but arbiter.kind is none: set kind: etcd to \
             use the witness, or remove the endpoints",
        ),
        (
            format!("{HOST}arbiter:\n  kind: etcd\n  witness:\n    endpoints: [witness:2379]\n"),
            "7:17: arbiter.witness.endpoints[0] must be an etcd member's IP address and port \
             such as 10.200.0.20:2379 (names are not resolved), not \"witness:2379\"",
        ),
        (
            format!("{HOST}arbiter:\n  kind: etcd\n  witness:\n    endpoints: [10.200.0.20]\n"),
            "7:17: arbiter.witness.endpoints[0] must be an etcd member's IP address and port \
             such as 10.200.0.20:2379 (names are not resolved), not \"10.200.0.20\"",
        ),
        (
            format!(
                "{HOST}arbiter:\n  kind: etcd\n  witness:\n    endpoints:\n      - \
                 10.200.0.20:2379\n      - 10.200.0.20:2379\n"
            ),
            "9:9: endpoint 10.200.0.20:2379 is listed twice (arbiter.witness.endpoints[0] and \
             [1]): remove one",
        ),
        (
            format!("{HOST}{ETCD}    timeout: 5\n"),
            "8:14: arbiter.witness.timeout 5 is out of range: use 10 to 10000 ms (a failover \
             waits this long when the witness does not answer)",
        ),
        (
            format!("{HOST}{ETCD}    prefix: ftvirt/\n"),
            "8:13: arbiter.witness.prefix must be a key prefix such as /ftvirt/v1 (starting \
             with /, not ending with one, printable ASCII without spaces), not \"ftvirt/\"",
        ),
        (
            format!("{HOST}{ETCD}    server-name: a b\n"),
            "8:18: arbiter.witness.server-name must be null, or the name the witness's \
             certificates carry, such as witness, not \"a b\"",
        ),
        (
            format!("{HOST}{ETCD}    endpoint: 10.200.0.21:2379\n"),
            "8:5: unknown key \"endpoint\" in arbiter.witness; did you mean \"endpoints\"?",
        ),
        (
            format!("{HOST}{ETCD}    tls:\n      cert: host.crt\n"),
            "9:13: arbiter.witness.tls.cert must be an absolute file path (starting with /), \
             not \"host.crt\"",
        ),
        (
            format!("{HOST}{ETCD}  endpoints: [10.200.0.21:2379]\n"),
            "8:3: unknown key \"endpoints\" in arbiter; it belongs under witness: in arbiter:",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(err(&text), format!("{ORIGIN}:{want}"), "{text}");
    }
}

/// A directory removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_witness_tls_files_are_read_and_a_missing_one_is_named() {
    let dir = Scratch(std::env::temp_dir().join(format!(
        "ftd-config-witness-{}-{:x}",
        std::process::id(),
        crate::peer::random_u64()
    )));
    certs::make(&dir.0, &["hosta".into()], 1, false).unwrap();
    let host = dir.0.join("hosta");
    let f = |name: &str| host.join(name).display().to_string();
    let peer_tls = format!(
        "peer-link:\n  tls:\n    ca: {}\n    cert: {}\n    key: {}\n",
        f("ca.crt"),
        f("host.crt"),
        f("host.key")
    );
    // The peer link's files serve the witness too.
    let c = Config::from_str(&format!("{HOST}{peer_tls}{ETCD}"), ORIGIN).unwrap();
    let s = c.witness_settings().unwrap();
    assert_eq!(s.endpoints, ["10.200.0.20:2379".parse().unwrap()]);
    assert_eq!(s.keys.domain("web1").unwrap(), "/ftvirt/v1/domains/web1");
    assert_eq!(s.timeout, Duration::from_millis(300));
    assert_eq!(s.tls.ca, std::fs::read(host.join("ca.crt")).unwrap());

    // A missing file of the witness's own: named at its key.
    let text = format!("{HOST}{peer_tls}{ETCD}    tls:\n      cert: /nonexistent/w.crt\n");
    let e = Config::from_str(&text, ORIGIN)
        .unwrap()
        .witness_settings()
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "{ORIGIN}:14:13: arbiter.witness.tls.cert: cannot read the witness's certificate \
             /nonexistent/w.crt: "
        )),
        "{e}"
    );
    // A peer-link file that is not PEM: named as the peer link's.
    let text = format!(
        "{HOST}peer-link:\n  tls:\n    ca: {}\n    cert: {}\n    key: {}\n{ETCD}",
        f("host.key"),
        f("host.crt"),
        f("host.key")
    );
    let e = Config::from_str(&text, ORIGIN)
        .unwrap()
        .witness_settings()
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{ORIGIN}:6:9: arbiter.witness.tls.ca (the peer link's, peer-link.tls.ca): the \
             witness's CA {} holds no certificate",
            Path::new(&f("host.key")).display()
        )
    );
}

#[test]
fn the_witness_makes_detection_faster_where_the_file_leaves_it_unset() {
    let t = |text: &str| {
        let c = Config::from_str(text, "t").unwrap();
        (
            c.defaults.heartbeat_interval.as_millis(),
            c.defaults.detection_time.as_millis(),
        )
    };
    // No witness: a false alarm could make two copies serve.
    assert_eq!(t(HOST), (100, 500));
    assert_eq!(
        t(&format!("{HOST}arbiter:\n  kind: corosync\n")),
        (100, 500)
    );
    // The witness: at most a needless switch-over.
    assert_eq!(t(&format!("{HOST}{ETCD}")), (50, 200));
    // What the file says stays; an unset detection follows the heartbeat.
    assert_eq!(
        t(&format!(
            "{HOST}defaults:\n  heartbeat-interval: 100\n{ETCD}"
        )),
        (100, 400)
    );
    assert_eq!(
        t(&format!("{HOST}defaults:\n  detection-time: 900\n{ETCD}")),
        (50, 900)
    );
    assert_eq!(
        t(&format!(
            "{HOST}defaults:\n  heartbeat-interval: 100\n  detection-time: 500\n{ETCD}"
        )),
        (100, 500)
    );
}
