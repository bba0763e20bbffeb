//! The lab hosts' ftd as the tests drive it: its binary, the standard
//! configuration of a paired host (with the etcd witness's `arbiter:` section when
//! the lab runs one, [`lab_yaml`]), a D-Bus client of a host's ftd, waiting for a
//! domain's state or checkpoints, and the tail of a host's ftd log for failure
//! messages. One copy, used by ftd's own tests, the hook's, the matrix's and the
//! demo.

use crate::wait::{wait_until_async, Look};
use crate::{Host, Lab};
use ftd_proxy::{DomainStatus, FtdProxy, BUS_NAME};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How often the waits below ask ftd.
const POLL: Duration = Duration::from_millis(200);

/// ftd's binary for a test of another package of the workspace (a test only
/// gets `CARGO_BIN_EXE_*` for its own package's binaries): `FTVIRT_FTD_BIN` if
/// set, else built (or brought up to date) by cargo into the test's own target
/// directory and profile. `manifest_dir` is the test's `CARGO_MANIFEST_DIR`.
pub fn binary(manifest_dir: &str) -> PathBuf {
    if let Some(p) = std::env::var_os("FTVIRT_FTD_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("this test's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let target = profile_dir.parent().expect("the target directory");
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // ftd runs under its unit's sandbox in the lab: `ftvirt-sandbox` beside it.
    c.args([
        "build",
        "--quiet",
        "-p",
        "ftd",
        "--bin",
        "ftd",
        "-p",
        "ftvirt-lab",
        "--bin",
        "ftvirt-sandbox",
        "--target-dir",
    ])
    .arg(target)
    .current_dir(manifest_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        c.arg("--release");
    }
    let st = c.status().expect("running cargo to build ftd");
    assert!(st.success(), "building ftd failed: {st}");
    let bin = profile_dir.join("ftd");
    assert!(bin.exists(), "no ftd at {}", bin.display());
    bin
}

/// The lab's heartbeat and detection in ms: the environment's
/// `FTVIRT_LAB_HEARTBEAT_MS` / `FTVIRT_LAB_DETECTION_MS` where set (to measure
/// other settings), else `default`. `None`: leave both to ftd.
fn timings(default: Option<(u64, u64)>) -> Option<(u64, u64)> {
    let env = |var: &str| std::env::var(var).ok().and_then(|v| v.parse::<u64>().ok());
    match (
        env("FTVIRT_LAB_HEARTBEAT_MS"),
        env("FTVIRT_LAB_DETECTION_MS"),
    ) {
        (None, None) => default,
        (h, d) => Some((h.unwrap_or(100), d.unwrap_or(500))),
    }
}

/// ftd's configuration for `me` paired with `peer`: heartbeat 100 ms, detection
/// 500 ms (see [`timings`]), checkpoints every `checkpoint_ms`, the host's own
/// system bus, state and overlays under the host's directory, the set-up cache
/// trusted (the lab's QEMU and guest kernel are there), the lab's TLS files,
/// logs to stderr.
pub fn yaml(me: &Host, peer: &Host, checkpoint_ms: u64) -> String {
    yaml_with(me, peer, checkpoint_ms, timings(Some((100, 500))))
}

fn yaml_with(me: &Host, peer: &Host, checkpoint_ms: u64, timing: Option<(u64, u64)>) -> String {
    let timing = timing
        .map(|(h, d)| format!("  heartbeat-interval: {h}\n  detection-time: {d}\n"))
        .unwrap_or_default();
    format!(
        "host:\n  name: {me}\n  address: {ma}\npeers:\n  - name: {pe}\n    address: {pa}\n\
         defaults:\n  checkpoint-interval: {checkpoint_ms}\n{timing}\
         colo:\n  overlay-dir: {dir}/overlays\n  trusted-dirs: [/usr/bin, {cache}]\n{colo_tls}\
         bus:\n  connect: system\n  name: {BUS_NAME}\n\
         state-dir: {dir}/ftd-state\nrun-dir: {dir}/ftd-run\nlog:\n  output: stderr\n  level: info\n{tls}",
        me = me.name,
        ma = me.rep_ip,
        pe = peer.name,
        pa = peer.rep_ip,
        dir = me.dir.display(),
        // The lab's QEMU and guest kernel are built into the cache.
        cache = crate::artifacts::cache_dir().display(),
        tls = me.ftd_tls_yaml(),
        colo_tls = me.ftd_colo_tls_yaml(),
    )
}

/// [`yaml`] for `me` in `lab`, plus the `arbiter:` section of the lab's etcd
/// witness when it has one ([`LabConfig::with_etcd`](crate::LabConfig::with_etcd),
/// [`Lab::etcd_arbiter_yaml`]): `kind: etcd`, every member, `me`'s certificate,
/// and ftd's own heartbeat and detection for the witness (50 and 200 ms) unless
/// the environment sets the lab's ([`timings`]). Without the etcd witness it
/// is [`yaml`]'s text.
pub fn lab_yaml(lab: &Lab, me: &Host, peer: &Host, checkpoint_ms: u64) -> String {
    match lab.etcd_arbiter_yaml(me) {
        Some(arbiter) => yaml_with(me, peer, checkpoint_ms, timings(None)) + &arbiter,
        None => yaml(me, peer, checkpoint_ms),
    }
}

/// A client of host `name`'s ftd, on a fresh connection to that host's bus.
pub async fn client(lab: &Lab, name: &str) -> zbus::Result<FtdProxy<'static>> {
    let addr = lab
        .host(name)
        .map_err(|e| zbus::Error::Failure(e.to_string()))?
        .bus_address();
    let conn = zbus::connection::Builder::address(addr.as_str())?
        .build()
        .await?;
    FtdProxy::new(&conn).await
}

