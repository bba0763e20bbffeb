mod arbiter;
mod colo;
mod colo_tls;
mod fuzz;
mod tls;

use super::locate::{locate, Seg};
use super::*;
use serde::de::DeserializeOwned;

const ORIGIN: &str = "/etc/ftvirt/ftd.yaml";

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ftd.yaml")
}

fn err(text: &str) -> String {
    match Config::from_str(text, ORIGIN) {
        Ok(c) => panic!("accepted:\n{text}\nas {c:#?}"),
        Err(e) => e.to_string(),
    }
}

const HOST: &str = "host:\n  name: hosta\n  address: 10.200.0.11\n";

#[test]
fn the_example_loads_and_shows_the_defaults() {
    let c = Config::load(example_path()).expect("examples/ftd.yaml loads");
    assert!(c.origin().ends_with("examples/ftd.yaml"));
    assert_eq!(
        c.host,
        Host {
            name: "hosta".into(),
            address: "10.200.0.11".parse().unwrap(),
            port: 7777
        }
    );
    assert_eq!(
        c.peers,
        [Peer {
            name: "hostb".into(),
            address: "10.200.0.12".parse().unwrap(),
            port: 7777
        }]
    );
    // Everything else in the example is documented as the default.
    let minimal = Config::from_str(HOST, "minimal").unwrap();
    assert_eq!(c.defaults, minimal.defaults);
    assert_eq!(c.colo, minimal.colo);
    assert_eq!(c.bus, minimal.bus);
    assert_eq!(c.libvirt_uri, minimal.libvirt_uri);
    assert_eq!(c.state_dir, minimal.state_dir);
    assert_eq!(c.run_dir, minimal.run_dir);
    assert_eq!(c.log, minimal.log);
    assert_eq!(c.authorization, minimal.authorization);
    assert_eq!(c.peer_link, minimal.peer_link);
    assert_eq!(c.arbiter.kind, minimal.arbiter.kind);
    assert_eq!(c.arbiter.fence_margin, minimal.arbiter.fence_margin);
    // The witness's TLS files are shown as what they default to: the peer link's.
    let (w, m) = (&c.arbiter.witness, &minimal.arbiter.witness);
    assert_eq!(
        (&w.endpoints, &w.server_name, &w.prefix, w.timeout),
        (&m.endpoints, &m.server_name, &m.prefix, m.timeout)
    );
    assert_eq!(c.witness_tls(), minimal.witness_tls());
}

/// The keys a section accepts, as serde lists them when it refuses an unknown one.
fn keys_of<T: DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
    let e = serde_yaml::from_str::<T>("not-a-key: 1")
        .unwrap_err()
        .to_string();
    e.split('`')
        .skip(1)
        .step_by(2)
        .skip(1)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_example_shows_every_key() {
    let text = std::fs::read_to_string(example_path()).unwrap();
    let sections: [(&[Seg], Vec<String>); 13] = [
        (&[Seg::Key("arbiter")], keys_of::<ArbiterConfig>()),
        (
            &[Seg::Key("arbiter"), Seg::Key("witness")],
            keys_of::<WitnessConfig>(),
        ),
        (
            &[Seg::Key("arbiter"), Seg::Key("witness"), Seg::Key("tls")],
            keys_of::<WitnessTls>(),
        ),
        (&[], keys_of::<Config>()),
        (&[Seg::Key("host")], keys_of::<Host>()),
        (&[Seg::Key("peers"), Seg::Index(0)], keys_of::<Peer>()),
        (&[Seg::Key("peer-link")], keys_of::<PeerLinkConfig>()),
        (
            &[Seg::Key("peer-link"), Seg::Key("tls")],
            keys_of::<TlsFiles>(),
        ),
        (&[Seg::Key("defaults")], keys_of::<Timing>()),
        (&[Seg::Key("colo")], keys_of::<Colo>()),
        (
            &[Seg::Key("colo"), Seg::Key("ports")],
            keys_of::<ColoPorts>(),
        ),
        (&[Seg::Key("bus")], keys_of::<Bus>()),
        (&[Seg::Key("log")], keys_of::<Log>()),
    ];
    let mut count = 0;
    for (section, keys) in sections {
        assert!(!keys.is_empty(), "{section:?}: {keys:?}");
        for key in keys {
            let key: &'static str = Box::leak(key.into_boxed_str());
            let path: Vec<Seg> = section.iter().copied().chain([Seg::Key(key)]).collect();
            let found = locate(&text, &path).expect("a position");
            assert!(found.exact, "examples/ftd.yaml does not show {path:?}");
            count += 1;
        }
    }
    assert_eq!(count, 58);
}

