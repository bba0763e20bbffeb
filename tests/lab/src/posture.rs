//! The lab's check of libvirt's normal security posture on a host: QEMU runs as
//! libvirt's unprivileged user (the host's `qemu.conf`, read with ftd's own
//! [`QemuUser`]), and every file ftd made for QEMU is that user's and nobody
//! else's. What is checked, under the host's directory:
//!
//! | where | what ftd made | rule |
//! |---|---|---|
//! | `overlays/**` | the secondary's `parent0`/`active`/`hidden`, a survivor's disk, its base images | every `.qcow2` QEMU's user's, no file or directory open to group or others beyond QEMU's group searching a directory |
//! | `ftd-state/qemu-tls/*` | COLO's TLS files | QEMU's user's, 0600; the directory 0750 |
//! | `images/*.ftvirt*.qcow2` | the pivot's base images | QEMU's user's, 0600 |
//!
//! ftd's own process must run under `dbus/ftd.service`'s sandbox
//! ([`crate::sandbox::check`]): the unit's capability bounding set,
//! `no_new_privs`, seccomp, a mount namespace of its own with `/etc` read-only.
//!
//! Files libvirt labels itself (the guest's first disk, its console log) are
//! libvirt's business and not checked here, except that nothing under
//! `overlays/` (the secondary's console log among it) may be readable by others.

use crate::error::{LabError, Result};
use crate::Host;
use ftd::host::QemuUser;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What [`Host::check_posture`] looked at.
#[derive(Debug, Default)]
pub struct Posture {
    /// QEMU processes of the host: (pid, user name).
    pub qemu: Vec<(u32, String)>,
    /// Files checked.
    pub files: Vec<PathBuf>,
    /// ftd's process was found under its unit's sandbox.
    pub ftd_sandboxed: bool,
    /// Rules broken, each naming the file or process.
    pub problems: Vec<String>,
}

impl Posture {
    /// `Ok` if nothing broke a rule; else every problem, one a line.
    pub fn ok(&self) -> std::result::Result<(), String> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(self.problems.join("\n"))
        }
    }

    /// Did it check a file whose name contains `part`?
    pub fn saw(&self, part: &str) -> bool {
        self.files
            .iter()
            .any(|f| f.to_string_lossy().contains(part))
    }
}

impl Host {
    /// The user this host's libvirtd runs QEMU as, read from its `qemu.conf`
    /// as ftd reads it.
    pub fn qemu_user(&self) -> Result<QemuUser> {
        QemuUser::from_qemu_conf(&self.dir.join("etc/qemu.conf"))
            .map_err(|e| LabError::Usage(format!("host {}: {e}", self.name)))
    }

    /// An empty qcow2 image for this host's QEMU to open behind libvirt's back,
    /// made as ftd makes one (its own [`ftd::host::RealOs`]: QEMU's user's, 0600).
    pub async fn qemu_image(&self, path: &Path, size: u64) -> Result<()> {
        use ftd::host::HostOs;
        ftd::host::RealOs::new(self.qemu_user()?)
            .create_image(path, size)
            .await
            .map_err(LabError::Usage)
    }

