//! Runs COLO plans ([`crate::colo::plan`]) against a domain through the libvirt
//! driver: QMP commands in order, waits by polling, tolerated errors logged. A
//! failure names the command and QEMU's reason; no command is waited on forever
//! (each has the driver's deadline, each wait its own timeout).

use crate::colo::plan::{JobState, Op};
use crate::host::Hypervisor;
use crate::libvirt::LibvirtError;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Deadline of one QMP command.
pub const QMP_DEADLINE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

/// A plan that stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Command(#[from] LibvirtError),
    #[error("{what} did not happen within {secs:.0}s{}", if last.is_empty() { String::new() } else { format!(" (last seen: {last})") })]
    Timeout {
        what: String,
        secs: f64,
        last: String,
    },
    #[error("block job {job} failed: {msg}")]
    Job { job: String, msg: String },
    /// The attempt this plan served was given up; no further command was sent.
    #[error("stopped: the protection attempt was given up")]
    Abandoned,
}

/// What a run did, for logs and figures.
#[derive(Debug, Default, Clone)]
pub struct RunReport {
    pub commands: usize,
    pub tolerated: Vec<String>,
    pub elapsed: Duration,
}

/// Run `plan` on `domain`.
pub async fn run(lv: &dyn Hypervisor, domain: &str, plan: &[Op]) -> Result<RunReport, RunError> {
    run_until(lv, domain, plan, &CancellationToken::new()).await
}