#[test]
fn a_minimal_config_gets_every_default() {
    let c = Config::from_str(HOST, "t.yaml").unwrap();
    assert_eq!(c.origin(), "t.yaml");
    assert_eq!(c.host.name, "hosta");
    assert_eq!(c.host.listen_addr(), "10.200.0.11:7777".parse().unwrap());
    assert!(c.peers.is_empty());
    let ms = Duration::from_millis;
    assert_eq!(
        c.defaults,
        Timing {
            checkpoint_interval: ms(2000),
            heartbeat_interval: ms(100),
            detection_time: ms(500),
            auto_reprotect: true,
            compare_timeout: ms(3000),
            sync_timeout: Duration::from_secs(600),
        }
    );
    assert_eq!(
        c.bus,
        Bus {
            connect: BusKind::System,
            name: "org.ftvirt.Ftd1".into()
        }
    );
    assert_eq!(c.libvirt_uri, "qemu:///system");
    assert_eq!(c.state_dir, Path::new("/var/lib/ftvirt"));
    assert_eq!(c.run_dir, Path::new("/run/ftvirt"));
    assert_eq!(
        c.log,
        Log {
            output: LogOutput::Auto,
            level: LogLevel::Info
        }
    );
    assert_eq!(c.authorization, Authorization::Polkit);
}

#[test]
fn authorization_is_polkit_or_none() {
    let c = Config::from_str(&format!("{HOST}authorization: none\n"), ORIGIN).unwrap();
    assert_eq!(c.authorization, Authorization::None);
    let c = Config::from_str(&format!("{HOST}authorization: polkit\n"), ORIGIN).unwrap();
    assert_eq!(c.authorization, Authorization::Polkit);
}

#[test]
fn empty_sections_and_flow_style_are_fine() {
    let text = "host: {name: a, address: '::1', port: 7001}\npeers:\ndefaults:\n\
                bus: {connect: 'unix:path=/tmp/t/bus', name: org.ftvirt.Test1}\n\
                log: {output: stderr, level: debug}\n";
    let c = Config::from_str(text, "t").unwrap();
    assert_eq!(c.host.listen_addr(), "[::1]:7001".parse().unwrap());
    assert!(c.peers.is_empty());
    assert_eq!(c.defaults, Timing::default());
    assert_eq!(
        c.bus.connect,
        BusKind::Address("unix:path=/tmp/t/bus".into())
    );
    assert_eq!(c.bus.name, "org.ftvirt.Test1");
    assert_eq!(c.log.effective_output(), LogOutput::Stderr);
    assert_eq!(c.log.level.as_str(), "debug");
    let session = Config::from_str(&format!("{HOST}bus:\n  connect: session\n"), "t").unwrap();
    assert_eq!(session.bus.connect, BusKind::Session);
}

#[test]
fn log_auto_means_journald_when_it_is_there() {
    assert_eq!(LogOutput::Auto.resolve(true), LogOutput::Journald);
    assert_eq!(LogOutput::Auto.resolve(false), LogOutput::Stderr);
    assert_eq!(LogOutput::Stderr.resolve(true), LogOutput::Stderr);
    assert_eq!(LogOutput::Journald.resolve(false), LogOutput::Journald);
}

