//! A simulated host: a network namespace plus a mount (and UTS) namespace in which
//! the host's own virtlogd and libvirtd run with private state.
//!
//! Layout of a host directory (`<lab dir>/<host>/`), bind-mounted inside the host:
//!
//! | host dir | mounted on          | why                                            |
//! |----------|---------------------|------------------------------------------------|
//! | `run`    | `/run/libvirt`      | sockets, pid files, runtime domain state       |
//! | `lib`    | `/var/lib/libvirt`  | domain working dirs, QEMU monitor sockets      |
//! | `log`    | `/var/log/libvirt`  | libvirtd and per-domain QEMU logs              |
//! | `cache`  | `/var/cache/libvirt`| capability cache                               |
//! | `etc`    | `/etc/libvirt`      | own `qemu.conf`, persistent domains, own hooks |
//! | `dbus`   | `/run/dbus`         | the host's own system bus socket ([`bus`])     |
//! | `journal`| `/run/systemd/journal` | the host's own journald sockets (if started) |
//! | `journal-log` | `/run/log/journal` | that journald's files (`journalctl -D`)     |
//! | `etc-ftvirt` | `/etc/ftvirt`   | ftd's configuration, where the libvirt hook reads it |
//! | `corosync/corosync.pid` | `/run/corosync.pid` | corosync's lock file ([`cluster`]) |
//! | `images` | (not mounted)       | guest disks; same absolute path inside and out |
//!
//! The host's journald is started by `journald.rs`, its ftd (and its TLS files) by
//! `ftd.rs`.
//!
//! A host's system bus ([`bus`]) has the standard system bus policy plus ftd's
//! real one; a real polkitd can run on it ([`polkit`], which mounts its own
//! actions and rules directories when it starts).
//!
//! ftd's TLS files are in `<lab dir>/tls/<host>/` (same path inside and out): made
//! by [`Host::start_ftd`] with ftd's `make-certs` from the lab's CAs (`tls/ca.*`,
//! `tls/colo-ca.*`) the first time; [`Host::ftd_tls_yaml`] (the peer link's) and
//! [`Host::ftd_colo_tls_yaml`] (COLO's, under `colo:`) are the sections using them.
//!
//! The mount namespace is kept alive by a *holder* process (`sleep infinity`);
//! everything else is started with `nsenter -t <holder> -m -u -n`. libvirtd is
//! reachable from outside through its socket in `run/`, never over the network.

use crate::caps_cache;
use crate::cmd;
use crate::error::{LabError, Result};
use crate::netns::NetNs;
use crate::wait::{wait_until, Look};

pub mod bus;
pub mod cluster;
mod ftd;
pub use ftd::{sandbox_binary, unit_file};
mod journald;
pub mod polkit;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// (host subdirectory, mount point inside the host)
const MOUNTS: &[(&str, &str)] = &[
    ("run", "/run/libvirt"),
    ("lib", "/var/lib/libvirt"),
    ("log", "/var/log/libvirt"),
    ("cache", "/var/cache/libvirt"),
    ("etc", "/etc/libvirt"),
    ("dbus", "/run/dbus"),
    ("journal", "/run/systemd/journal"),
    ("journal-log", "/run/log/journal"),
    // ftd's configuration where the libvirt hook looks for it (`start_ftd`
    // writes it there too).
    ("etc-ftvirt", "/etc/ftvirt"),
];

/// Our `qemu.conf` for lab hosts: libvirt's normal posture, QEMU as libvirt's
/// unprivileged user with the DAC driver labelling what QEMU opens
/// (`dynamic_ownership`; owners remembered, libvirt's default) and the host's
/// own security driver (`security_driver` unset: AppArmor or SELinux where the
/// machine runs one, else none; DAC is always stacked). ftd gives the files it
/// makes behind libvirt's back to the same user ([`crate::posture`] checks).
/// No per-VM namespaces or cgroups: two libvirtds on one machine would fight
/// over the same cgroup names, and there is no systemd to delegate them.
const QEMU_CONF: &str = r#"# written by ftvirt-lab
user = "libvirt-qemu"
group = "libvirt-qemu"
dynamic_ownership = 1
namespaces = [ ]
cgroup_controllers = [ ]
stdio_handler = "logd"
"#;

const LIBVIRTD_CONF_EXTRA: &str = r#"
# appended by ftvirt-lab: local root-only socket, log to this host's log dir
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"#;

/// corosync's fixed pid file (see [`cluster`]).
const COROSYNC_PID: &str = "/run/corosync.pid";

