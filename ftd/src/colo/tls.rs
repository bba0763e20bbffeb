//! COLO's channels over mutual TLS: the QEMU objects every COLO listener and
//! client names, and the directory of PEM files QEMU loads them from.
//!
//! ```text
//! channel                  listener: server creds + authz          client: client creds, name checked
//! NBD export parent0       B nbd-server-start on B's address       A blockdev nbd (sync, replication),
//!                                                                    tls-hostname = B's host name
//! migration, checkpoints   B migrate-incoming on B's address       A migrate, tls-hostname = B's name
//! proxy mirror0, compare1  A chardev servers on A's address        B -chardev red0, red1: checked
//!                                                                    against A's address (IP SAN)
//! ```
//! Every listener has `verify-peer=on` and an `authz-simple` whose identity is the
//! peer's distinguished name (`CN=<peer host>`, as `ftd make-certs` makes it): a
//! client needs a certificate from the cluster's COLO CA *and* the peer's name, so
//! another host of the same cluster is refused too. Every client checks the
//! server's certificate against the CA and the peer's name; a chardev client has
//! no `tls-hostname` in QEMU 7.2 and checks the address it connects to, which is
//! why a host's certificate names its replication address. colo-compare's loopback
//! pairs (`compare0`, `compare_out`) never leave the primary's host and stay plain.
//! QEMU 7.2 keeps the incoming migration's listener open while COLO runs (it
//! ignores an extra connection); with TLS, a client without the primary's
//! certificate never gets past the handshake.
//!
//! The files are COLO's own (`colo.tls-ca`, `tls-cert`, `tls-key`, from a CA of
//! their own: [`crate::certs`]), copied by ftd at start into [`dir`] under QEMU's
//! fixed names (`tls-creds-x509`'s `dir`): the same certificate and key serve
//! both endpoints, since either host may be either side. QEMU runs as libvirt's
//! unprivileged user and loads them itself, so the copy is that user's
//! ([`QemuUser`]): every file 0600 and QEMU's, the directory 0750 with QEMU's
//! group; no other user reads a key. Every guest's QEMU runs as that user, so a
//! guest that escapes into its QEMU can read COLO's key: that is why it is not
//! the peer link's, whose CA does not sign it and whose key stays ftd's (ftd
//! refuses to start otherwise, `Config::check_colo_tls`).

use crate::host::qemu_user::{QemuUser, FILE_MODE};
use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where QEMU's copy of the TLS files goes under ftd's state directory.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("qemu-tls")
}

/// COLO's TLS with one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColoTls {
    /// The directory QEMU loads the PEM files from ([`write_dir`]).
    pub dir: PathBuf,
    /// The peer's host name: its certificate's name and common name.
    pub peer: String,
}

/// The ids of one QEMU's TLS objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub server: String,
    pub client: String,
    pub authz: String,
}

impl Ids {
    /// The secondary's (on its command line; one set per QEMU).
    pub fn secondary() -> Ids {
        Ids::with_suffix("")
    }

    /// The primary's, for protection attempt `gen`: a QEMU that was a secondary
    /// (a survivor) already has the unnumbered ones, and an earlier attempt's
    /// may still be referenced by a node or socket being torn down.
    pub fn primary(gen: u32) -> Ids {
        Ids::with_suffix(&gen.to_string())
    }

    fn with_suffix(s: &str) -> Ids {
        Ids {
            server: format!("ftvirt-tls-server{s}"),
            client: format!("ftvirt-tls-client{s}"),
            authz: format!("ftvirt-authz{s}"),
        }
    }

    /// Every id, for clean-up.
    pub fn all(&self) -> [&str; 3] {
        [&self.server, &self.client, &self.authz]
    }
}

impl ColoTls {
    /// The distinguished name QEMU reads from the peer's certificate.
    pub fn identity(&self) -> String {
        format!("CN={}", self.peer)
    }

    /// The three objects as `object-add` arguments.
    pub fn objects(&self, ids: &Ids) -> [Value; 3] {
        let dir = self.dir.display().to_string();
        [
            json!({"qom-type": "tls-creds-x509", "id": ids.server, "dir": dir,
                   "endpoint": "server", "verify-peer": true}),
            json!({"qom-type": "tls-creds-x509", "id": ids.client, "dir": dir,
                   "endpoint": "client", "verify-peer": true}),
            json!({"qom-type": "authz-simple", "id": ids.authz, "identity": self.identity()}),
        ]
    }

    /// The same objects as `-object` arguments (the secondary's command line).
    /// The directory is ftd's own and the peer a checked host name, but a comma
    /// is still doubled, QEMU's escape in option values.
    pub fn command_line(&self, ids: &Ids) -> Vec<String> {
        let dir = self.dir.display().to_string().replace(',', ",,");
        vec![
            "-object".into(),
            format!(
                "tls-creds-x509,id={},dir={dir},endpoint=server,verify-peer=on",
                ids.server
            ),
            "-object".into(),
            format!(
                "tls-creds-x509,id={},dir={dir},endpoint=client,verify-peer=on",
                ids.client
            ),
            "-object".into(),
            format!(
                "authz-simple,id={},identity={}",
                ids.authz,
                self.identity().replace(',', ",,")
            ),
        ]
    }
}

