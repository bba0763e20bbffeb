//! `ftd make-certs` as an operator runs it, and ftd refusing to start with TLS files
//! that do not fit (checked before ftd touches libvirt or D-Bus), or with the etcd
//! witness it cannot use yet. No lab needed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FTD: &str = env!("CARGO_BIN_EXE_ftd");

fn ftd(args: &[&str]) -> Output {
    let out = Command::new(FTD).args(args).output().expect("running ftd");
    eprintln!(
        "ftd {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A directory removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("ftd-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    Scratch(d)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn make_certs_makes_the_cas_once_and_each_hosts_files() {
    let s = scratch("make-certs");
    let dir = s.0.to_str().unwrap();
    let out = ftd(&["make-certs", "--dir", dir, "hosta", "hostb"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("made a new CA for the peer link")
            && stdout.contains("made a new CA for COLO's channels"),
        "{stdout}"
    );
    assert!(
        stdout.contains("to hosta:/etc/ftvirt/tls/")
            && stdout.contains("to hostb:/etc/ftvirt/tls/"),
        "{stdout}"
    );
    assert_eq!(mode(&s.0.join("ca.key")), 0o600);
    assert_eq!(mode(&s.0.join("colo-ca.key")), 0o600);
    // COLO's CA is its own.
    assert_ne!(read(&s.0.join("colo-ca.crt")), read(&s.0.join("ca.crt")));
    for h in ["hosta", "hostb"] {
        let d = s.0.join(h);
        assert_eq!(mode(&d.join("host.key")), 0o600);
        assert_eq!(mode(&d.join("colo.key")), 0o600);
        assert_eq!(read(&d.join("ca.crt")), read(&s.0.join("ca.crt")));
        assert_eq!(read(&d.join("colo-ca.crt")), read(&s.0.join("colo-ca.crt")));
        for f in ["host.crt", "colo.crt"] {
            assert!(String::from_utf8(read(&d.join(f)))
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----"));
        }
    }

    // A host that has its files keeps them unless --force.
    let out = ftd(&["make-certs", "--dir", dir, "hosta"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already exist: pass --force"), "{stderr}");

    // A renewal and a new host reuse the CAs.
    let ca = read(&s.0.join("ca.crt"));
    let colo_ca = read(&s.0.join("colo-ca.crt"));
    let old = read(&s.0.join("hosta/host.crt"));
    let old_colo = read(&s.0.join("hosta/colo.crt"));
    let out = ftd(&["make-certs", "--dir", dir, "--force", "hosta", "hostc"]);
    assert!(out.status.success());
    let renewed = String::from_utf8_lossy(&out.stdout);
    assert!(
        renewed.contains("used the CA for the peer link")
            && renewed.contains("used the CA for COLO's channels"),
        "{renewed}"
    );
    assert_eq!(read(&s.0.join("ca.crt")), ca);
    assert_eq!(read(&s.0.join("colo-ca.crt")), colo_ca);
    assert_ne!(read(&s.0.join("hosta/host.crt")), old);
    assert_ne!(read(&s.0.join("hosta/colo.crt")), old_colo);
    assert!(s.0.join("hostc/host.key").exists() && s.0.join("hostc/colo.key").exists());

    // A bare name makes certificates for the peer link only, and says so.
    assert!(
        stdout.contains("hosta's certificates name no address"),
        "{stdout}"
    );

    let out = ftd(&["make-certs", "--dir", dir, "host a"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"host a\" is not a host name"));
}

/// A directory made before COLO had its own CA: the peer link's CA and hosts'
/// files only. Run again on it without --force, make-certs adds COLO's CA and
/// files and keeps the peer link's, byte for byte.
#[test]
fn make_certs_adds_colo_files_to_hosts_made_before_and_keeps_theirs() {
    let s = scratch("make-certs-colo");
    let dir = s.0.to_str().unwrap();
    let hosts = ["hosta=192.0.2.1", "hostb=192.0.2.2"];
    let args = || [&["make-certs", "--dir", dir][..], &hosts].concat();
    assert!(ftd(&args()).status.success());
    for f in ["colo-ca.crt", "colo-ca.key"] {
        std::fs::remove_file(s.0.join(f)).unwrap();
    }
    for h in ["hosta", "hostb"] {
        for f in ["colo-ca.crt", "colo.crt", "colo.key"] {
            std::fs::remove_file(s.0.join(h).join(f)).unwrap();
        }
    }
    let peer_files = [
        "ca.crt",
        "ca.key",
        "hosta/ca.crt",
        "hosta/host.crt",
        "hosta/host.key",
    ];
    let before: Vec<Vec<u8>> = peer_files.iter().map(|f| read(&s.0.join(f))).collect();

    let out = ftd(&args());
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("used the CA for the peer link")
            && stdout.contains("made a new CA for COLO's channels"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "made hosta's COLO certificate (valid 3650 days), keeping its \
                         peer-link files: copy colo-ca.crt, colo.crt, colo.key from"
        ),
        "{stdout}"
    );
    let after: Vec<Vec<u8>> = peer_files.iter().map(|f| read(&s.0.join(f))).collect();
    assert!(before == after, "the peer link's files changed");
    assert_eq!(mode(&s.0.join("hosta/colo.key")), 0o600);
    assert_eq!(
        read(&s.0.join("hostb/colo-ca.crt")),
        read(&s.0.join("colo-ca.crt"))
    );

    // Once both sets are there, again is refused without --force.
    let out = ftd(&args());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exist: pass --force"));
}

fn config(dir: &Path, files_of: &str) -> String {
    // make-certs made `dir` 0700; state-dir is under it, and ftd checks at start
    // that QEMU's user can reach it (the CA key stays 0600).
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    let f = dir.join(files_of);
    format!(
        "host:\n  name: hosta\n  address: 192.0.2.1\npeers:\n  - name: hostb\n    \
         address: 192.0.2.2\npeer-link:\n  tls:\n    ca: {}\n    cert: {}\n    key: {}\n\
         colo:\n  tls-ca: {}\n  tls-cert: {}\n  tls-key: {}\n\
         bus:\n  connect: 'unix:path={}/no-bus'\nstate-dir: {}/state\nlog:\n  output: stderr\n",
        f.join("ca.crt").display(),
        f.join("host.crt").display(),
        f.join("host.key").display(),
        f.join("colo-ca.crt").display(),
        f.join("colo.crt").display(),
        f.join("colo.key").display(),
        dir.display(),
        dir.display(),
    )
}

#[test]
fn ftd_does_not_start_with_tls_files_that_do_not_fit() {
    let s = scratch("tls-start");
    let dir = s.0.to_str().unwrap();
    assert!(ftd(&[
        "make-certs",
        "--dir",
        dir,
        "hosta=192.0.2.1",
        "hostb=192.0.2.2"
    ])
    .status
    .success());
    let cfg = s.0.join("ftd.yaml");

    // hostb's files on hosta: exit 2 before anything else, naming the key and why.
    std::fs::write(&cfg, config(&s.0, "hostb")).unwrap();
    let out = ftd(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "ftd: {}:10:11: peer-link.tls.cert: ",
            cfg.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"names "hostb", "192.0.2.2", not this host ("hosta""#),
        "{stderr}"
    );

    // hosta's own files pass the check: ftd goes on (and fails later, on the bus
    // that does not exist here, not on TLS). The peer's address is TEST-NET-1
    // (RFC 5737): nothing answers there, whatever else runs on this machine.
    std::fs::write(&cfg, config(&s.0, "hosta")).unwrap();
    let out = ftd(&["--config", cfg.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains(": peer-link.tls.") && !stderr.contains(": colo.tls-"),
        "{stderr}"
    );
    assert!(stderr.contains("peer link: dialing"), "{stderr}");
    // QEMU's copy for COLO's TLS is COLO's files, keys for root only; the peer
    // link's key is not among them.
    let q = s.0.join("state/qemu-tls");
    assert_eq!(mode(&q.join("server-key.pem")), 0o600);
    let a = s.0.join("hosta");
    for (pem, from) in [
        ("ca-cert.pem", "colo-ca.crt"),
        ("client-cert.pem", "colo.crt"),
        ("server-cert.pem", "colo.crt"),
        ("client-key.pem", "colo.key"),
        ("server-key.pem", "colo.key"),
    ] {
        assert_eq!(read(&q.join(pem)), read(&a.join(from)), "{pem}");
    }
    let peer_key = read(&a.join("host.key"));
    for e in std::fs::read_dir(&q).unwrap() {
        let p = e.unwrap().path();
        assert_ne!(read(&p), peer_key, "{} is the peer link's key", p.display());
    }

    // The peer link's files as COLO's, as ftd gave them to QEMU before COLO
    // had its own CA: ftd does not start, and says how to make COLO's.
    let old = config(&s.0, "hosta")
        .replace("colo-ca.crt", "ca.crt")
        .replace("colo.crt", "host.crt")
        .replace("colo.key", "host.key");
    std::fs::write(&cfg, old).unwrap();
    let out = ftd(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("ftd: {}:13:11: colo.tls-ca: ", cfg.display()))
            && stderr.contains("holds the peer link's CA certificate")
            && stderr.contains("run `ftd make-certs --dir DIR HOST=ADDR...` again"),
        "{stderr}"
    );

    // A COLO certificate without the replication address (made from a bare
    // name) stops ftd while COLO's TLS is on, with the fix.
    let bare = s.0.join("bare");
    assert!(
        ftd(&["make-certs", "--dir", bare.to_str().unwrap(), "hosta"])
            .status
            .success()
    );
    std::fs::write(&cfg, config(&bare, "hosta")).unwrap();
    let out = ftd(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("ftd: {}:14:13: colo.tls-cert: ", cfg.display()))
            && stderr.contains("not this host's replication address 192.0.2.1")
            && stderr.contains("ftd make-certs --force --dir DIR hosta=192.0.2.1"),
        "{stderr}"
    );
}

#[test]
fn ftd_checks_the_witness_files_then_goes_on() {
    let s = scratch("witness-start");
    let dir = s.0.to_str().unwrap();
    assert!(ftd(&[
        "make-certs",
        "--dir",
        dir,
        "hosta=192.0.2.1",
        "hostb=192.0.2.2"
    ])
    .status
    .success());
    let cfg = s.0.join("ftd.yaml");
    let etcd = "arbiter:\n  kind: etcd\n  witness:\n    endpoints: [192.0.2.3:2379]\n";

    // A witness key that cannot be read: named at its key.
    let text = format!(
        "{}{etcd}    tls:\n      key: {}/nonexistent.key\n",
        config(&s.0, "hosta"),
        s.0.display()
    );
    std::fs::write(&cfg, text).unwrap();
    let out = ftd(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "ftd: {}:26:12: arbiter.witness.tls.key: cannot read the witness's key ",
            cfg.display()
        )),
        "{stderr}"
    );

    // Everything valid: the witness is accepted (it is reached lazily, so an
    // address that answers nothing does not stop ftd); ftd goes on to the next
    // thing it needs, the bus, which this configuration points nowhere.
    let run = s.0.join("run");
    std::fs::create_dir(&run).unwrap();
    let text = format!(
        "{}{etcd}run-dir: {}\n",
        config(&s.0, "hosta"),
        run.display()
    );
    std::fs::write(&cfg, text).unwrap();
    let out = ftd(&["--config", cfg.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(!stderr.contains("arbiter.kind"), "{stderr}");
    assert!(
        stderr.contains("arbiter: the witness (etcd)") && stderr.contains("192.0.2.3:2379"),
        "{stderr}"
    );
    assert!(stderr.contains("no-bus"), "{stderr}");
}
