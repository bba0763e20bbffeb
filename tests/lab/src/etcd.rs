//! The etcd witness of ftd's `arbiter: kind: etcd` in a lab
//! ([`crate::LabConfig::with_etcd`]): one or three etcd members (Debian's
//! `/usr/bin/etcd`) in the witness host's namespaces, each with its own client and
//! peer port on the witness's address ([`client_port`], [`peer_port`]) and its data
//! directory under `<lab dir>/w/etcd/`, mutual TLS for clients and peers alike
//! (`--client-cert-auth`, `--peer-client-cert-auth`, the lab's CA).
//!
//! Certificates come from ftd's own `certs` (what `ftd make-certs` makes) and the
//! lab's peer-link CA in `<lab dir>/tls/` ([`make_certs`]): each lab host gets its
//! usual `tls/<host>/{ca.crt,host.crt,host.key}`, which is both its ftd's peer-link
//! identity and its client identity towards etcd (and COLO's own
//! `colo-ca.crt`, `colo.crt`, `colo.key`, which etcd never sees); the witness gets
//! `tls/w/`, a certificate of the peer-link CA naming [`SERVER_NAME`] and the
//! witness's address, which every member serves clients and peers with and which
//! the lab itself uses as a client ([`Lab::etcd_get`]).
//!
//! A member runs in the foreground, its output in `w/log/etcd-m<i>.log`, and is
//! ready once it answers `etcdctl endpoint health` over TLS (a linearizable read:
//! the cluster has a leader). Stopping one is a SIGKILL (the witness's host or
//! process dies); starting it again reuses its data directory and ports. Tear-down
//! kills them with every other process of the lab's namespaces (the reaper), also
//! when the test process dies. [`ctl`] is the test's client (`etcdctl` inside a
//! host), and [`Lab::etcd_arbiter_yaml`] the section of ftd's configuration that
//! points a host's ftd at these members.

pub mod ctl;

use crate::error::{LabError, Result};
use crate::wait::{wait_until, Look};
use crate::{Host, Lab, WITNESS};
use ftd::certs::Ca;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

pub use ctl::EtcdCtl;

/// The name the members' certificate carries beside the witness's address: the
/// witness host's name (`arbiter.witness.server-name` in ftd's configuration).
pub const SERVER_NAME: &str = WITNESS;

/// Validity of the lab's certificates, in days (a lab lives minutes).
const DAYS: u32 = 30;

/// How long a member may take to answer after it is started (TCG guests may load
/// the machine).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Member `i`'s client port on the witness: 2379, 12379, 22379.
pub fn client_port(i: usize) -> u16 {
    2379 + 10_000 * i as u16
}

/// Member `i`'s peer port on the witness: 2380, 12380, 22380.
pub fn peer_port(i: usize) -> u16 {
    client_port(i) + 1
}

/// The lab's etcd members.
#[derive(Debug)]
pub struct Etcd {
    members: Vec<Member>,
    /// `--initial-cluster-token`: this lab's own, so no two labs' members mix.
    token: String,
    /// `<lab dir>/tls`.
    tls: PathBuf,
}

