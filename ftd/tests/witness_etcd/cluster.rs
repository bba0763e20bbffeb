//! A real etcd (Debian's `etcd-server`) for the witness tests: one member or a
//! cluster of several, each a process on loopback with its own free ports and data
//! directory, mutual TLS everywhere (clients and peers) with certificates made by
//! ftd's own `certs` module. Started with a readiness wait (every member answers a
//! read), killed when dropped.

use ftd::certs::Ca;
use ftd::witness::etcd::{EtcdWitness, Pem, Settings};
use ftd::witness::{Keys, Witness};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// What a client of the witness uses (`server_name`: the name the members'
/// certificates carry, beside 127.0.0.1).
pub const SERVER_NAME: &str = "witness";

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// PEM files of one identity.
#[derive(Debug, Clone)]
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug)]
struct Member {
    name: String,
    client: SocketAddr,
    peer: SocketAddr,
    child: Option<Child>,
}

/// An etcd cluster on loopback.
#[derive(Debug)]
pub struct Cluster {
    dir: tempfile::TempDir,
    pub ca: PathBuf,
    server: Files,
    members: Vec<Member>,
}

impl Cluster {
    /// `n` members, started and ready.
    pub async fn start(n: usize) -> Cluster {
        assert!(
            Command::new("etcd").arg("--version").output().is_ok(),
            "etcd is not installed: run `cargo xtask setup` (Debian's etcd-server)"
        );
        let dir = tempfile::Builder::new()
            .prefix("ftd-witness-")
            .tempdir()
            .unwrap();
        let ca = Ca::new(1).unwrap();
        let ca_path = dir.path().join("ca.crt");
        std::fs::write(&ca_path, ca.cert_pem()).unwrap();
        // One certificate for every member: it serves clients and peers alike.
        let server = write(
            dir.path(),
            "server",
            &ca.cert_for(SERVER_NAME, &[SERVER_NAME, "127.0.0.1"], 1)
                .unwrap(),
        );
        for host in ["hosta", "hostb"] {
            write(dir.path(), host, &ca.host(host, &[], 1).unwrap());
        }
        let stranger = Ca::new(1).unwrap().host("hosta", &[], 1).unwrap();
        write(dir.path(), "stranger", &stranger);
        let members = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client: SocketAddr::from(([127, 0, 0, 1], free_port())),
                peer: SocketAddr::from(([127, 0, 0, 1], free_port())),
                child: None,
            })
            .collect();
        let mut c = Cluster {
            dir,
            ca: ca_path,
            server,
            members,
        };
        for i in 0..n {
            c.spawn(i, true);
        }
        for i in 0..n {
            c.wait_ready(i).await;
        }
        c
    }

    fn spawn(&mut self, i: usize, new: bool) {
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=https://{}", m.name, m.peer))
            .collect();
        let m = &self.members[i];
        let data = self.dir.path().join(format!("{}.etcd", m.name));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .unwrap();
        let (cert, key) = (self.server.cert.display(), self.server.key.display());
        let ca = self.ca.display();
        let args = [
            format!("--name={}", m.name),
            format!("--data-dir={}", data.display()),
            format!("--listen-client-urls=https://{}", m.client),
            format!("--advertise-client-urls=https://{}", m.client),
            format!("--listen-peer-urls=https://{}", m.peer),
            format!("--initial-advertise-peer-urls=https://{}", m.peer),
            format!("--initial-cluster={}", initial.join(",")),
            format!(
                "--initial-cluster-state={}",
                if new { "new" } else { "existing" }
            ),
            "--initial-cluster-token=ftd-witness-test".into(),
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
        let child = Command::new("etcd")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting etcd");
        self.members[i].child = Some(child);
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.log", self.members[i].name))
    }

    /// The last lines of member `i`'s log.
    pub fn log_tail(&self, i: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Wait until member `i` answers a read on its own (20 s at most).
    async fn wait_ready(&mut self, i: usize) {
        let t0 = Instant::now();
        let w = self.client("hosta", &[i], Duration::from_millis(500)).await;
        loop {
            let exited = self.members[i]
                .child
                .as_mut()
                .and_then(|c| c.try_wait().unwrap());
            if let Some(st) = exited {
                panic!("etcd {i} exited ({st}):\n{}", self.log_tail(i));
            }
            match w.read("ready-probe").await {
                Ok(_) => return,
                Err(e) if t0.elapsed() > Duration::from_secs(20) => {
                    panic!("etcd {i} did not answer in 20 s: {e}\n{}", self.log_tail(i))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Kill member `i` (SIGKILL) and reap it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start member `i` again on its data directory and ports, and wait for it.
    pub async fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i, false);
        self.wait_ready(i).await;
    }

    pub fn client_addr(&self, i: usize) -> SocketAddr {
        self.members[i].client
    }

    /// Identity files: `hosta`, `hostb` (this cluster's CA), `stranger` (another CA).
    pub fn files(&self, who: &str) -> Files {
        Files {
            cert: self.dir.path().join(format!("{who}.crt")),
            key: self.dir.path().join(format!("{who}.key")),
        }
    }

    /// Settings for a client presenting `who`'s certificate to the `members`.
    pub fn settings(&self, who: &str, members: &[usize], timeout: Duration) -> Settings {
        let f = self.files(who);
        Settings {
            endpoints: members.iter().map(|&i| self.members[i].client).collect(),
            server_name: Some(SERVER_NAME.into()),
            tls: Pem::load(&self.ca, &f.cert, &f.key).unwrap(),
            keys: Keys::default(),
            timeout,
        }
    }

    /// A witness client presenting `who`'s certificate to the `members`.
    pub async fn client(&self, who: &str, members: &[usize], timeout: Duration) -> EtcdWitness {
        EtcdWitness::connect(self.settings(who, members, timeout))
            .await
            .unwrap()
    }

    /// Every member's index.
    pub fn all(&self) -> Vec<usize> {
        (0..self.members.len()).collect()
    }

    /// etcdctl against member `i`, as a person debugging would run it.
    pub fn etcdctl(&self, i: usize, args: &[&str]) -> Output {
        let f = self.files("hosta");
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=https://{}", self.members[i].client))
            .arg(format!("--cacert={}", self.ca.display()))
            .arg(format!("--cert={}", f.cert.display()))
            .arg(format!("--key={}", f.key.display()))
            .args(args)
            .output()
            .expect("running etcdctl (Debian's etcd-client)");
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The index of the current leader, as member `ask` sees it.
    pub fn leader(&self, ask: usize) -> usize {
        let out = self.etcdctl(ask, &["endpoint", "status", "--write-out=json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let leader = v[0]["Status"]["leader"].as_u64().expect("a leader id");
        let list = self.etcdctl(ask, &["member", "list", "--write-out=json"]);
        let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
        let name = v["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["ID"].as_u64() == Some(leader))
            .and_then(|m| m["name"].as_str())
            .expect("the leader is a member")
            .to_string();
        self.members.iter().position(|m| m.name == name).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

fn write(dir: &Path, name: &str, c: &ftd::certs::HostCert) -> Files {
    let f = Files {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&f.cert, &c.cert_pem).unwrap();
    std::fs::write(&f.key, &c.key_pem).unwrap();
    f
}

/// Run `f` until it returns `Some` or `limit` passes; how long it took.
pub async fn within<T, F, Fut>(limit: Duration, mut f: F) -> Option<(T, Duration)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Some(v) = f().await {
            return Some((v, t0.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
