//! The partition arbiter's cluster engine on a lab host: corosync and
//! corosync-qdevice on the pair, corosync-qnetd on the witness (see
//! [`crate::cluster`] for the whole set-up).
//!
//! Each runs in the foreground inside the host's namespaces, its output appended to
//! `log/<name>.log`, and dies with the host (a power cut kills every process of the
//! host; tear-down kills every process of the lab). Their state is private to the
//! host: corosync's IPC uses abstract sockets, which are per network namespace; its
//! state directory is `corosync/` and its fixed pid file `/run/corosync.pid` is a
//! per-host bind mount (see [`super::Host`]); qdevice's and qnetd's lock files and
//! local sockets are given on their command lines, in `corosync/`.

use super::Host;
use crate::cmd;
use crate::error::{LabError, Result};
use crate::wait::wait_until;
use std::path::PathBuf;
use std::time::Duration;

impl Host {
    /// Start `argv` in the foreground inside the host, its output appended to
    /// `log/<name>.log`; the process is the lab's child until the host dies.
    pub fn spawn_logged(&mut self, name: &str, argv: &[&str]) -> Result<()> {
        let log = self.log_dir().join(format!("{name}.log"));
        let child = self.spawn_to_log(argv, &log)?;
        self.daemons.push(child);
        Ok(())
    }

    /// corosync's and qdevice's files on this host.
    pub fn corosync_dir(&self) -> PathBuf {
        self.dir.join("corosync")
    }

    fn file(&self, name: &str) -> String {
        self.corosync_dir()
            .join(name)
            .to_string_lossy()
            .into_owned()
    }

    /// Write `corosync.conf` and start corosync; returns once its IPC answers.
    pub fn start_corosync(&mut self, conf: &str) -> Result<()> {
        let path = self.file("corosync.conf");
        std::fs::write(&path, conf).map_err(|e| LabError::io("writing", &path, e))?;
        self.spawn_logged("corosync", &["corosync", "-f", "-c", &path])?;
        let name = self.name.clone();
        wait_until(
            &format!("corosync of host {name} to answer"),
            Duration::from_secs(30),
            Duration::from_millis(50),
            || {
                self.exec(&["corosync-cmapctl", "-g", "runtime.votequorum.this_node_id"])
                    .map(drop)
                    .into()
            },
        )
    }

    /// Start corosync-qdevice (after corosync).
    pub fn start_qdevice(&mut self) -> Result<()> {
        let opts = format!(
            "lock_file={},local_socket_file={}",
            self.file("qdevice.pid"),
            self.file("qdevice.sock")
        );
        self.spawn_logged("corosync-qdevice", &["corosync-qdevice", "-f", "-S", &opts])
    }

    /// Start corosync-qnetd, the witness, without TLS (the lab's rep network is
    /// private; production set-ups use `corosync-qnetd-certutil`); returns once it
    /// answers on its local socket.
    pub fn start_qnetd(&mut self) -> Result<()> {
        let sock = self.file("qnetd.sock");
        let opts = format!(
            "lock_file={},local_socket_file={sock}",
            self.file("qnetd.pid")
        );
        let listen = self.rep_ip.to_string();
        self.spawn_logged(
            "corosync-qnetd",
            &[
                "corosync-qnetd",
                "-f",
                "-s",
                "off",
                "-4",
                "-l",
                &listen,
                "-S",
                &opts,
            ],
        )?;
        let name = self.name.clone();
        wait_until(
            &format!("corosync-qnetd of host {name} to answer"),
            Duration::from_secs(30),
            Duration::from_millis(50),
            || {
                self.exec(&["corosync-qnetd-tool", "-s", "-p", &sock])
                    .map(drop)
                    .into()
            },
        )
    }

    /// `corosync-quorumtool -s` inside the host (quorum, votes, members).
    pub fn quorum_status(&self) -> Result<String> {
        // quorumtool exits non-zero when not quorate; the text is what matters.
        let out = cmd::raw(&mut self.command(&["corosync-quorumtool", "-s"])?)?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("Quorate:") {
            Ok(text)
        } else {
            Err(LabError::Command {
                cmd: format!("corosync-quorumtool -s (host {})", self.name),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }
}