    /// Every QEMU process of this host (in its network namespace): pid and
    /// user, as `ps -o user` shows it.
    pub fn qemu_processes(&self) -> Result<Vec<(u32, String, u32)>> {
        let pids = crate::cmd::run("ip", ["netns", "pids", &self.ns.name])?;
        let mut out = Vec::new();
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if !comm.starts_with("qemu-system") {
                continue;
            }
            let Ok(ps) = crate::cmd::run("ps", ["-o", "uid=,user:32=", "-p", &pid.to_string()])
            else {
                continue; // gone meanwhile
            };
            let mut f = ps.split_whitespace();
            if let (Some(uid), Some(user)) = (f.next().and_then(|u| u.parse().ok()), f.next()) {
                out.push((pid, user.to_string(), uid));
            }
        }
        Ok(out)
    }

    /// Check the posture (see the module's table): QEMU's processes and the
    /// files ftd made on this host now.
    pub fn check_posture(&self) -> Result<Posture> {
        let q = self.qemu_user()?;
        let mut p = Posture::default();
        if q.uid.is_root() {
            p.problems
                .push(format!("host {}: qemu.conf runs QEMU as root", self.name));
        }
        for (pid, user, uid) in self.qemu_processes()? {
            if uid != q.uid.as_raw() {
                p.problems.push(format!(
                    "host {}: QEMU pid {pid} runs as {user}, not {}",
                    self.name, q.user
                ));
            }
            p.qemu.push((pid, user));
        }
        // ftd itself under its unit's sandbox (unless the lab was told not to).
        if let (Some(pid), false) = (self.ftd_pid(), sandbox_off()) {
            let unit = crate::sandbox::Sandbox::load(&crate::host::unit_file(), &[])
                .map_err(LabError::Usage)?;
            let outside = PathBuf::from(format!(
                "/proc/{}/ns/mnt",
                self.holder_pid().unwrap_or_default()
            ));
            for e in crate::sandbox::check::process(pid, &unit, &outside) {
                p.problems.push(format!("host {}: ftd {e}", self.name));
            }
            p.ftd_sandboxed = p.problems.is_empty();
        }
        let tls = self.dir.join("ftd-state/qemu-tls");
        if tls.exists() {
            check_dir(&tls, &q, &mut p);
            for f in files(&tls) {
                check_file(&f, &q, true, &mut p);
            }
        }
        let overlays = self.dir.join("overlays");
        for d in dirs(&overlays) {
            check_dir(&d, &q, &mut p);
        }
        for f in files_deep(&overlays) {
            let image = f.extension().is_some_and(|e| e == "qcow2");
            check_file(&f, &q, image, &mut p);
        }
        for f in files(&self.images()) {
            let name = f.file_name().unwrap_or_default().to_string_lossy();
            if name.contains(".ftvirt") && name.ends_with(".qcow2") {
                check_file(&f, &q, true, &mut p);
            }
        }
        Ok(p)
    }
}

/// A file ftd made: never open to group or others; QEMU's if `qemus`.
fn check_file(f: &Path, q: &QemuUser, qemus: bool, p: &mut Posture) {
    let Ok(m) = std::fs::symlink_metadata(f) else {
        return; // removed meanwhile
    };
    p.files.push(f.to_path_buf());
    let mode = m.mode() & 0o7777;
    if mode & 0o077 != 0 {
        p.problems
            .push(format!("{} is mode {mode:04o} (not 0600)", f.display()));
    }
    if qemus && m.uid() != q.uid.as_raw() {
        p.problems.push(format!(
            "{} is owned by uid {}, not QEMU's {} ({})",
            f.display(),
            m.uid(),
            q.uid,
            q.user
        ));
    }
}

/// A directory ftd made: nothing for others; its group at most searches and lists.
fn check_dir(d: &Path, q: &QemuUser, p: &mut Posture) {
    let Ok(m) = std::fs::metadata(d) else { return };
    let mode = m.mode() & 0o7777;
    if mode & 0o027 != 0 || (mode & 0o070 != 0 && m.gid() != q.gid.as_raw()) {
        p.problems.push(format!(
            "directory {} is mode {mode:04o}, group {} (want 0750 or closer, group {})",
            d.display(),
            m.gid(),
            q.group
        ));
    }
}

fn entries(d: &Path) -> Vec<(PathBuf, std::fs::FileType)> {
    std::fs::read_dir(d)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| Some((e.path(), e.file_type().ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

fn files(d: &Path) -> Vec<PathBuf> {
    entries(d)
        .into_iter()
        .filter(|(_, t)| t.is_file())
        .map(|(p, _)| p)
        .collect()
}

/// `d` and every directory under it (if it exists).
fn dirs(d: &Path) -> Vec<PathBuf> {
    if !d.is_dir() {
        return Vec::new();
    }
    let mut out = vec![d.to_path_buf()];
    for (p, t) in entries(d) {
        if t.is_dir() {
            out.extend(dirs(&p));
        }
    }
    out
}

fn files_deep(d: &Path) -> Vec<PathBuf> {
    dirs(d).iter().flat_map(|d| files(d)).collect()
}

/// `FTVIRT_LAB_SANDBOX=off`: ftd was started without its sandbox.
fn sandbox_off() -> bool {
    std::env::var("FTVIRT_LAB_SANDBOX").is_ok_and(|v| v == "off")
}
