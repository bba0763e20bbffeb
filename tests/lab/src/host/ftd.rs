//! A host's ftd: started with a configuration under the shipped systemd unit's
//! sandbox, logging to `log/ftd.log`, ready once it owns its bus name; its TLS
//! files (the peer link's and COLO's), made with ftd's own `make-certs` from the
//! lab's CAs; killing it alone.

use super::{mkdir, write, Host};
use crate::cmd;
use crate::error::Result;
use std::path::{Path, PathBuf};
use std::time::Duration;

impl Host {
    /// Start this host's ftd (`binary`) with `config` (YAML), logging to
    /// `log/ftd.log`; returns once it owns `bus_name` on the host's bus. Makes the
    /// host's TLS files first if needed (`config` should include
    /// [`Host::ftd_tls_yaml`], and [`Host::ftd_colo_tls_yaml`] in its `colo:`). ftd runs under `dbus/ftd.service`'s sandbox
    /// ([`crate::sandbox`], through `ftvirt-sandbox` next to `binary`) with the
    /// lab's drop-in ([`Host::ftd_drop_in`]), as it runs in the field;
    /// `FTVIRT_LAB_SANDBOX=off` starts it bare (for debugging, said in its log).
    pub fn start_ftd(&mut self, binary: &Path, config: &str, bus_name: &str) -> Result<()> {
        self.ensure_tls(binary)?;
        let cfg = self.dir.join("ftd.yaml");
        write(&cfg, config)?;
        // Where the libvirt hook reads it when ftd does not answer (the host's
        // own /etc/ftvirt); it outlives a power cut, as a real host's /etc does.
        write(&self.dir.join("etc-ftvirt/ftd.yaml"), config)?;
        let log = self.log_dir().join("ftd.log");
        let bin = binary.to_string_lossy().into_owned();
        let cfgs = cfg.to_string_lossy().into_owned();
        let mut argv: Vec<String> = Vec::new();
        if std::env::var("FTVIRT_LAB_SANDBOX").is_ok_and(|v| v == "off") {
            let note = "ftvirt-lab: FTVIRT_LAB_SANDBOX=off: ftd runs without its unit's sandbox\n";
            append(&log, note)?;
        } else {
            let drop_in = self.dir.join("ftd.service.d/lab.conf");
            mkdir(&self.dir.join("ftd.service.d"))?;
            write(&drop_in, &self.ftd_drop_in())?;
            argv.extend([
                sandbox_binary(binary)?.to_string_lossy().into_owned(),
                "--unit".into(),
                unit_file().to_string_lossy().into_owned(),
                "--drop-in".into(),
                drop_in.to_string_lossy().into_owned(),
                "--".into(),
            ]);
        }
        argv.extend([bin, "--config".into(), cfgs]);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mut child = self.spawn_to_log(&argv, &log)?;
        self.await_bus_name("ftd", &mut child, bus_name, &log, Duration::from_secs(30))?;
        self.ftd = Some(child);
        Ok(())
    }

    /// The lab's drop-in for ftd's unit, as an admin whose state lives
    /// elsewhere writes one (`systemctl edit ftd`): the lab keeps everything
    /// of its hosts (state, overlays, images, TLS files) under its directory in
    /// `/var/tmp`, which `PrivateTmp=` would hide, so it binds that directory
    /// back in, writable. Nothing else is loosened.
    pub fn ftd_drop_in(&self) -> String {
        let lab = self.dir.parent().unwrap_or(&self.dir);
        format!(
            "# written by ftvirt-lab for host {}\n[Service]\nBindPaths={}\n",
            self.name,
            lab.display()
        )
    }

    /// This host's TLS files: the peer link's `ca.crt`, `host.crt`, `host.key`
    /// and COLO's `colo-ca.crt`, `colo.crt`, `colo.key`.
    pub fn tls_dir(&self) -> PathBuf {
        self.lab_tls_dir().join(&self.name)
    }

    /// The lab's CAs and every host's TLS directory.
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

    /// The keys of ftd's `colo:` section for this host's COLO TLS files, its own
    /// (from the lab's COLO CA, which the peer link does not trust): lines to
    /// put under `colo:`.
    pub fn ftd_colo_tls_yaml(&self) -> String {
        let d = self.tls_dir();
        format!(
            "  tls-ca: {ca}\n  tls-cert: {cert}\n  tls-key: {key}\n",
            ca = d.join("colo-ca.crt").display(),
            cert = d.join("colo.crt").display(),
            key = d.join("colo.key").display(),
        )
    }

    /// Make this host's TLS files with `ftd make-certs` (the lab's CAs are made by
    /// the first call and reused by the others), unless they exist (make-certs
    /// makes the set that is missing).
    fn ensure_tls(&self, ftd: &Path) -> Result<()> {
        let d = self.tls_dir();
        if d.join("host.crt").exists() && d.join("colo.crt").exists() {
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

/// The shipped unit, from this source tree.
pub fn unit_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dbus/ftd.service")
}

/// `ftvirt-sandbox`: `FTVIRT_SANDBOX_BIN`, else next to ftd's binary. Every
/// build of the lab's programs puts it there ([`crate::ftd::binary`], `cargo
/// xtask test/demo/matrix/bench`); a test of ftd's own run alone (`cargo test
/// -p ftd --test ...`) builds only ftd's binaries, so it is built here then,
/// into the same target directory and profile.
pub fn sandbox_binary(ftd: &Path) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("FTVIRT_SANDBOX_BIN") {
        return Ok(PathBuf::from(p));
    }
    let p = ftd.with_file_name("ftvirt-sandbox");
    if !p.exists() {
        build_sandbox(ftd)?;
    }
    if p.exists() {
        Ok(p)
    } else {
        Err(crate::error::LabError::Usage(format!(
            "no {}: build it with `cargo build -p ftvirt-lab --bin ftvirt-sandbox` (same profile \
             as ftd), or set FTVIRT_SANDBOX_BIN",
            p.display()
        )))
    }
}

/// `cargo build -p ftvirt-lab --bin ftvirt-sandbox` into the target directory
/// and profile of `ftd` (`<target>/<profile>/ftd`).
fn build_sandbox(ftd: &Path) -> Result<()> {
    let profile_dir = ftd.parent().unwrap_or(Path::new("."));
    let Some(target) = profile_dir.parent() else {
        return Ok(()); // not in a target directory: the caller names the fix
    };
    let mut c =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.args([
        "build",
        "--quiet",
        "-p",
        "ftvirt-lab",
        "--bin",
        "ftvirt-sandbox",
        "--target-dir",
    ])
    .arg(target)
    .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        c.arg("--release");
    }
    crate::cmd::output(&mut c).map(drop)
}

fn append(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| crate::error::LabError::io("appending to", path, e))
}
