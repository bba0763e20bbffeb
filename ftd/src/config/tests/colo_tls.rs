//! `colo.tls-ca`, `tls-cert`, `tls-key`: their defaults and syntax, and the
//! check at start (`Config::check_colo_tls`) with files made by `ftd
//! make-certs`'s code: COLO's own files, naming this host and its replication
//! address, from a CA that the peer link does not trust, refused at their key
//! with the fix otherwise.

use super::tls::Scratch;
use super::{err, HOST, ORIGIN};
use crate::certs::{self, Ca};
use crate::config::Config;
use crate::peer::Credentials;
use std::path::{Path, PathBuf};

#[test]
fn colo_tls_files_default_beside_the_peer_links_and_are_absolute_paths() {
    let c = Config::from_str(HOST, ORIGIN).unwrap();
    assert_eq!(c.colo.tls_ca, Path::new("/etc/ftvirt/tls/colo-ca.crt"));
    assert_eq!(c.colo.tls_cert, Path::new("/etc/ftvirt/tls/colo.crt"));
    assert_eq!(c.colo.tls_key, Path::new("/etc/ftvirt/tls/colo.key"));
    assert_eq!(
        err(&format!("{HOST}colo:\n  tls-key: colo.key\n")),
        "/etc/ftvirt/ftd.yaml:5:12: colo.tls-key must be an absolute file path \
         (starting with /), not \"colo.key\""
    );
}

/// hosta's configuration: the peer link's files of `peer` (lines 6 to 8) and
/// COLO's `ca`, `cert`, `key` (lines 10 to 12), then `more`.
fn text(peer: &Path, ca: &Path, cert: &Path, key: &Path, more: &str) -> String {
    format!(
        "{HOST}peer-link:\n  tls:\n    ca: {}\n    cert: {}\n    key: {}\n\
         colo:\n  tls-ca: {}\n  tls-cert: {}\n  tls-key: {}\n{more}",
        peer.join("ca.crt").display(),
        peer.join("host.crt").display(),
        peer.join("host.key").display(),
        ca.display(),
        cert.display(),
        key.display(),
    )
}

/// The outcome of ftd's checks at start for `text`.
fn start(text: &str) -> Result<(), String> {
    let c = Config::from_str(text, ORIGIN).unwrap();
    let peer = c.peer_credentials().map_err(|e| e.to_string())?;
    c.check_colo_tls(&peer).map_err(|e| e.to_string())
}

