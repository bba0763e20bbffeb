//! A host's own systemd-journald: sockets in `/run/systemd/journal`, files in
//! `/run/log/journal`, both private to the host (ftd logs there with its
//! structured fields when journald is there).

use super::Host;
use crate::cmd;
use crate::error::{LabError, Result};
use crate::wait::{wait_until, Look};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

impl Host {
    /// Start the host's own systemd-journald (sockets in `/run/systemd/journal`,
    /// files in `/run/log/journal`, both private to the host); returns once its
    /// socket is there. Read what it stored with [`Host::journal`].
    pub fn start_journald(&self) -> Result<()> {
        let log = self.log_dir().join("journald.start.log");
        let f = std::fs::File::create(&log).map_err(|e| LabError::io("creating", &log, e))?;
        // journald needs the cgroup file system, which `ip netns exec`'s fresh /sys
        // lacks; mounting it in the host's own mount namespace changes nothing outside.
        let mut c = self.command(&[
            "sh",
            "-c",
            "mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup; \
             exec /lib/systemd/systemd-journald",
        ])?;
        c.stdin(Stdio::null())
            .stdout(f)
            .stderr(Stdio::null())
            .process_group(0);
        c.spawn().map_err(|source| LabError::Spawn {
            cmd: cmd::show(&c),
            source,
        })?;
        let sock = self.dir.join("journal/socket");
        wait_until(
            &format!("journald of host {}", self.name),
            Duration::from_secs(10),
            Duration::from_millis(20),
            || Look::holds(sock.exists(), || format!("no {}", sock.display())),
        )
    }

    /// Every entry this host's journald stored, as `journalctl -o json` lines.
    pub fn journal(&self) -> Result<Vec<String>> {
        let dir = self.dir.join("journal-log");
        let out = cmd::run(
            "journalctl",
            ["-D", &dir.to_string_lossy(), "-o", "json", "--no-pager"],
        )?;
        Ok(out.lines().map(String::from).collect())
    }
}