#[derive(Debug)]
struct Member {
    name: String,
    client: SocketAddr,
    peer: SocketAddr,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Etcd {
    fn new(n: usize, lab_id: &str, w: &Host, tls: PathBuf) -> Etcd {
        let members = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client: SocketAddr::from((w.rep_ip, client_port(i))),
                peer: SocketAddr::from((w.rep_ip, peer_port(i))),
                data: w.dir.join("etcd").join(format!("m{i}")),
                log: w.log_dir().join(format!("etcd-m{i}.log")),
                child: None,
            })
            .collect();
        Etcd {
            members,
            token: format!("ftl{lab_id}"),
            tls,
        }
    }

    /// Every member's client address.
    pub fn endpoints(&self) -> Vec<SocketAddr> {
        self.members.iter().map(|m| m.client).collect()
    }

    fn member(&self, i: usize) -> Result<&Member> {
        self.members.get(i).ok_or_else(|| {
            LabError::Usage(format!(
                "no etcd member {i}: this lab has members 0 to {}",
                self.members.len() - 1
            ))
        })
    }

    /// Start member `i` inside the witness (`new`: the cluster is being formed).
    fn spawn(&mut self, w: &Host, i: usize, new: bool) -> Result<()> {
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=https://{}", m.name, m.peer))
            .collect();
        let m = &self.members[i];
        let d = self.tls.join(WITNESS);
        let (cert, key, ca) = (
            d.join("host.crt").display().to_string(),
            d.join("host.key").display().to_string(),
            d.join("ca.crt").display().to_string(),
        );
        let args = [
            "etcd".to_string(),
            format!("--name={}", m.name),
            format!("--data-dir={}", m.data.display()),
            format!("--listen-client-urls=https://{}", m.client),
            format!("--advertise-client-urls=https://{}", m.client),
            format!("--listen-peer-urls=https://{}", m.peer),
            format!("--initial-advertise-peer-urls=https://{}", m.peer),
            format!("--initial-cluster={}", initial.join(",")),
            format!(
                "--initial-cluster-state={}",
                if new { "new" } else { "existing" }
            ),
            format!("--initial-cluster-token={}", self.token),
            format!("--cert-file={cert}"),
            format!("--key-file={key}"),
            format!("--trusted-ca-file={ca}"),
            "--client-cert-auth".into(),
            format!("--peer-cert-file={cert}"),
            format!("--peer-key-file={key}"),
            format!("--peer-trusted-ca-file={ca}"),
            "--peer-client-cert-auth".into(),
            "--logger=zap".into(),
            "--log-outputs=stderr".into(),
            "--log-level=warn".into(),
        ];
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = w.spawn_to_log(&argv, &m.log)?;
        self.members[i].child = Some(child);
        Ok(())
    }

    /// Wait until member `i` answers a linearizable read over TLS; fails at once if
    /// it exits, with the end of its log.
    fn wait_ready(&mut self, w: &Host, i: usize) -> Result<Duration> {
        let t0 = Instant::now();
        let ctl = EtcdCtl::new(w, self.endpoints(), &self.tls).member(i)?;
        let name = self.members[i].name.clone();
        let log = self.members[i].log.clone();
        let members = &mut self.members;
        wait_until(
            &format!("etcd member {name} on the witness to answer over TLS"),
            READY_TIMEOUT,
            Duration::from_millis(100),
            || {
                let exited = members[i].child.as_mut().and_then(|c| c.try_wait().ok()?);
                if let Some(st) = exited {
                    return Look::Failed(format!(
                        "it exited ({st}); the end of {}:\n{}",
                        log.display(),
                        tail(&log, 20)
                    ));
                }
                ctl.run(&["endpoint", "health"]).map(drop).into()
            },
        )?;
        Ok(t0.elapsed())
    }

    /// SIGKILL member `i` and reap it (nothing if it is not running).
    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Reap the members after the lab's tear-down killed them.
    pub(crate) fn reap(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                if c.try_wait().ok().flatten().is_none() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
    }
}

impl Lab {
    /// Make the certificates and start `n` members in the witness; returns once
    /// every member answers.
    pub(crate) fn start_etcd(&mut self, n: usize) -> Result<Duration> {
        let t0 = Instant::now();
        let w = self
            .witness
            .as_ref()
            .ok_or_else(|| LabError::Usage("the etcd witness needs the witness host".into()))?;
        let tls = self.dir.join("tls");
        // As `ftd make-certs` is told: NAME=ADDR (COLO's TLS checks the address).
        let names: Vec<String> = self
            .hosts
            .iter()
            .map(|h| format!("{}={}", h.name, h.rep_ip))
            .collect();
        make_certs(&tls, &names, w)?;
        let mut etcd = Etcd::new(n, &self.id, w, tls);
        for i in 0..n {
            etcd.spawn(w, i, true)?;
        }
        // Stored before the wait, so that a failed start still reaps them.
        let etcd = self.etcd.insert(etcd);
        for i in 0..n {
            etcd.wait_ready(w, i)?;
        }
        Ok(t0.elapsed())
    }

    /// Does this lab run the etcd witness?
    pub fn has_etcd(&self) -> bool {
        self.etcd.is_some()
    }

