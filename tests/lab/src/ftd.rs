//! The lab hosts' ftd as the tests drive it: the standard configuration of a
//! paired host, a D-Bus client of a host's ftd, waiting for a domain's state, and
//! the tail of a host's ftd log for failure messages. One copy, used by ftd's own
//! tests, the hook's and the demo.

use crate::{Host, Lab};
use ftd_proxy::{DomainStatus, FtdProxy, BUS_NAME};
use std::time::{Duration, Instant};

/// ftd's configuration for `me` paired with `peer`: heartbeat 100 ms, detection
/// 500 ms, checkpoints every `checkpoint_ms`, the host's own system bus, state and
/// overlays under the host's directory, the lab's TLS files, logs to stderr.
pub fn yaml(me: &Host, peer: &Host, checkpoint_ms: u64) -> String {
    format!(
        "host:\n  name: {me}\n  address: {ma}\npeers:\n  - name: {pe}\n    address: {pa}\n\
         defaults:\n  checkpoint-interval: {checkpoint_ms}\n  heartbeat-interval: 100\n  detection-time: 500\n\
         colo:\n  overlay-dir: {dir}/overlays\n\
         bus:\n  connect: system\n  name: {BUS_NAME}\n\
         state-dir: {dir}/ftd-state\nrun-dir: {dir}/ftd-run\nlog:\n  output: stderr\n  level: info\n{tls}",
        me = me.name,
        ma = me.rep_ip,
        pe = peer.name,
        pa = peer.rep_ip,
        dir = me.dir.display(),
        tls = me.ftd_tls_yaml(),
    )
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

/// Poll host `host`'s status of `domain` until it is `want`; panics after
/// `timeout` with the last status and the tail of the host's ftd log.
pub async fn wait_state(
    lab: &Lab,
    host: &str,
    domain: &str,
    want: &str,
    timeout: Duration,
) -> DomainStatus {
    let t0 = Instant::now();
    loop {
        let last = match client(lab, host).await {
            Ok(c) => c.status(domain).await,
            Err(e) => Err(e),
        };
        if let Ok(s) = &last {
            if s.state == want {
                return s.clone();
            }
        }
        assert!(
            t0.elapsed() < timeout,
            "host {host}: {domain} never reached {want} in {timeout:?}; last: {last:?}\nftd log:\n{}{}",
            log_tail(lab, host, 25),
            other_logs(lab, host)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