/// The last `n` lines of host `name`'s ftd log.
pub fn log_tail(lab: &Lab, name: &str, n: usize) -> String {
    let log = lab
        .host(name)
        .map(|h| std::fs::read_to_string(h.ftd_log()).unwrap_or_default())
        .unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The tails of the other hosts' ftd logs (a failure often starts on the peer).
fn other_logs(lab: &Lab, host: &str) -> String {
    lab.hosts()
        .iter()
        .filter(|h| h.name != host && h.ftd_log().exists())
        .map(|h| {
            format!(
                "\nhost {}'s ftd log:\n{}",
                h.name,
                log_tail(lab, &h.name, 25)
            )
        })
        .collect()
}

/// Host `host`'s status of `domain`, on a fresh connection.
pub async fn status(lab: &Lab, host: &str, domain: &str) -> zbus::Result<DomainStatus> {
    client(lab, host).await?.status(domain).await
}

/// Poll host `host`'s status of `domain` until `ready` says it is; panics after
/// `timeout` with `what`, the last status and the tail of the hosts' ftd logs.
pub async fn wait_status(
    lab: &Lab,
    host: &str,
    domain: &str,
    what: &str,
    timeout: Duration,
    ready: impl Fn(&DomainStatus) -> bool,
) -> DomainStatus {
    let r = wait_until_async(
        &format!("host {host}: {domain} {what}"),
        timeout,
        POLL,
        || async {
            match status(lab, host, domain).await {
                Ok(s) if ready(&s) => Look::Ready(s),
                Ok(s) => Look::Seen(format!("{s:?}")),
                Err(e) => Look::Seen(e.to_string()),
            }
        },
    )
    .await;
    r.unwrap_or_else(|e| {
        panic!(
            "{e}\nftd log:\n{}{}",
            log_tail(lab, host, 25),
            other_logs(lab, host)
        )
    })
}

/// Poll host `host`'s status of `domain` until it is `want`; panics after
/// `timeout` with the last status and the tail of the hosts' ftd logs.
pub async fn wait_state(
    lab: &Lab,
    host: &str,
    domain: &str,
    want: &str,
    timeout: Duration,
) -> DomainStatus {
    let what = format!("to reach {want}");
    wait_status(lab, host, domain, &what, timeout, |s| s.state == want).await
}

/// Wait until host `host` has counted at least `n` checkpoints of `domain` (ftd
/// counts them from its QEMU's STOP/RESUME events).
pub async fn wait_checkpoints(
    lab: &Lab,
    host: &str,
    domain: &str,
    n: u64,
    timeout: Duration,
) -> DomainStatus {
    let what = format!("to count {n} checkpoints");
    wait_status(lab, host, domain, &what, timeout, |s| s.checkpoints >= n).await
}
