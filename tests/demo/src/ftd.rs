//! Each lab host's own ftd: where its binary is, its configuration, starting it on a
//! host's own system bus, and driving it over D-Bus with [`ftd::api::FtdProxy`].
//!
//! The demo's flow is synchronous (the lab's calls block); D-Bus calls run on a
//! small tokio runtime owned here, each with a time limit, each on a fresh
//! connection to the host's bus (a killed host's bus is gone, a restarted host has
//! a new one).

use crate::report::broken;
use anyhow::{Context, Result};
use ftd::api::{DomainStatus, FtdProxy};
use ftd::config::DEFAULT_BUS_NAME;
use ftvirt_lab::{wait_until, Host, Lab, Look};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long one D-Bus call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often states are polled (also the resolution of the measured times).
const POLL: Duration = Duration::from_millis(100);

/// Checkpoint interval, heartbeat interval and detection time of the demo (ms).
pub const CHECKPOINT_MS: u64 = 2000;

/// The ftd binary: `$FTVIRT_FTD_BIN`, or `ftd` next to this program.
pub fn binary() -> Result<PathBuf> {
    let (path, origin) = match std::env::var_os("FTVIRT_FTD_BIN") {
        Some(p) => (PathBuf::from(p), "FTVIRT_FTD_BIN"),
        None => (
            std::env::current_exe()
                .context("finding this program's own path")?
                .with_file_name("ftd"),
            "next to this program",
        ),
    };
    if !path.is_file() {
        anyhow::bail!(
            "no ftd binary at {} ({origin}): build it with `cargo build --release -p ftd` \
             (`cargo xtask demo` does), or set FTVIRT_FTD_BIN to its path",
            path.display()
        );
    }
    Ok(path)
}

/// ftd's configuration for host `me`, paired with `peer`: the lab's standard one
/// with the demo's checkpoint interval and the lab's etcd witness as the arbiter
/// (and so ftd's heartbeat and detection for the witness, 50 and 200 ms).
pub fn yaml(lab: &Lab, me: &Host, peer: &Host) -> String {
    ftvirt_lab::ftd::lab_yaml(lab, me, peer, CHECKPOINT_MS)
}

/// The lab the demo and the benchmark run on: hosts a and b, and the witness
/// host w with one etcd member (ftd's `arbiter: kind: etcd`).
pub fn lab_config() -> ftvirt_lab::LabConfig {
    ftvirt_lab::LabConfig::hosts(&["a", "b"]).with_etcd(1)
}

/// One line saying which arbiter the hosts' ftds use.
pub fn arbiter_line(lab: &Lab) -> String {
    let eps = lab.etcd_endpoints();
    if eps.is_empty() {
        "arbiter: none (no witness in this lab): a cut link would make both hosts serve".into()
    } else {
        let eps: Vec<String> = eps.iter().map(|e| e.to_string()).collect();
        format!(
            "arbiter: the etcd witness on host w ({}): every go-live is claimed on it first",
            eps.join(", ")
        )
    }
}

/// Start host `name`'s system bus and its ftd (paired with `peer`).
pub fn start(lab: &mut Lab, bin: &std::path::Path, name: &str, peer: &str) -> Result<()> {
    let cfg = yaml(lab, lab.host(name)?, lab.host(peer)?);
    let h = lab.host_mut(name)?;
    h.start_dbus()
        .with_context(|| format!("starting the system bus of host {name}"))?;
    h.start_ftd(bin, &cfg, DEFAULT_BUS_NAME)
        .with_context(|| format!("starting ftd on host {name}"))?;
    Ok(())
}

/// D-Bus client of the lab hosts' ftds.
#[derive(Debug)]
pub struct Ftds {
    rt: tokio::runtime::Runtime,
}

