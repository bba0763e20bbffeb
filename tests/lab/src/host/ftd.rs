//! A host's ftd: started with a configuration, logging to `log/ftd.log`, ready once
//! it owns its bus name; its peer-link TLS files, made with ftd's own
//! `make-certs` from one lab CA; killing it alone.

use super::{write, Host};
use crate::cmd;
use crate::error::Result;
use std::path::{Path, PathBuf};
use std::time::Duration;

impl Host {
    /// Start this host's ftd (`binary`) with `config` (YAML), logging to
    /// `log/ftd.log`; returns once it owns `bus_name` on the host's bus. Makes the
    /// host's TLS files first if needed (`config` should include
    /// [`Host::ftd_tls_yaml`]).
    pub fn start_ftd(&mut self, binary: &Path, config: &str, bus_name: &str) -> Result<()> {
        self.ensure_tls(binary)?;
        let cfg = self.dir.join("ftd.yaml");
        write(&cfg, config)?;
        // Where the libvirt hook reads it when ftd does not answer (the host's
        // own /etc/ftvirt); it outlives a power cut, as a real host's /etc does.
        write(&self.dir.join("etc-ftvirt/ftd.yaml"), config)?;
        let log = self.log_dir().join("ftd.log");
        let bin = binary.to_string_lossy().to_string();
        let cfgs = cfg.to_string_lossy().to_string();
        let mut child = self.spawn_to_log(&[&bin, "--config", &cfgs], &log)?;
        self.await_bus_name("ftd", &mut child, bus_name, &log, Duration::from_secs(30))?;
        self.ftd = Some(child);
        Ok(())
    }

    /// This host's peer-link TLS files: `ca.crt`, `host.crt`, `host.key`.
    pub fn tls_dir(&self) -> PathBuf {
        self.lab_tls_dir().join(&self.name)
    }

    /// The lab's CA and every host's TLS directory.
    fn lab_tls_dir(&self) -> PathBuf {
        self.dir.parent().unwrap_or(&self.dir).join("tls")
    }

    /// The `peer-link:` section of ftd's configuration for this host's TLS files.
    pub fn ftd_tls_yaml(&self) -> String {
        let d = self.tls_dir();
        format!(
            "peer-link:\n  tls:\n    ca: {ca}\n    cert: {cert}\n    key: {key}\n",
            ca = d.join("ca.crt").display(),
            cert = d.join("host.crt").display(),
            key = d.join("host.key").display(),
        )
    }

    /// Make this host's TLS files with `ftd make-certs` (the lab's CA is made by the
    /// first call and reused by the others), unless they exist.
    fn ensure_tls(&self, ftd: &Path) -> Result<()> {
        if self.tls_dir().join("host.crt").exists() {
            return Ok(());
        }
        let dir = self.lab_tls_dir();
        // NAME=ADDR: COLO's TLS checks the host's replication address.
        let me = format!("{}={}", self.name, self.rep_ip);
        cmd::run(
            &ftd.to_string_lossy(),
            [
                "make-certs".as_ref(),
                "--dir".as_ref(),
                dir.as_os_str(),
                me.as_ref(),
            ],
        )?;
        Ok(())
    }

    /// SIGKILL this host's ftd only (the rest of the host keeps running).
    pub fn kill_ftd(&mut self) {
        if let Some(mut c) = self.ftd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The path of this host's ftd log.
    pub fn ftd_log(&self) -> PathBuf {
        self.log_dir().join("ftd.log")
    }
}
