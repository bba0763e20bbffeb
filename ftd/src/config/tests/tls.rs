//! `peer-link.tls`: its defaults and syntax, and the check of the files it names
//! (`Config::peer_credentials`), with certificates made by `ftd make-certs`'s code.

use super::{err, HOST, ORIGIN};
use crate::certs;
use crate::config::{Config, TlsFiles};
use std::path::{Path, PathBuf};

#[test]
fn tls_files_default_to_etc_ftvirt_tls_and_are_absolute_paths() {
    let c = Config::from_str(HOST, ORIGIN).unwrap();
    assert_eq!(
        c.peer_link.tls,
        TlsFiles {
            ca: "/etc/ftvirt/tls/ca.crt".into(),
            cert: "/etc/ftvirt/tls/host.crt".into(),
            key: "/etc/ftvirt/tls/host.key".into(),
        }
    );
    let c = Config::from_str(
        &format!("{HOST}peer-link:\n  tls:\n    cert: /srv/tls/a.crt\n"),
        ORIGIN,
    )
    .unwrap();
    assert_eq!(c.peer_link.tls.cert, Path::new("/srv/tls/a.crt"));
    assert_eq!(c.peer_link.tls.key, Path::new("/etc/ftvirt/tls/host.key"));
    assert_eq!(
        err(&format!("{HOST}peer-link:\n  tls:\n    cert: host.crt\n")),
        "/etc/ftvirt/ftd.yaml:6:11: peer-link.tls.cert must be an absolute file path \
         (starting with /), not \"host.crt\""
    );
    assert_eq!(
        err(&format!("{HOST}peer-link:\n  tls:\n    certificate: /a\n")),
        "/etc/ftvirt/ftd.yaml:6:5: unknown key \"certificate\" in peer-link.tls; the keys \
         there are ca, cert, key"
    );
    assert_eq!(
        err(&format!("{HOST}peer-link:\n  insecure: true\n")),
        "/etc/ftvirt/ftd.yaml:5:3: unknown key \"insecure\" in peer-link; the keys there are tls"
    );
}

/// A directory removed when dropped.
pub(super) struct Scratch(pub(super) PathBuf);

impl Scratch {
    pub(super) fn new() -> Scratch {
        let d = std::env::temp_dir().join(format!(
            "ftd-config-tls-{}-{:x}",
            std::process::id(),
            crate::peer::random_u64()
        ));
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// hosta's configuration with these three files (line 6: ca, 7: cert, 8: key).
fn with_files(ca: &Path, cert: &Path, key: &Path) -> Config {
    let text = format!(
        "{HOST}peer-link:\n  tls:\n    ca: {}\n    cert: {}\n    key: {}\n",
        ca.display(),
        cert.display(),
        key.display()
    );
    Config::from_str(&text, ORIGIN).unwrap()
}

fn refused(ca: &Path, cert: &Path, key: &Path) -> String {
    match with_files(ca, cert, key).peer_credentials() {
        Ok(c) => panic!("accepted {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_default_tls_files_are_named_without_a_position() {
    let e = Config::from_str(HOST, ORIGIN)
        .unwrap()
        .peer_credentials()
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "/etc/ftvirt/ftd.yaml: peer-link.tls.ca: cannot read the CA certificate \
             /etc/ftvirt/tls/ca.crt: "
        ) || std::path::Path::new("/etc/ftvirt/tls/ca.crt").exists(),
        "{e}"
    );
}

#[test]
fn the_tls_files_are_checked_at_load_with_the_key_and_the_fix() {
    let s = Scratch::new();
    let (one, two) = (s.0.join("one"), s.0.join("two"));
    certs::make(
        &one,
        &["hosta=10.200.0.11".into(), "hostb=10.200.0.12".into()],
        30,
        false,
    )
    .unwrap();
    certs::make(&two, &["hosta=10.200.0.11".into()], 30, false).unwrap();
    let a = one.join("hosta");
    let (ca, cert, key) = (a.join("ca.crt"), a.join("host.crt"), a.join("host.key"));

    // What make-certs made for hosta is good.
    let creds = with_files(&ca, &cert, &key).peer_credentials().unwrap();
    assert_eq!(creds.host(), "hosta");

    // A missing file: which key, where, and how to make the files.
    let missing = s.0.join("missing.crt");
    let e = refused(&ca, &missing, &key);
    assert!(
        e.starts_with(&format!(
            "{ORIGIN}:7:11: peer-link.tls.cert: cannot read the certificate {}: No such file",
            missing.display()
        )),
        "{e}"
    );
    assert!(e.contains("ftd make-certs --dir DIR HOST=ADDR..."), "{e}");

    // Not PEM.
    std::fs::write(&missing, "hello\n").unwrap();
    let e = refused(&missing, &cert, &key);
    assert!(
        e.starts_with(&format!("{ORIGIN}:6:9: peer-link.tls.ca: ")),
        "{e}"
    );
    assert!(e.contains("holds no usable PEM CA certificate"), "{e}");

    // hostb's certificate (and key) on hosta.
    let b = one.join("hostb");
    let e = refused(&ca, &b.join("host.crt"), &b.join("host.key"));
    assert!(
        e.starts_with(&format!("{ORIGIN}:7:11: peer-link.tls.cert: ")),
        "{e}"
    );
    assert!(
        e.contains(r#"names "hostb", "10.200.0.12", not this host ("hosta", host.name)"#),
        "{e}"
    );

    // hosta's certificate from another CA than the configured one.
    let other = two.join("hosta");
    let e = refused(&ca, &other.join("host.crt"), &other.join("host.key"));
    assert!(
        e.starts_with(&format!("{ORIGIN}:7:11: peer-link.tls.cert: ")),
        "{e}"
    );
    assert!(
        e.contains("is not valid with the CA") && e.contains("is not signed by this host's CA"),
        "{e}"
    );

    // A certificate that names no address (make-certs from a bare HOST) is
    // enough for the peer link: only COLO's must name the replication address
    // (`colo_tls`).
    let three = s.0.join("three");
    certs::make(&three, &["hosta".into()], 30, false).unwrap();
    let bare = three.join("hosta");
    with_files(
        &bare.join("ca.crt"),
        &bare.join("host.crt"),
        &bare.join("host.key"),
    )
    .peer_credentials()
    .unwrap();
    // An address that is not one.
    let e = certs::make(&three, &["hostb=10.200.0".into()], 30, false).unwrap_err();
    assert!(
        e.to_string()
            .contains("\"10.200.0\" in \"hostb=10.200.0\" is not an IP address"),
        "{e}"
    );

    // The right certificate with another key.
    let e = refused(&ca, &cert, &b.join("host.key"));
    assert!(
        e.starts_with(&format!("{ORIGIN}:8:10: peer-link.tls.key: ")),
        "{e}"
    );
    assert!(e.contains("does not belong to the certificate"), "{e}");
}