#[test]
fn peers_are_looked_up_by_name() {
    let text = format!(
        "{HOST}peers:\n  - name: hostb\n    address: 10.200.0.12\n  \
         - name: hostd\n    address: 10.200.0.14\n    port: 7000\n"
    );
    let c = Config::from_str(&text, ORIGIN).unwrap();
    assert_eq!(
        c.peer("hostd").unwrap().addr(),
        "10.200.0.14:7000".parse().unwrap()
    );
    assert_eq!(c.peer("hostb").unwrap().port, 7777);
    assert_eq!(
        c.peer("hostc").unwrap_err().to_string(),
        "unknown peer \"hostc\": known peers are hostb, hostd; add it under peers: in /etc/ftvirt/ftd.yaml"
    );
    let lone = Config::from_str(HOST, ORIGIN).unwrap();
    assert_eq!(
        lone.peer("hostb").unwrap_err().to_string(),
        "unknown peer \"hostb\": no peers are configured; add it under peers: in /etc/ftvirt/ftd.yaml"
    );
}

#[test]
fn a_missing_file_says_which_and_what_to_do() {
    let e = Config::load("/nonexistent/ftd.yaml").unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot read the configuration file /nonexistent/ftd.yaml: check that it exists \
         and is readable (examples/ftd.yaml in ftvirt's sources shows every key), or give \
         ftd another path"
    );
    let ConfigError::Read { source, .. } = e else {
        panic!("{e:?}")
    };
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
}