    fn etcd(&self) -> Result<&Etcd> {
        self.etcd.as_ref().ok_or_else(|| {
            LabError::Usage("this lab has no etcd witness: use LabConfig::with_etcd".into())
        })
    }

    /// The etcd members' client addresses (empty without the etcd witness).
    pub fn etcd_endpoints(&self) -> Vec<SocketAddr> {
        self.etcd.as_ref().map(Etcd::endpoints).unwrap_or_default()
    }

    /// Stop etcd member `i` at once (SIGKILL), as if its host died; its data
    /// directory stays for [`Lab::etcd_start_member`].
    pub fn etcd_stop_member(&mut self, i: usize) -> Result<()> {
        let etcd = self.etcd.as_mut().ok_or_else(|| {
            LabError::Usage("this lab has no etcd witness: use LabConfig::with_etcd".into())
        })?;
        etcd.member(i)?;
        etcd.kill(i);
        Ok(())
    }

    /// Start etcd member `i` again on its data directory and ports; returns once
    /// it answers (with three members, once it has a leader again).
    pub fn etcd_start_member(&mut self, i: usize) -> Result<Duration> {
        let w = self
            .witness
            .as_ref()
            .ok_or_else(|| LabError::Usage("this lab has no witness host".into()))?;
        let etcd = self.etcd.as_mut().ok_or_else(|| {
            LabError::Usage("this lab has no etcd witness: use LabConfig::with_etcd".into())
        })?;
        etcd.member(i)?;
        etcd.kill(i);
        etcd.spawn(w, i, false)?;
        etcd.wait_ready(w, i)
    }

    /// An `etcdctl` inside host `host` (a lab host or the witness), presenting that
    /// host's certificate to every member.
    pub fn etcdctl(&self, host: &str) -> Result<EtcdCtl<'_>> {
        let etcd = self.etcd()?;
        Ok(EtcdCtl::new(
            self.any_host(host)?,
            etcd.endpoints(),
            &etcd.tls,
        ))
    }

    /// The value of `key` as text (`None`: no such key), read by the witness host
    /// itself (so a cut or dead lab host does not matter).
    pub fn etcd_get(&self, key: &str) -> Result<Option<String>> {
        self.etcdctl(WITNESS)?.get(key)
    }

    /// The index of the members' current leader, as they report it
    /// (`etcdctl endpoint status` from the witness host).
    pub fn etcd_leader(&self) -> Result<usize> {
        let out = self
            .etcdctl(WITNESS)?
            .run(&["endpoint", "status", "--write-out=json"])?;
        let bad = |why: &str| LabError::Usage(format!("etcd's endpoint status {why}: {out}"));
        let v: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| bad(&format!("is not JSON ({e})")))?;
        let eps = self.etcd_endpoints();
        v.as_array()
            .into_iter()
            .flatten()
            .find_map(|e| {
                let s = &e["Status"];
                let me = s["header"]["member_id"].as_u64()?;
                let url = e["Endpoint"].as_str()?;
                if s["leader"].as_u64()? != me {
                    return None;
                }
                eps.iter().position(|a| url == format!("https://{a}"))
            })
            .ok_or_else(|| bad("names no member that leads"))
    }

    /// The last `n` lines of member `i`'s log.
    pub fn etcd_log_tail(&self, i: usize, n: usize) -> Result<String> {
        Ok(tail(&self.etcd()?.member(i)?.log, n))
    }

    /// The `arbiter:` section of ftd's configuration for host `me` with this lab's
    /// etcd witness (`kind: etcd`, every member, [`SERVER_NAME`], `me`'s TLS files);
    /// `None` without it. See [`crate::ftd::lab_yaml`].
    pub fn etcd_arbiter_yaml(&self, me: &Host) -> Option<String> {
        let etcd = self.etcd.as_ref()?;
        Some(arbiter_yaml(&etcd.endpoints(), &me.tls_dir()))
    }
}