/// Run `plan` on `domain` until `stop` is cancelled: no command is sent after
/// that, and waits end at their next poll.
pub async fn run_until(
    lv: &dyn Hypervisor,
    domain: &str,
    plan: &[Op],
    stop: &CancellationToken,
) -> Result<RunReport, RunError> {
    let t0 = Instant::now();
    let mut rep = RunReport::default();
    for op in plan {
        if stop.is_cancelled() {
            return Err(RunError::Abandoned);
        }
        match op {
            Op::Qmp { cmd, tolerate } => {
                rep.commands += 1;
                match lv.qmp(domain, cmd, QMP_DEADLINE).await {
                    Ok(_) => {}
                    Err(e) if *tolerate => {
                        tracing::debug!(domain, error = %e, "tolerated");
                        rep.tolerated.push(e.to_string());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Op::WaitJob {
                job,
                until,
                timeout,
            } => wait_job(lv, domain, job, *until, *timeout, stop).await?,
            Op::WaitColoMode { mode, timeout } => {
                wait_colo(lv, domain, mode, *timeout, stop).await?
            }
            Op::WaitConnected {
                chardevs,
                peer,
                timeout,
            } => wait_connected(lv, domain, chardevs, peer, *timeout, stop).await?,
            Op::IoThread { id, add, tolerate } => {
                rep.commands += 1;
                match lv.iothread(domain, *id, *add).await {
                    Ok(()) => {}
                    Err(e) if *tolerate => {
                        tracing::debug!(domain, error = %e, "tolerated");
                        rep.tolerated.push(e.to_string());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Op::YankNbd => {
                rep.commands += 1;
                if let Err(e) = yank_nbd(lv, domain).await {
                    tracing::debug!(domain, error = %e, "tolerated");
                    rep.tolerated.push(e.to_string());
                }
            }
        }
    }
    rep.elapsed = t0.elapsed();
    Ok(rep)
}

/// Yank each block-node instance `query-yank` lists (NBD clients).
async fn yank_nbd(lv: &dyn Hypervisor, domain: &str) -> Result<(), LibvirtError> {
    let all = lv
        .qmp(domain, &json!({"execute": "query-yank"}), QMP_DEADLINE)
        .await?;
    for i in nbd_instances(&all) {
        let yank = json!({"execute": "yank", "arguments": {"instances": [i]}});
        if let Err(e) = lv.qmp(domain, &yank, QMP_DEADLINE).await {
            tracing::debug!(domain, error = %e, "yank tolerated");
        }
    }
    Ok(())
}

/// The block-node instances of a `query-yank` reply (never a chardev: libvirt's
/// own monitor is one).
pub fn nbd_instances(reply: &Value) -> Vec<Value> {
    reply
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["type"] == "block-node")
        .cloned()
        .collect()
}

/// What every wait shares: it gives up once `stop` is cancelled, and times out
/// after `timeout` with what it waited for and what it saw last; between two
/// looks it sleeps [`POLL`].
struct Waiting<'a> {
    t0: Instant,
    timeout: Duration,
    stop: &'a CancellationToken,
}

impl<'a> Waiting<'a> {
    fn new(timeout: Duration, stop: &'a CancellationToken) -> Waiting<'a> {
        Waiting {
            t0: Instant::now(),
            timeout,
            stop,
        }
    }

    /// Before each look: the attempt may have been given up.
    fn look(&self) -> Result<(), RunError> {
        if self.stop.is_cancelled() {
            return Err(RunError::Abandoned);
        }
        Ok(())
    }

    /// After a look that did not see it happen: time out, or sleep.
    async fn not_yet(&self, what: impl FnOnce() -> String, last: String) -> Result<(), RunError> {
        if self.t0.elapsed() > self.timeout {
            return Err(RunError::Timeout {
                what: what(),
                secs: self.timeout.as_secs_f64(),
                last,
            });
        }
        tokio::time::sleep(POLL).await;
        Ok(())
    }
}

async fn wait_job(
    lv: &dyn Hypervisor,
    domain: &str,
    job: &str,
    until: JobState,
    timeout: Duration,
    stop: &CancellationToken,
) -> Result<(), RunError> {
    let w = Waiting::new(timeout, stop);
    let mut last = String::new();
    loop {
        w.look()?;
        let jobs = lv
            .qmp(
                domain,
                &json!({"execute": "query-block-jobs"}),
                QMP_DEADLINE,
            )
            .await?;
        let this = jobs
            .as_array()
            .into_iter()
            .flatten()
            .find(|j| j["device"] == job);
        match (this, until) {
            (None, JobState::Gone) => return Ok(()),
            (None, JobState::Ready) => {
                return Err(RunError::Job {
                    job: job.into(),
                    msg: format!("it ended before it was ready (last seen: {last})"),
                })
            }
            (Some(j), JobState::Ready) if j["ready"] == json!(true) => return Ok(()),
            (Some(j), _) => {
                if let Some(err) = j.get("error").and_then(Value::as_str) {
                    return Err(RunError::Job {
                        job: job.into(),
                        msg: err.into(),
                    });
                }
                last = format!(
                    "{} of {} bytes, status {}",
                    j["offset"], j["len"], j["status"]
                );
            }
        }
        w.not_yet(
            || format!("block job {job} becoming {until:?}"),
            last.clone(),
        )
        .await?;
    }
}

/// Which of `chardevs` have no client from `peer` in a `query-chardev` reply,
/// with what QEMU shows for each (`tcp:A:9003,server=on <-> B:41234` once a
/// client got through TLS and the authz check; without `<->` none has).
pub fn unconnected(reply: &Value, chardevs: &[String], peer: &str) -> Vec<String> {
    let from = [format!("<-> {peer}:"), format!("<-> [{peer}]:")];
    chardevs
        .iter()
        .filter_map(|id| {
            let c = reply
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["label"] == id.as_str());
            let filename = c.and_then(|c| c["filename"].as_str()).unwrap_or("absent");
            (!from.iter().any(|f| filename.contains(f.as_str())))
                .then(|| format!("{id}: {filename}"))
        })
        .collect()
}

async fn wait_connected(
    lv: &dyn Hypervisor,
    domain: &str,
    chardevs: &[String],
    peer: &str,
    timeout: Duration,
    stop: &CancellationToken,
) -> Result<(), RunError> {
    let w = Waiting::new(timeout, stop);
    loop {
        w.look()?;
        let reply = lv
            .qmp(domain, &json!({"execute": "query-chardev"}), QMP_DEADLINE)
            .await?;
        let missing = unconnected(&reply, chardevs, peer);
        if missing.is_empty() {
            return Ok(());
        }
        let what = || {
            format!(
                "the secondary at {peer} connecting to the proxy's sockets ({}): another \
                 client may hold a port, or the secondary's certificate was refused \
                 (see this domain's QEMU log)",
                chardevs.join(", ")
            )
        };
        w.not_yet(what, missing.join("; ")).await?;
    }
}

async fn wait_colo(
    lv: &dyn Hypervisor,
    domain: &str,
    mode: &str,
    timeout: Duration,
    stop: &CancellationToken,
) -> Result<(), RunError> {
    let w = Waiting::new(timeout, stop);
    loop {
        w.look()?;
        let st = lv
            .qmp(
                domain,
                &json!({"execute": "query-colo-status"}),
                QMP_DEADLINE,
            )
            .await?;
        if st["mode"] == mode {
            return Ok(());
        }
        let mig = lv
            .qmp(domain, &json!({"execute": "query-migrate"}), QMP_DEADLINE)
            .await?;
        let status = mig["status"].as_str().unwrap_or("?").to_string();
        if status == "failed" || status == "cancelled" {
            return Err(RunError::Job {
                job: "migration".into(),
                msg: format!(
                    "{status}: {}",
                    mig["error-desc"].as_str().unwrap_or("no reason given")
                ),
            });
        }
        let last = format!("COLO mode {}, migration {status}", st["mode"]);
        w.not_yet(|| format!("COLO reaching mode {mode}"), last)
            .await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_given_up_plan_sends_nothing_more() {
        let stop = CancellationToken::new();
        stop.cancel();
        // No libvirtd behind this URI: any command sent would fail otherwise.
        let lv = crate::libvirt::Libvirt::new("test:///nonexistent", Duration::from_millis(100));
        let plan = crate::colo::plan::cut_peer();
        assert!(matches!(
            run_until(&lv, "g", &plan, &stop).await,
            Err(RunError::Abandoned)
        ));
    }

    #[test]
    fn a_proxy_socket_counts_only_with_the_peer_connected() {
        let ids = vec!["mirror0".to_string(), "compare1".to_string()];
        let reply = json!([
            {"label": "mirror0", "filename": "tcp:10.200.0.11:9003,server=on <-> 10.200.0.12:41234"},
            {"label": "compare1", "filename": "disconnected:tcp:10.200.0.11:9004,server=on"},
        ]);
        assert_eq!(
            unconnected(&reply, &ids, "10.200.0.12"),
            vec!["compare1: disconnected:tcp:10.200.0.11:9004,server=on"]
        );
        // Another host holding the socket is no connection of the peer's.
        let held = json!([
            {"label": "mirror0", "filename": "tcp:10.200.0.11:9003,server=on <-> 10.200.0.13:5000"},
            {"label": "compare1", "filename": "tcp:10.200.0.11:9004,server=on <-> 10.200.0.12:41235"},
        ]);
        assert_eq!(unconnected(&held, &ids, "10.200.0.12").len(), 1);
        assert_eq!(
            unconnected(&held, &ids, "10.200.0.1").len(),
            2,
            "a prefix is no match"
        );
        let v6 = json!([{"label": "mirror0", "filename": "tcp:[fd00::1]:9003,server=on <-> [fd00::2]:41234"}]);
        assert!(unconnected(&v6, &ids[..1], "fd00::2").is_empty());
        assert_eq!(
            unconnected(&json!([]), &ids[..1], "fd00::2"),
            vec!["mirror0: absent"]
        );
    }

    #[test]
    fn only_block_nodes_are_yanked() {
        let reply = json!([
            {"type": "chardev", "id": "charmonitor"},
            {"type": "block-node", "node-name": "#block412"},
            {"type": "migration"},
            {"type": "block-node", "node-name": "ftvirt-nbd"},
        ]);
        assert_eq!(
            nbd_instances(&reply),
            vec![
                json!({"type": "block-node", "node-name": "#block412"}),
                json!({"type": "block-node", "node-name": "ftvirt-nbd"})
            ]
        );
        assert!(nbd_instances(&json!(null)).is_empty());
    }
}
