//! ftd's YAML configuration: the input is the file's text, read by
//! [`Config::from_str`] as `Config::load` does.
//!
//! Properties: no panic; an error carries a message in the user's terms (never the
//! position probe's internal marker) and a position inside the text; an accepted
//! configuration keeps the promises the daemon relies on at start-up (peer link
//! timing, distinct peers), and what it hands to zbus (the bus name, a bus address)
//! is what zbus accepts, so that a mistake stops ftd at the line in the file rather
//! than later.

#![no_main]

use ftd::config::{BusKind, Config, ConfigError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_str(text, "fuzz.yaml") {
        Ok(c) => keeps_promises(&c),
        Err(e) => explained(&e, text),
    }
});

fn keeps_promises(c: &Config) {
    let t = &c.defaults;
    // PeerLink::spawn refuses anything else.
    assert!(!t.heartbeat_interval.is_zero() && t.detection_time > t.heartbeat_interval);
    for p in &c.peers {
        assert_ne!(p.name, c.host.name);
        assert!(ftd::config::is_host_name(&p.name));
        assert_eq!(c.peer(&p.name).map(|q| q.addr()), Ok(p.addr()));
    }
    assert!(ftd::config::is_host_name(&c.host.name));
    assert!(
        zbus::names::WellKnownName::try_from(c.bus.name.as_str()).is_ok(),
        "zbus refuses bus.name {:?}",
        c.bus.name
    );
    if let BusKind::Address(a) = &c.bus.connect {
        assert!(
            zbus::Address::try_from(a.as_str()).is_ok(),
            "zbus refuses bus.connect {a:?}"
        );
    }
}

fn explained(e: &ConfigError, text: &str) {
    let msg = e.to_string();
    assert!(
        !msg.contains("ftvirt-locate"),
        "internal marker leaked: {msg}"
    );
    if let ConfigError::Invalid { at: Some(at), .. } = e {
        // Lines as YAML counts them: \r\n, \r, \n, NEL, LS and PS end a line.
        let lines: Vec<usize> = text
            .replace("\r\n", "\n")
            .split(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'])
            .map(|l| l.chars().count())
            .collect();
        let inside = at.line >= 1
            && at.column >= 1
            && lines
                .get(at.line - 1)
                .is_some_and(|len| at.column <= len + 1);
        assert!(inside, "position {at:?} is not in the text: {msg}");
    }
}