/// The files of QEMU's `tls-creds-x509` `dir`, from COLO's `ca`, `cert` and
/// `key`: both endpoints use the host's one COLO certificate.
const FILES: [(&str, Source); 5] = [
    ("ca-cert.pem", Source::Ca),
    ("server-cert.pem", Source::Cert),
    ("client-cert.pem", Source::Cert),
    ("server-key.pem", Source::Key),
    ("client-key.pem", Source::Key),
];

#[derive(Clone, Copy)]
enum Source {
    Ca,
    Cert,
    Key,
}

/// Write QEMU's copy of the TLS files into `dir` (0750, QEMU's group; each file
/// 0600, QEMU's user's), each replaced atomically, so a QEMU loading them
/// meanwhile reads old or new. Its parents are made only if missing (0755:
/// the state directory, which QEMU must search).
pub fn write_dir(
    dir: &Path,
    ca: &Path,
    cert: &Path,
    key: &Path,
    qemu: &QemuUser,
) -> std::io::Result<()> {
    let ctx = |what: &str, p: &Path, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("{what} {}: {e}", p.display()))
    };
    let owned = |r: Result<(), String>| r.map_err(std::io::Error::other);
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(|e| ctx("creating", parent, e))?;
    }
    match std::fs::DirBuilder::new().mode(0o750).create(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(ctx("creating", dir, e))
        }
        _ => owned(qemu.own_dir(dir))?,
    }
    for (name, src) in FILES {
        let from = match src {
            Source::Ca => ca,
            Source::Cert => cert,
            Source::Key => key,
        };
        let text = std::fs::read(from).map_err(|e| ctx("reading", from, e))?;
        let to = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)
            .map_err(|e| ctx("creating", &tmp, e))?;
        owned(qemu.own_file(&tmp))?;
        f.write_all(&text).map_err(|e| ctx("writing", &tmp, e))?;
        f.sync_all().map_err(|e| ctx("writing", &tmp, e))?;
        std::fs::rename(&tmp, &to).map_err(|e| ctx("renaming to", &to, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> ColoTls {
        ColoTls {
            dir: PathBuf::from("/var/lib/ftvirt/qemu-tls"),
            peer: "hostb".into(),
        }
    }

    #[test]
    fn every_listener_verifies_the_peer_and_pins_its_name() {
        let [server, client, authz] = tls().objects(&Ids::primary(3));
        assert_eq!(server["endpoint"], "server");
        assert_eq!(server["verify-peer"], true);
        assert_eq!(server["id"], "ftvirt-tls-server3");
        assert_eq!(client["endpoint"], "client");
        assert_eq!(client["verify-peer"], true);
        assert_eq!(authz["qom-type"], "authz-simple");
        assert_eq!(authz["identity"], "CN=hostb");
        let cl = tls().command_line(&Ids::secondary()).join(" ");
        assert!(cl.contains("tls-creds-x509,id=ftvirt-tls-server,dir=/var/lib/ftvirt/qemu-tls,endpoint=server,verify-peer=on"), "{cl}");
        assert!(
            cl.contains("authz-simple,id=ftvirt-authz,identity=CN=hostb"),
            "{cl}"
        );
        let odd = ColoTls {
            dir: PathBuf::from("/a,b"),
            peer: "hostb".into(),
        };
        assert!(odd.command_line(&Ids::secondary())[1].contains("dir=/a,,b,"));
    }

    #[test]
    fn the_directory_holds_both_endpoints_and_keys_only_the_owner_reads() {
        let t = std::env::temp_dir().join(format!("ftvirt-qemu-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        std::fs::create_dir_all(&t).unwrap();
        for (f, text) in [("ca", "CA"), ("crt", "CERT"), ("key", "KEY")] {
            std::fs::write(t.join(f), text).unwrap();
        }
        let d = t.join("qemu");
        let q = QemuUser::current();
        write_dir(&d, &t.join("ca"), &t.join("crt"), &t.join("key"), &q).unwrap();
        // Again over the first: replaced, not refused.
        write_dir(&d, &t.join("ca"), &t.join("crt"), &t.join("key"), &q).unwrap();
        let read = |n: &str| std::fs::read_to_string(d.join(n)).unwrap();
        assert_eq!(read("ca-cert.pem"), "CA");
        assert_eq!(read("server-cert.pem"), "CERT");
        assert_eq!(read("client-cert.pem"), "CERT");
        assert_eq!(read("server-key.pem"), "KEY");
        assert_eq!(read("client-key.pem"), "KEY");
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        for (n, _) in FILES {
            let m = std::fs::metadata(d.join(n)).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o600, "{n}");
            assert_eq!((m.uid(), m.gid()), (q.uid.as_raw(), q.gid.as_raw()), "{n}");
        }
        let m = std::fs::metadata(&d).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o750);
        assert_eq!(m.gid(), q.gid.as_raw());
        let e = write_dir(&d, &t.join("nope"), &t.join("crt"), &t.join("key"), &q).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        std::fs::remove_dir_all(&t).unwrap();
    }
}