/// Each kind of mistake: the text, and the whole message.
#[test]
fn mistakes_are_refused_with_position_and_fix() {
    let peer_b = "peers:\n  - name: hostb\n    address: 10.200.0.12\n";
    let cases: Vec<(String, &str)> = vec![
        // Unknown keys, with the nearest known one.
        (
            format!("{HOST}{peer_b}\ndefaults:\n  checkpont-interval: 3000\n"),
            "9:3: unknown key \"checkpont-interval\" in defaults; did you mean \"checkpoint-interval\"?",
        ),
        (
            format!("{HOST}defaults:\n  checkpoint_interval: 3000\n"),
            "5:3: unknown key \"checkpoint_interval\" in defaults; did you mean \"checkpoint-interval\"?",
        ),
        (
            "hots:\n  name: a\n".into(),
            "1:1: unknown key \"hots\" at the top level; did you mean \"host\"?",
        ),
        (
            format!("{HOST}peers:\n  - name: hostb\n    adress: 10.200.0.12\n"),
            "6:5: unknown key \"adress\" in peers[0]; did you mean \"address\"?",
        ),
        (
            format!("{HOST}colo:\n  speed: 3\n"),
            "5:3: unknown key \"speed\" in colo; the keys there are ports, overlay-dir, tls, tls-ca, tls-cert, tls-key, trusted-dirs, secondary-memory-percent, secondary-memory-headroom",
        ),
        // A key in the wrong section.
        (
            format!("{HOST}checkpoint-interval: 3000\n"),
            "4:1: unknown key \"checkpoint-interval\" at the top level; it belongs under defaults:",
        ),
        (
            format!("{HOST}defaults:\n  overlay-dir: /srv/overlays\n"),
            "5:3: unknown key \"overlay-dir\" in defaults; it belongs under colo:",
        ),
        (
            format!("{HOST}log: {{level: verbose}}\n"),
            "4:14: unknown value \"verbose\" for log.level; use one of error, warn, info, debug, trace",
        ),
        (
            format!("{HOST}  name: hostb\n"),
            "2:3: key \"name\" is written twice in host; keep one",
        ),
        // Wrong types.
        (
            format!("{HOST}defaults:\n  checkpoint-interval: 2s\n"),
            "5:24: defaults.checkpoint-interval must be a whole number of milliseconds, not \"2s\"",
        ),
        (
            format!("{HOST}defaults:\n  auto-reprotect: yes\n"),
            "5:19: defaults.auto-reprotect must be true or false, not \"yes\"",
        ),
        (
            format!("{HOST}peers: hostb\n"),
            "4:8: peers must be a list (lines starting with \"- \"), not \"hostb\"",
        ),
        (
            format!("{HOST}log:\n  output: jornald\n"),
            "5:11: unknown value \"jornald\" for log.output; did you mean \"journald\"?",
        ),
        (
            format!("{HOST}colo:\n  ports:\n    nbd: 70000\n"),
            "6:10: colo.ports.nbd must be a port number from 1 to 65535, not 70000",
        ),
        // Out of range.
        (
            format!("{HOST}{peer_b}\ndefaults:\n  heartbeat-interval: 50\n  checkpoint-interval: 5\n"),
            "10:24: checkpoint-interval 5 is out of range: use 100 to 60000 ms",
        ),
        (
            format!("{HOST}defaults: {{sync-timeout: 100000}}\n"),
            "4:26: sync-timeout 100000 is out of range: use 10 to 86400 s",
        ),
        // Detection time against the heartbeat: at detection-time if written...
        (
            format!("{HOST}defaults:\n  heartbeat-interval: 200\n  detection-time: 500\n"),
            "6:19: detection-time 500 ms is less than 3 x heartbeat-interval (200 ms): raise \
             detection-time to at least 600 or lower heartbeat-interval to at most 166",
        ),
        // ... else at heartbeat-interval.
        (
            format!("{HOST}defaults:\n  heartbeat-interval: 200\n"),
            "5:23: detection-time 500 ms is less than 3 x heartbeat-interval (200 ms): raise \
             detection-time to at least 600 or lower heartbeat-interval to at most 166",
        ),
        // Peers.
        (
            format!("{HOST}{peer_b}  - name: hostb\n    address: 10.200.0.13\n"),
            "7:11: peer \"hostb\" is listed twice (peers[0] and peers[1]): remove one",
        ),
        (
            format!("{HOST}{peer_b}  - name: hostc\n    address: 10.200.0.12\n"),
            "8:14: peers \"hostb\" and \"hostc\" have the same address and port \
             (10.200.0.12:7777): correct one of them",
        ),
        (
            format!("{HOST}peers:\n  - name: hosta\n    address: 10.200.0.12\n"),
            "5:11: peer \"hosta\" has this host's own name (host.name): a host is not its own \
             peer; remove this peer or correct its name",
        ),
        (
            format!("{HOST}peers:\n  - name: hostb\n    address: 10.200.0.11\n"),
            "6:14: peer \"hostb\" has this host's own address and port (10.200.0.11:7777): \
             remove this peer or correct its address",
        ),
        // Addresses and names.
        (
            format!("{HOST}peers:\n  - name: hostb\n    address: hostb.lan\n"),
            "6:14: peers[0].address must be a host's IP address such as 10.200.0.12 (names \
             are not resolved), not \"hostb.lan\"",
        ),
        (
            "host:\n  name: hosta\n  address: 0.0.0.0\n".into(),
            "3:12: host.address must be a host's IP address such as 10.200.0.12 (names are \
             not resolved), not \"0.0.0.0\"",
        ),
        (
            "host:\n  name: host a\n  address: 10.200.0.11\n".into(),
            "2:9: host.name must be a host name of letters, digits, '.', '-' and '_', \
             starting with a letter or digit, not \"host a\"",
        ),
        // Missing keys.
        (
            "peers: []\n".into(),
            "1:1: missing key \"host\" at the top level: add host: with this host's name: and \
             its replication address:",
        ),
        (
            "# ftd\n\nhost:\n  address: 10.200.0.11\n".into(),
            "4:3: missing key \"name\" in host: add name: with this host's name, as its peers \
             know it",
        ),
        (
            format!("{HOST}peers:\n  - name: hostb\n"),
            "5:5: missing key \"address\" in peers[0]: every peer needs address: (its IP on \
             the replication network)",
        ),
        // Ports.
        (
            format!("{HOST}colo:\n  ports:\n    mirror: 9999\n"),
            "6:13: port 9999 is used twice, by colo.ports.nbd and colo.ports.mirror: give \
             each its own port",
        ),
        (
            "host:\n  name: hosta\n  address: 10.200.0.11\n  port: 9998\n".into(),
            "4:9: port 9998 is used twice, by host.port and colo.ports.migration: give each \
             its own port",
        ),
        // Every slot's ports (slot n: nbd and migration - 10 n, the others + 10 n).
        (
            format!("{HOST}colo:\n  ports:\n    compare: 9013\n"),
            "6:5: port 9013 is used by slot 0's COLO ports and by slot 1's COLO ports (slot n \
             adds or takes 10 n to colo.ports): spread colo.ports further apart, or move \
             host.port",
        ),
        (
            format!("{HOST}colo:\n  ports:\n    nbd: 100\n"),
            "6:5: colo.ports leave no room for 64 domains (slot n uses nbd and migration minus \
             10 n, the others plus 10 n): choose nbd and migration above 630 and the others \
             below 64905",
        ),
        // Authorization.
        (
            format!("{HOST}authorization: polkt\n"),
            "4:16: unknown value \"polkt\" for authorization; did you mean \"polkit\"?",
        ),
        (
            format!("{HOST}authorization: off\n"),
            "4:16: unknown value \"off\" for authorization; use one of polkit, none",
        ),
        (
            format!("{HOST}bus:\n  authorization: none\n"),
            "5:3: unknown key \"authorization\" in bus; it belongs at the top level",
        ),
        // Bus, paths.
        (
            format!("{HOST}bus:\n  connect: systen\n"),
            "5:12: bus.connect must be system, session, or a D-Bus address such as \
             unix:path=/run/ftvirt/bus, not \"systen\"",
        ),
        (
            format!("{HOST}bus:\n  name: ftd\n"),
            "5:9: bus.name must be a D-Bus name such as org.ftvirt.Ftd1 (two or more \
             dot-separated parts of letters, digits, '_' and '-', none starting with a \
             digit), not \"ftd\"",
        ),
        (
            format!("{HOST}state-dir: var/lib/ftvirt\n"),
            "4:12: state-dir must be an absolute path (starting with /), not \"var/lib/ftvirt\"",
        ),
        // Not YAML at all.
        (
            format!("{HOST}defaults:\n\tdetection-time: 500\n"),
            "5:1: not valid YAML: found character that cannot start any token, while \
             scanning for the next token",
        ),
    ];
    let mut failures = Vec::new();
    for (text, want) in &cases {
        let got = err(text);
        let want = format!("{ORIGIN}:{want}");
        if got != want {
            failures.push(format!("text:\n{text}\nwant: {want}\ngot:  {got}\n"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_empty_file_is_refused() {
    for text in ["", "\n  \n"] {
        assert_eq!(
            err(text),
            "/etc/ftvirt/ftd.yaml: the file is empty: it needs at least host: with this \
             host's name: and address:"
        );
    }
    assert_eq!(
        err("# nothing yet\n\n"),
        "/etc/ftvirt/ftd.yaml:3:1: missing key \"host\" at the top level: add host: with \
         this host's name: and its replication address:"
    );
}

#[test]
fn the_table_of_sections_matches_the_types() {
    use super::error::SECTIONS;
    let actual = [
        keys_of::<Config>(),
        keys_of::<Host>(),
        keys_of::<Peer>(),
        keys_of::<PeerLinkConfig>(),
        keys_of::<TlsFiles>(),
        keys_of::<Timing>(),
        keys_of::<Colo>(),
        keys_of::<ColoPorts>(),
        keys_of::<Bus>(),
        keys_of::<Log>(),
        keys_of::<ArbiterConfig>(),
        keys_of::<WitnessConfig>(),
        keys_of::<WitnessTls>(),
    ];
    for ((home, keys), actual) in SECTIONS.iter().zip(actual) {
        assert_eq!(keys.to_vec(), actual, "{home}");
    }
}