fn refused(text: &str) -> String {
    match start(text) {
        Ok(()) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

/// A cluster's files for hosta and hostb, made as `ftd make-certs` does.
fn cluster(s: &Scratch) -> PathBuf {
    let dir = s.0.join("cluster");
    let hosts = ["hosta=10.200.0.11".into(), "hostb=10.200.0.12".into()];
    certs::make(&dir, &hosts, 30, false).unwrap();
    dir
}

#[test]
fn colo_files_from_make_certs_pass_and_mistakes_are_named_at_their_key() {
    let s = Scratch::new();
    let dir = cluster(&s);
    let a = dir.join("hosta");
    let colo =
        |crt: &str, key: &str| text(&a, &a.join("colo-ca.crt"), &a.join(crt), &a.join(key), "");
    start(&colo("colo.crt", "colo.key")).unwrap();

    // The peer link's certificate and key as COLO's: not from COLO's CA.
    let e = refused(&colo("host.crt", "host.key"));
    assert!(
        e.starts_with(&format!("{ORIGIN}:11:13: colo.tls-cert: ")),
        "{e}"
    );
    assert!(e.contains("is not valid with the CA"), "{e}");

    // hostb's COLO files on hosta.
    let b = dir.join("hostb");
    let e = refused(&text(
        &a,
        &a.join("colo-ca.crt"),
        &b.join("colo.crt"),
        &b.join("colo.key"),
        "",
    ));
    assert!(
        e.starts_with(&format!("{ORIGIN}:11:13: colo.tls-cert: ")),
        "{e}"
    );
    assert!(
        e.contains(r#"names "hostb", "10.200.0.12", not this host"#),
        "{e}"
    );

    // hosta's COLO certificate with hostb's COLO key.
    let e = refused(&colo("colo.crt", "../hostb/colo.key"));
    assert!(
        e.starts_with(&format!("{ORIGIN}:12:12: colo.tls-key: ")),
        "{e}"
    );
    assert!(e.contains("colo.key next to colo.crt"), "{e}");

    // A COLO certificate that names no address (make-certs from a bare HOST):
    // QEMU on the secondary would refuse it; the fix is named.
    let bare = s.0.join("bare");
    certs::make(&bare, &["hosta".into()], 30, false).unwrap();
    let ba = bare.join("hosta");
    let no_addr = text(
        &ba,
        &ba.join("colo-ca.crt"),
        &ba.join("colo.crt"),
        &ba.join("colo.key"),
        "",
    );
    let e = refused(&no_addr);
    assert!(
        e.starts_with(&format!("{ORIGIN}:11:13: colo.tls-cert: ")),
        "{e}"
    );
    assert!(
        e.contains("not this host's replication address 10.200.0.11")
            && e.contains("ftd make-certs --force --dir DIR hosta=10.200.0.11"),
        "{e}"
    );
    // With colo.tls: false, COLO's files are not read at all.
    let off = text(
        &a,
        &s.0.join("none.crt"),
        &s.0.join("none.crt"),
        &s.0.join("none.key"),
        "",
    )
    .replace("colo:\n", "colo:\n  tls: false\n");
    start(&off).unwrap();
    start(&no_addr.replace("colo:\n", "colo:\n  tls: false\n")).unwrap();
}

#[test]
fn the_default_colo_files_are_named_without_a_position() {
    let s = Scratch::new();
    let a = cluster(&s).join("hosta");
    let text = format!(
        "{HOST}peer-link:\n  tls:\n    ca: {}\n    cert: {}\n    key: {}\n",
        a.join("ca.crt").display(),
        a.join("host.crt").display(),
        a.join("host.key").display(),
    );
    let e = refused(&text);
    assert!(
        e.starts_with(&format!(
            "{ORIGIN}: colo.tls-ca: cannot read the CA certificate /etc/ftvirt/tls/colo-ca.crt: "
        )) || Path::new("/etc/ftvirt/tls/colo-ca.crt").exists(),
        "{e}"
    );
}

#[test]
fn colo_files_the_peer_link_would_accept_stop_ftd_with_the_fix() {
    let s = Scratch::new();
    let dir = cluster(&s);
    let a = dir.join("hosta");
    let fix = "run `ftd make-certs --dir DIR HOST=ADDR...` again with the DIR that holds \
               the peer link's CA";

    // The peer link's own files as COLO's: what ftd gave QEMU before COLO had
    // its own CA. Refused at colo.tls-ca, naming why and the fix.
    let e = refused(&text(
        &a,
        &a.join("ca.crt"),
        &a.join("host.crt"),
        &a.join("host.key"),
        "",
    ));
    assert!(
        e.starts_with(&format!("{ORIGIN}:10:11: colo.tls-ca: ")),
        "{e}"
    );
    assert!(
        e.contains("holds the peer link's CA certificate") && e.contains(fix),
        "{e}"
    );

    // COLO's CA file that also holds the peer link's CA.
    let both = s.0.join("both-cas.crt");
    let pem = |p: &Path| std::fs::read_to_string(p).unwrap();
    std::fs::write(&both, pem(&a.join("colo-ca.crt")) + &pem(&a.join("ca.crt"))).unwrap();
    let e = refused(&text(
        &a,
        &both,
        &a.join("colo.crt"),
        &a.join("colo.key"),
        "",
    ));
    assert!(
        e.starts_with(&format!("{ORIGIN}:10:11: colo.tls-ca: "))
            && e.contains("holds the peer link's CA certificate"),
        "{e}"
    );

    // A COLO CA that is the peer link's CA issued again (its name and key,
    // other bytes): no certificate in common, but the peer link would take a
    // certificate it signs. Refused at colo.tls-cert.
    let key = rcgen::KeyPair::generate().unwrap();
    let issue = |days: i64| {
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "a site's own CA");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        p.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
        let cert = p.self_signed(&key).unwrap().pem();
        Ca::from_pem(&cert, &key.serialize_pem()).unwrap()
    };
    let (first, again) = (issue(7), issue(8));
    assert_ne!(first.cert_pem(), again.cert_pem());
    let site = s.0.join("site");
    let write = |host: &str, ca: &Ca, ca_name: &str, crt: &str, key: &str| {
        let d = site.join(host);
        std::fs::create_dir_all(&d).unwrap();
        let hc = ca.host(host, &["10.200.0.11".parse().unwrap()], 7).unwrap();
        std::fs::write(d.join(ca_name), ca.cert_pem()).unwrap();
        std::fs::write(d.join(crt), &hc.cert_pem).unwrap();
        std::fs::write(d.join(key), &hc.key_pem).unwrap();
        d
    };
    let d = write("hosta", &first, "ca.crt", "host.crt", "host.key");
    write("hosta", &again, "colo-ca.crt", "colo.crt", "colo.key");
    let (ca_f, crt_f, key_f) = (
        d.join("colo-ca.crt"),
        d.join("colo.crt"),
        d.join("colo.key"),
    );
    // It passes every check but that one.
    let p = crate::peer::tls::Paths {
        ca: &ca_f,
        cert: &crt_f,
        key: &key_f,
    };
    Credentials::load("hosta", p).unwrap();
    let e = refused(&text(&d, &ca_f, &crt_f, &key_f, ""));
    assert!(
        e.starts_with(&format!("{ORIGIN}:11:13: colo.tls-cert: ")),
        "{e}"
    );
    assert!(
        e.contains("is valid with the peer link's CA") && e.contains(fix),
        "{e}"
    );
}