/// One simulated host.
#[derive(Debug)]
pub struct Host {
    pub name: String,
    pub ns: NetNs,
    pub dir: PathBuf,
    /// Address on the replication/management network.
    pub rep_ip: Ipv4Addr,
    /// The switch namespace and this host's ports on it (for kill/restart).
    switch: NetNs,
    ports: Vec<String>,
    /// Runs virtlogd and libvirtd (false for the witness, a host that only runs
    /// the arbiter's witness daemon).
    libvirt: bool,
    holder: Option<Child>,
    ftd: Option<Child>,
    polkit: Option<Child>,
    /// Foreground daemons started with [`Host::spawn_logged`] (corosync, ...).
    daemons: Vec<Child>,
}

impl Host {
    pub(crate) fn new(
        name: &str,
        ns: NetNs,
        dir: PathBuf,
        rep_ip: Ipv4Addr,
        switch: NetNs,
        ports: Vec<String>,
        libvirt: bool,
    ) -> Host {
        Host {
            name: name.to_string(),
            ns,
            dir,
            rep_ip,
            switch,
            ports,
            libvirt,
            holder: None,
            ftd: None,
            polkit: None,
            daemons: Vec::new(),
        }
    }

    /// `qemu:///system` of this host's libvirtd, through its private socket.
    pub fn uri(&self) -> String {
        format!(
            "qemu:///system?socket={}",
            self.dir.join("run/libvirt-sock").display()
        )
    }

    /// Directory for this host's guest disks and serial logs.
    pub fn images(&self) -> PathBuf {
        self.dir.join("images")
    }

