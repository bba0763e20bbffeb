//! COLO's certificates never get onto the peer link: with the files `ftd
//! make-certs` makes, a side presenting its COLO certificate and key (what QEMU
//! holds, and a guest that escaped into its QEMU could read) is refused in the
//! handshake, as dialer and as listener, while the same hosts' peer-link files
//! bring the link up.

use super::logs::Capture;
use super::*;
use crate::peer::tls::Paths;
use std::path::{Path, PathBuf};

/// A directory of `ftd make-certs` files for hosts "a" and "b", removed when
/// dropped.
struct Made(PathBuf);

impl Made {
    fn new() -> Made {
        let d = std::env::temp_dir().join(format!(
            "ftd-peer-colo-certs-{}-{:x}",
            std::process::id(),
            random_u64()
        ));
        crate::certs::make(&d, &["a=127.0.0.1".into(), "b=127.0.0.1".into()], 1, false)
            .expect("make-certs");
        Made(d)
    }

    /// `host`'s peer-link credentials, checked as ftd loads them at start.
    fn peer_link(&self, host: &str) -> Credentials {
        let d = self.0.join(host);
        let paths = Paths {
            ca: &d.join("ca.crt"),
            cert: &d.join("host.crt"),
            key: &d.join("host.key"),
        };
        Credentials::load(host, paths).expect("the peer link's files")
    }

    /// A side calling itself `host` that trusts the peer link's CA but presents
    /// `host`'s COLO certificate and key.
    fn colo_as_peer_link(&self, host: &str) -> Credentials {
        let d = self.0.join(host);
        let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
        Credentials::unchecked(host, &read("ca.crt"), &read("colo.crt"), &read("colo.key"))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn never_up(side: &mut Side) {
    side.quiet(ms(300)).await;
    assert!(!side.h.is_up());
}

#[tokio::test]
async fn a_dialer_presenting_its_colo_certificate_is_refused() {
    let logs = Capture::start();
    let made = Made::new();
    assert!(made.path().join("a/colo.key").exists());
    let mut cfg = b_cfg(any_port());
    cfg.tls = made.peer_link("b");
    let mut b = spawn(cfg);
    let addr = b.h.local_addr().unwrap();

    let mut cfg = a_cfg(addr);
    cfg.tls = made.colo_as_peer_link("a");
    let mut mallory = spawn(cfg);
    let line = logs
        .line(&["refused a connection", "not signed by this host's CA"])
        .await;
    assert!(line.contains("127.0.0.1:"), "no address: {line}");
    never_up(&mut b).await;
    never_up(&mut mallory).await;
    mallory.kill().await;

    // a's peer-link files from the same make-certs get in.
    let mut cfg = a_cfg(addr);
    cfg.tls = made.peer_link("a");
    let mut a = spawn(cfg);
    a.up().await;
    assert_eq!(b.up().await.0, "a");
}

#[tokio::test]
async fn a_listener_presenting_its_colo_certificate_is_refused() {
    let logs = Capture::start();
    let made = Made::new();
    let mut cfg = b_cfg(any_port());
    cfg.tls = made.colo_as_peer_link("b");
    let mut mallory = spawn(cfg);
    let addr = mallory.h.local_addr().unwrap();
    let mut cfg = a_cfg(addr);
    cfg.tls = made.peer_link("a");
    let mut a = spawn(cfg);
    logs.line(&[
        "TLS with",
        &addr.to_string(),
        "the peer's certificate is not signed by this host's CA (unknown CA)",
    ])
    .await;
    never_up(&mut a).await;
    never_up(&mut mallory).await;
    a.kill().await;

    // b's peer-link files bring the link up with the same a.
    let mut cfg = b_cfg(any_port());
    cfg.tls = made.peer_link("b");
    let mut b = spawn(cfg);
    let mut cfg = a_cfg(b.h.local_addr().unwrap());
    cfg.tls = made.peer_link("a");
    let mut a = spawn(cfg);
    a.up().await;
    assert_eq!(b.up().await.0, "a");
}