impl Ftds {
    pub fn new() -> Result<Ftds> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the D-Bus client runtime")?;
        Ok(Ftds { rt })
    }

    /// Run one D-Bus exchange with a time limit.
    fn block<T>(
        &self,
        host: &str,
        what: &str,
        f: impl std::future::Future<Output = zbus::Result<T>>,
    ) -> Result<T> {
        match self
            .rt
            .block_on(async { tokio::time::timeout(CALL_TIMEOUT, f).await })
        {
            Ok(r) => r.with_context(|| format!("{what} on host {host}'s ftd")),
            Err(_) => Err(anyhow::anyhow!(
                "{what} on host {host}'s ftd: no answer within {CALL_TIMEOUT:?}"
            )),
        }
    }

    pub fn enable(&self, lab: &Lab, host: &str, domain: &str) -> Result<String> {
        let addr = lab.host(host)?.bus_address();
        self.block(host, "Enable", async move {
            proxy(&addr)
                .await?
                .enable(domain, ftd::api::no_options())
                .await
        })
    }

    pub fn disable(&self, lab: &Lab, host: &str, domain: &str) -> Result<String> {
        let addr = lab.host(host)?.bus_address();
        self.block(host, "Disable", async move {
            proxy(&addr).await?.disable(domain).await
        })
    }

    pub fn failover(&self, lab: &Lab, host: &str, domain: &str) -> Result<String> {
        let addr = lab.host(host)?.bus_address();
        self.block(host, "Failover", async move {
            proxy(&addr).await?.failover(domain).await
        })
    }

    pub fn status(&self, lab: &Lab, host: &str, domain: &str) -> Result<DomainStatus> {
        let addr = lab.host(host)?.bus_address();
        self.block(host, "Status", async move {
            proxy(&addr).await?.status(domain).await
        })
    }

    /// Poll until every `(host, state)` of `domain` holds at once; see
    /// [`Ftds::wait_all`].
    pub fn wait(
        &self,
        lab: &Lab,
        domain: &str,
        want: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<(Duration, Vec<DomainStatus>)> {
        let want: Vec<(&str, &str, &[&str])> = want
            .iter()
            .map(|(host, state)| (*host, domain, std::slice::from_ref(state)))
            .collect();
        let t0 = Instant::now();
        let sts = self.wait_all(lab, &want, timeout)?;
        Ok((t0.elapsed(), sts))
    }

    /// Poll until every `(host, domain, any of states)` holds at once; returns
    /// the statuses. On time-out: a `timeout:<host>_<state>` failure, with the
    /// host's last status and ftd log tail on stderr.
    pub fn wait_all(
        &self,
        lab: &Lab,
        want: &[(&str, &str, &[&str])],
        timeout: Duration,
    ) -> Result<Vec<DomainStatus>> {
        let mut missing = None;
        let r = wait_until("the domains' states", timeout, POLL, || {
            let mut got = Vec::new();
            for &(host, dom, states) in want {
                match self.status(lab, host, dom) {
                    Ok(s) if states.contains(&s.state.as_str()) => got.push(s),
                    other => {
                        let last = match other {
                            Ok(s) => format!("{s:?}"),
                            Err(e) => format!("{e:#}"),
                        };
                        missing = Some((host, dom, states, last.clone()));
                        return Look::Seen(last);
                    }
                }
            }
            Look::Ready(got)
        });
        let e = match r {
            Ok(sts) => return Ok(sts),
            Err(e) => e,
        };
        let Some((host, dom, states, last)) = missing else {
            return Err(e.into());
        };
        eprintln!("[ftd] host {host}: last status of {dom}: {last}");
        eprintln!("[ftd] host {host}: tail of its ftd log:");
        eprintln!("{}", ftvirt_lab::ftd::log_tail(lab, host, 25));
        Err(broken(
            format!("timeout:{host}_{}", states[0]),
            format!(
                "host {host}: {dom} did not reach {} within {timeout:?}; last: {last}",
                states.join("|")
            ),
        ))
    }

    /// Wait until host `host` has counted `n` checkpoints of `domain` (the
    /// client's connection then lives through them); returns its status.
    pub fn wait_checkpoints(
        &self,
        lab: &Lab,
        host: &str,
        domain: &str,
        n: u64,
        timeout: Duration,
    ) -> Result<DomainStatus> {
        let what = format!("host {host} to count {n} checkpoints of {domain}");
        let r = wait_until(&what, timeout, POLL, || {
            match self.status(lab, host, domain) {
                Ok(s) if s.checkpoints >= n => Look::Ready(s),
                Ok(s) => Look::Seen(format!("{s:?}")),
                Err(e) => Look::Seen(format!("{e:#}")),
            }
        });
        r.map_err(|e| broken("no_checkpoints", e.to_string()))
    }
}

/// A client of the ftd on the bus at `addr`, on a connection of its own.
async fn proxy(addr: &str) -> zbus::Result<FtdProxy<'static>> {
    let conn = zbus::connection::Builder::address(addr)?.build().await?;
    FtdProxy::new(&conn).await
}