    /// The host's libvirt log directory (libvirtd.log, `<domain>.log`).
    pub fn log_dir(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// PID of the process holding the host's mount namespace.
    pub fn holder_pid(&self) -> Option<u32> {
        self.holder.as_ref().map(|c| c.id())
    }

    /// PID of this host's ftd, while it runs.
    pub fn ftd_pid(&self) -> Option<u32> {
        self.ftd.as_ref().map(|c| c.id())
    }

    /// Is the host powered on (holder alive)?
    pub fn is_up(&self) -> bool {
        self.holder_pid()
            .map(|p| Path::new(&format!("/proc/{p}")).exists())
            .unwrap_or(false)
    }

    /// Power on: private directories, namespaces, virtlogd, libvirtd; returns when
    /// `virsh version` answers.
    pub fn boot(&mut self) -> Result<Duration> {
        let t0 = Instant::now();
        self.prepare_dirs()?;
        for p in &self.ports {
            self.switch.link(p, true)?;
        }
        caps_cache::seed(&self.dir.join("cache"));
        self.start_holder()?;
        if !self.libvirt {
            return Ok(t0.elapsed());
        }
        self.start_daemon(
            "virtlogd",
            &[
                "/usr/sbin/virtlogd",
                "-d",
                "-p",
                "/run/libvirt/virtlogd.pid",
            ],
        )?;
        self.start_libvirtd()?;
        self.save_caps();
        Ok(t0.elapsed())
    }

    /// Start libvirtd; returns once it answers `virsh version`.
    fn start_libvirtd(&self) -> Result<()> {
        self.start_daemon(
            "libvirtd",
            &[
                "/usr/sbin/libvirtd",
                "-d",
                "--pid-file=/run/libvirt/libvirtd.pid",
            ],
        )?;
        let uri = self.uri();
        wait_until(
            &format!("libvirtd of host {} to answer `virsh version`", self.name),
            Duration::from_secs(60),
            Duration::from_millis(50),
            || cmd::run("virsh", ["-c", &uri, "version"]).map(drop).into(),
        )
    }

    /// Offer this host's probed QEMU capabilities to the next hosts (see [`caps_cache`]).
    pub fn save_caps(&self) {
        caps_cache::save(&self.dir.join("cache"));
    }

    fn prepare_dirs(&self) -> Result<()> {
        for (sub, target) in MOUNTS {
            mkdir(&self.dir.join(sub))?;
            // The mount point must exist in the root namespace, or the bind fails.
            mkdir(Path::new(target))?;
        }
        mkdir(&self.images())?;
        // corosync's pid (lock) file is fixed at /run/corosync.pid: each host gets
        // its own, bind-mounted over it (the mount point must exist outside).
        mkdir(&self.dir.join("corosync"))?;
        for f in [
            self.dir.join("corosync/corosync.pid"),
            PathBuf::from(COROSYNC_PID),
        ] {
            if !f.exists() {
                write(&f, "")?;
            }
        }
        // A reboot empties /run.
        let run = self.dir.join("run");
        clear_dir(&run)?;
        clear_dir(&self.dir.join("dbus"))?;
        clear_dir(&self.dir.join("journal"))?;
        let etc = self.dir.join("etc");
        if !etc.join("qemu.conf").exists() || !etc.join(".ftvirt-lab").exists() {
            cmd::run("cp", ["-a", "/etc/libvirt/.", &etc.to_string_lossy()])?;
            // No default network (it would start dnsmasq) and no hooks from the machine.
            let _ = std::fs::remove_dir_all(etc.join("qemu/networks/autostart"));
            let _ = std::fs::remove_dir_all(etc.join("hooks"));
            mkdir(&etc.join("hooks/qemu.d"))?;
            write(&etc.join("qemu.conf"), QEMU_CONF)?;
            let mut conf = std::fs::read_to_string(etc.join("libvirtd.conf")).unwrap_or_default();
            conf.push_str(LIBVIRTD_CONF_EXTRA);
            // Every host its own UUID, as real hosts have: libvirt refuses to migrate a
            // domain to a host with the same UUID ("the same host").
            conf.push_str(&format!("host_uuid = \"{}\"\n", host_uuid(&self.dir)));
            write(&etc.join("libvirtd.conf"), &conf)?;
            write(
                &etc.join(".ftvirt-lab"),
                "private /etc/libvirt of a lab host\n",
            )?;
        }
        Ok(())
    }

    fn start_holder(&mut self) -> Result<()> {
        let mut script = String::from("set -e\n");
        for (sub, target) in MOUNTS {
            script.push_str(&format!(
                "mount --bind '{}' '{}'\n",
                self.dir.join(sub).display(),
                target
            ));
        }
        script.push_str(&format!(
            "mount --bind '{}' '{COROSYNC_PID}'\n",
            self.dir.join("corosync/corosync.pid").display()
        ));
        script.push_str(&format!(
            "hostname '{}'\necho FTVIRT-HOST-READY\nexec sleep infinity\n",
            self.name
        ));
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &self.ns.name,
            "unshare",
            "--mount",
            "--uts",
            "--propagation",
            "private",
            "--",
        ])
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
        let mut child = c.spawn().map_err(|source| LabError::Spawn {
            cmd: cmd::show(&c),
            source,
        })?;
        let mut line = String::new();
        let out = child.stdout.take().expect("piped");
        BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| LabError::io("reading", "host holder stdout", e))?;
        if line.trim() != "FTVIRT-HOST-READY" {
            let _ = child.kill();
            let out = child.wait_with_output().ok();
            let err = out
                .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
                .unwrap_or_default();
            return Err(LabError::Usage(format!(
                "host {}: could not set up its mount namespace: {err}",
                self.name
            )));
        }
        self.holder = Some(child);
        Ok(())
    }

    /// A command that runs inside this host (its network, mount and UTS namespaces).
    pub fn command(&self, argv: &[&str]) -> Result<Command> {
        let pid = self
            .holder_pid()
            .ok_or_else(|| LabError::Usage(format!("host {} is down", self.name)))?;
        let mut c = Command::new("nsenter");
        c.args(["-t", &pid.to_string(), "-m", "-u", "-n", "--"])
            .args(argv);
        Ok(c)
    }

    /// Start a self-daemonizing program inside the host. Its early output goes to
    /// `log/<name>.start.log`, never to a pipe a daemon could keep open.
    pub fn start_daemon(&self, name: &str, argv: &[&str]) -> Result<()> {
        let log = self.log_dir().join(format!("{name}.start.log"));
        let f = std::fs::File::create(&log).map_err(|e| LabError::io("creating", &log, e))?;
        let f2 = f
            .try_clone()
            .map_err(|e| LabError::io("duplicating", &log, e))?;
        let mut c = self.command(argv)?;
        c.stdin(Stdio::null()).stdout(f).stderr(f2);
        let st = c.status().map_err(|source| LabError::Spawn {
            cmd: cmd::show(&c),
            source,
        })?;
        if !st.success() {
            return Err(LabError::Command {
                cmd: cmd::show(&c),
                status: st.to_string(),
                stderr: std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            });
        }
        Ok(())
    }

    /// Start `argv` in this host, in its own process group, with its stdout and
    /// stderr appended to `log`.
    pub fn spawn_to_log(&self, argv: &[&str], log: &Path) -> Result<Child> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| LabError::io("opening", log, e))?;
        let f2 = f
            .try_clone()
            .map_err(|e| LabError::io("duplicating", log, e))?;
        let mut c = self.command(argv)?;
        c.stdin(Stdio::null()).stdout(f).stderr(f2).process_group(0);
        c.spawn().map_err(|source| LabError::Spawn {
            cmd: cmd::show(&c),
            source,
        })
    }

    /// Restart only libvirtd (SIGTERM, wait, start again), as an upgrade or a
    /// crash-and-restart would; running domains keep running.
    pub fn restart_libvirtd(&self) -> Result<Duration> {
        let t0 = Instant::now();
        let pidfile = self.dir.join("run/libvirtd.pid");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .map_err(|e| LabError::io("reading", &pidfile, e))?
            .trim()
            .parse()
            .map_err(|_| LabError::Usage(format!("{} holds no pid", pidfile.display())))?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        wait_until(
            &format!("libvirtd of host {} to exit", self.name),
            Duration::from_secs(30),
            Duration::from_millis(20),
            || {
                let gone = !Path::new(&format!("/proc/{pid}")).exists();
                Look::holds(gone, || format!("pid {pid} still runs"))
            },
        )?;
        self.start_libvirtd()?;
        Ok(t0.elapsed())
    }

    /// Run a command inside this host to completion.
    pub fn exec(&self, argv: &[&str]) -> Result<String> {
        cmd::output(&mut self.command(argv)?)
    }

    /// `virsh -c <this host> ARGS...` from outside the host.
    pub fn virsh(&self, args: &[&str]) -> Result<String> {
        let uri = self.uri();
        let mut v = vec!["-c", uri.as_str()];
        v.extend_from_slice(args);
        cmd::run("virsh", v)
    }

    /// Names of this host's domains (`virsh list --all --name`).
    pub fn domains(&self, all: bool) -> Result<Vec<String>> {
        let out = self.virsh(if all {
            &["list", "--all", "--name"]
        } else {
            &["list", "--name"]
        })?;
        Ok(out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect())
    }

    /// Power cut: the host's links go down first (so no FIN or RST escapes), then
    /// every process of the host is SIGKILLed at once.
    pub fn kill(&mut self) -> Result<usize> {
        for p in &self.ports {
            self.switch.link(p, false)?;
        }
        let n = self.ns.kill_all()?;
        if let Some(mut h) = self.holder.take() {
            let _ = h.wait();
        }
        if let Some(mut f) = self.ftd.take() {
            let _ = f.wait();
        }
        if let Some(mut p) = self.polkit.take() {
            let _ = p.wait();
        }
        for mut d in self.daemons.drain(..) {
            let _ = d.wait();
        }
        Ok(n)
    }

    /// Cut (or restore) only the host's links, processes left running.
    pub fn set_links(&self, up: bool) -> Result<()> {
        for p in &self.ports {
            self.switch.link(p, up)?;
        }
        Ok(())
    }

    /// Destroy every running domain through libvirt (used on tear-down).
    pub fn destroy_all(&self) -> Result<()> {
        if !self.is_up() || !self.libvirt {
            return Ok(());
        }
        for d in self.domains(false)? {
            let _ = self.virsh(&["destroy", &d]);
        }
        Ok(())
    }
}