/// The `arbiter:` section for the members at `endpoints` and a host's TLS files in
/// `tls_dir`.
fn arbiter_yaml(endpoints: &[SocketAddr], tls_dir: &Path) -> String {
    let eps: Vec<String> = endpoints.iter().map(|a| a.to_string()).collect();
    format!(
        "arbiter:\n  kind: etcd\n  witness:\n    endpoints: [{eps}]\n    \
         server-name: {SERVER_NAME}\n    tls:\n      ca: {ca}\n      cert: {cert}\n      \
         key: {key}\n",
        eps = eps.join(", "),
        ca = tls_dir.join("ca.crt").display(),
        cert = tls_dir.join("host.crt").display(),
        key = tls_dir.join("host.key").display(),
    )
}

/// The lab's CA and TLS files in `tls` (see the module doc): every host in
/// `hosts` as `ftd make-certs` makes them, and the witness `w`'s certificate for
/// [`SERVER_NAME`] and its address.
pub fn make_certs(tls: &Path, hosts: &[String], w: &Host) -> Result<()> {
    ftd::certs::make(tls, hosts, DAYS, false).map_err(LabError::Certs)?;
    let ca = Ca::from_pem(&read(&tls.join("ca.crt"))?, &read(&tls.join("ca.key"))?)
        .map_err(LabError::Certs)?;
    let ip = w.rep_ip.to_string();
    let c = ca
        .cert_for(&w.name, &[SERVER_NAME, &ip], DAYS)
        .map_err(LabError::Certs)?;
    let d = tls.join(&w.name);
    std::fs::create_dir_all(&d).map_err(|e| LabError::io("creating directory", &d, e))?;
    write(&d.join("ca.crt"), ca.cert_pem(), 0o644)?;
    write(&d.join("host.crt"), &c.cert_pem, 0o644)?;
    write(&d.join("host.key"), &c.key_pem, 0o600)
}

fn read(p: &Path) -> Result<String> {
    std::fs::read_to_string(p).map_err(|e| LabError::io("reading", p, e))
}

/// Create `p` with `mode` (a key is never readable by others) and `text`.
fn write(p: &Path, text: &str, mode: u32) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(p)
        .map_err(|e| LabError::io("creating", p, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| LabError::io("writing", p, e))
}

/// The last `n` lines of a log file.
fn tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NetNs;
    use ftd::config::{ArbiterKind, Config, Endpoint};
    use std::net::Ipv4Addr;

    fn host(name: &str, ip: u8) -> Host {
        let ns = NetNs {
            name: format!("ftl-000000-{name}"),
        };
        let dir = PathBuf::from(format!("/var/tmp/ftvirt-lab/000000/{name}"));
        let ip = Ipv4Addr::new(10, 200, 0, ip);
        Host::new(name, ns.clone(), dir, ip, ns, vec![], true)
    }

    #[test]
    fn ftd_reads_the_arbiter_section_as_the_lab_means_it() {
        let (a, b) = (host("a", 11), host("b", 12));
        let eps: Vec<SocketAddr> = (0..3)
            .map(|i| SocketAddr::from(([10, 200, 0, 10], client_port(i))))
            .collect();
        let text = crate::ftd::yaml(&a, &b, 2000) + &arbiter_yaml(&eps, &a.tls_dir());
        let cfg = Config::from_str(&text, "lab").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(cfg.arbiter.kind, ArbiterKind::Etcd);
        let w = &cfg.arbiter.witness;
        let got: Vec<SocketAddr> = w.endpoints.iter().map(|Endpoint(a)| *a).collect();
        assert_eq!(got, eps);
        assert_eq!(w.server_name.as_deref(), Some(SERVER_NAME));
        let d = Path::new("/var/tmp/ftvirt-lab/000000/tls/a");
        assert_eq!(w.tls.ca.as_deref(), Some(d.join("ca.crt").as_path()));
        assert_eq!(w.tls.cert.as_deref(), Some(d.join("host.crt").as_path()));
        assert_eq!(w.tls.key.as_deref(), Some(d.join("host.key").as_path()));
        // COLO's TLS uses the host's own COLO files, not the peer link's.
        assert_eq!(cfg.peer_link.tls.cert, d.join("host.crt"));
        assert!(cfg.colo.tls);
        assert_eq!(cfg.colo.tls_ca, d.join("colo-ca.crt"));
        assert_eq!(cfg.colo.tls_cert, d.join("colo.crt"));
        assert_eq!(cfg.colo.tls_key, d.join("colo.key"));
    }
}