/// A version-4-shaped UUID derived from the host's directory (unique per lab and host).
fn host_uuid(dir: &Path) -> String {
    let fnv = |seed: u64| {
        dir.to_string_lossy().bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let (hi, lo) = (fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4));
    let hi = (hi & !0xf000) | 0x4000;
    let lo = (lo & !(0xc << 60)) | (0x8 << 60);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| LabError::io("creating directory", p, e))
}

fn write(p: &Path, s: &str) -> Result<()> {
    std::fs::write(p, s).map_err(|e| LabError::io("writing", p, e))
}

fn clear_dir(p: &Path) -> Result<()> {
    if p.exists() {
        std::fs::remove_dir_all(p).map_err(|e| LabError::io("clearing", p, e))?;
    }
    mkdir(p)
}

#[cfg(test)]
mod tests {
    use super::host_uuid;
    use std::path::Path;

    #[test]
    fn host_uuids_differ_per_host_and_look_like_uuids() {
        let a = host_uuid(Path::new("/var/tmp/ftvirt-lab/0a1b2c/a"));
        let b = host_uuid(Path::new("/var/tmp/ftvirt-lab/0a1b2c/b"));
        assert_ne!(a, b);
        for u in [&a, &b] {
            let parts: Vec<usize> = u.split('-').map(str::len).collect();
            assert_eq!(parts, [8, 4, 4, 4, 12], "{u}");
            assert_eq!(&u[14..15], "4", "{u}");
        }
    }
}
