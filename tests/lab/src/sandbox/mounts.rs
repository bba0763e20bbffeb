//! The file system view of the unit's sandbox, made in a new mount namespace the
//! way systemd makes it: private `/tmp` and `/var/tmp` (`PrivateTmp=`), a minimal
//! `/dev` (`PrivateDevices=`), `BindPaths=`, empty home directories
//! (`ProtectHome=`), everything read-only but the writable paths
//! (`ProtectSystem=strict`), and the kernel's tunables, logs and cgroups read-only
//! or hidden (`ProtectKernelTunables=`, `ProtectKernelLogs=`,
//! `ProtectControlGroups=`). Mounts appear in the namespace of the process that
//! runs this (ftd's host's, in the lab) and are gone with it.

use super::{ProtectSystem, Sandbox};
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The devices a private `/dev` has (as systemd's).
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// What systemd's private `/dev` binds from the host's, where it exists: the
/// pseudo-terminals, and shared memory (corosync's libqb IPC lives in
/// `/dev/shm`, so ftd's arbiter client needs the host's).
const SHARED_DEV_DIRS: &[&str] = &["pts", "shm", "mqueue", "hugepages"];

/// Enter a new mount (and, for `ProtectHostname=`, UTS) namespace and make the view.
pub fn apply(s: &Sandbox) -> Result<(), String> {
    let mut flags = CloneFlags::CLONE_NEWNS;
    if s.protect_hostname {
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    unshare(flags).map_err(|e| format!("unshare: {e}"))?;
    // Mounts made outside still reach us; ours never leave.
    mnt(
        None::<&str>,
        "/",
        None,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None,
    )?;

    // What must be reached before /tmp or /dev are covered.
    let mut binds = Vec::new();
    for b in &s.bind_paths {
        match open_path(&b.source) {
            Ok(fd) => binds.push((fd, b.dest.clone())),
            Err(_) if b.optional => {}
            Err(e) => return Err(format!("BindPaths={}: {e}", b.source.display())),
        }
    }
    let (devices, dev_dirs) = if s.private_devices {
        let nodes = DEVICES
            .iter()
            .map(|d| open_path(&Path::new("/dev").join(d)).map(|fd| (fd, *d)))
            .collect::<Result<Vec<_>, _>>()?;
        let dirs = SHARED_DEV_DIRS
            .iter()
            .filter_map(|d| {
                open_path(&Path::new("/dev").join(d))
                    .ok()
                    .map(|fd| (fd, *d))
            })
            .collect::<Vec<_>>();
        (nodes, dirs)
    } else {
        (Vec::new(), Vec::new())
    };

    if s.private_tmp {
        for t in ["/tmp", "/var/tmp"] {
            tmpfs(t, "mode=1777")?;
        }
    }
    if s.private_devices {
        private_dev(&devices, &dev_dirs)?;
    }
    for (fd, dest) in &binds {
        mkdir_p(dest)?;
        let src = format!("/proc/self/fd/{}", fd.as_raw_fd());
        mnt(
            Some(src.as_str()),
            dest,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
    }
    drop(binds);
    // Each writable path its own mount, so that making the rest read-only
    // leaves it alone.
    let mut writable = Vec::new();
    for w in &s.read_write_paths {
        if w.path.exists() {
            self_bind(&w.path)?;
            writable.push(w.path.clone());
        } else if !w.optional {
            return Err(format!(
                "ReadWritePaths={}: no such directory (prefix it with - if it may be missing)",
                w.path.display()
            ));
        }
    }
    for w in s.writable() {
        if w.exists() && !writable.contains(&w) {
            if !is_mount_point(&w)? {
                self_bind(&w)?;
            }
            writable.push(w);
        }
    }
    if s.protect_home {
        for h in ["/home", "/root", "/run/user"] {
            if Path::new(h).is_dir() {
                tmpfs(h, "mode=000")?;
                remount_ro(Path::new(h), &[])?;
            }
        }
    }
    let read_only: Vec<&str> = match s.protect_system {
        ProtectSystem::No => vec![],
        ProtectSystem::Yes => vec!["/usr", "/boot", "/efi"],
        ProtectSystem::Full => vec!["/usr", "/boot", "/efi", "/etc"],
        ProtectSystem::Strict => vec!["/"],
    };
    for top in read_only {
        if Path::new(top).exists() {
            // The API file systems are guarded by the directives below.
            let mut keep = writable.clone();
            if top == "/" {
                keep.extend(["/dev", "/proc", "/sys"].map(PathBuf::from));
            }
            remount_ro(Path::new(top), &keep)?;
        }
    }
    if s.protect_kernel_tunables {
        for p in [
            "/proc/sys",
            "/proc/sysrq-trigger",
            "/proc/irq",
            "/proc/bus",
            "/proc/fs",
            "/sys",
        ] {
            if Path::new(p).exists() {
                if !is_mount_point(Path::new(p))? {
                    self_bind(Path::new(p))?;
                }
                remount_ro(Path::new(p), &[])?;
            }
        }
    }
    if s.protect_control_groups && Path::new("/sys/fs/cgroup").is_dir() {
        remount_ro(Path::new("/sys/fs/cgroup"), &[])?;
    }
    if s.protect_kernel_logs {
        // Reads of the kernel's log find nothing (the syslog call is filtered).
        for p in ["/proc/kmsg", "/dev/kmsg"] {
            if Path::new(p).exists() {
                mnt(Some("/dev/null"), p, None, MsFlags::MS_BIND, None)?;
            }
        }
    }
    Ok(())
}

/// A tmpfs `/dev` with only [`DEVICES`], the host's [`SHARED_DEV_DIRS`] and
/// the usual links, as systemd's `PrivateDevices=` makes it.
fn private_dev(devices: &[(OwnedFd, &str)], dirs: &[(OwnedFd, &str)]) -> Result<(), String> {
    tmpfs("/dev", "mode=755")?;
    for (fd, name) in devices {
        let p = Path::new("/dev").join(name);
        std::fs::File::create(&p).map_err(|e| format!("creating {}: {e}", p.display()))?;
        let src = format!("/proc/self/fd/{}", fd.as_raw_fd());
        mnt(Some(src.as_str()), &p, None, MsFlags::MS_BIND, None)?;
    }
    for (fd, name) in dirs {
        let p = Path::new("/dev").join(name);
        mkdir_p(&p)?;
        let src = format!("/proc/self/fd/{}", fd.as_raw_fd());
        mnt(Some(src.as_str()), &p, None, MsFlags::MS_BIND, None)?;
    }
    for (link, to) in [
        ("log", "/run/systemd/journal/dev-log"),
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(to, Path::new("/dev").join(link))
            .map_err(|e| format!("linking /dev/{link}: {e}"))?;
    }
    Ok(())
}

/// Make every mount at or under `top` read-only, except those at or under a
/// path of `keep`, keeping each mount's other flags.
fn remount_ro(top: &Path, keep: &[PathBuf]) -> Result<(), String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
    for (point, flags) in mountinfo(&info) {
        if !point.starts_with(top) || keep.iter().any(|k| point.starts_with(k)) {
            continue;
        }
        let f = flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        match mount(None::<&str>, &point, None::<&str>, f, None::<&str>) {
            Ok(()) => {}
            // Covered by a later mount, or gone since it was listed.
            Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(format!("making {} read-only: {e}", point.display())),
        }
    }
    Ok(())
}

/// (mount point, per-mount flags) of each line of `/proc/self/mountinfo`.
pub fn mountinfo(text: &str) -> Vec<(PathBuf, MsFlags)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let point = f.nth(4)?;
            let opts = f.next()?;
            let mut flags = MsFlags::empty();
            for o in opts.split(',') {
                flags |= match o {
                    "nosuid" => MsFlags::MS_NOSUID,
                    "nodev" => MsFlags::MS_NODEV,
                    "noexec" => MsFlags::MS_NOEXEC,
                    "noatime" => MsFlags::MS_NOATIME,
                    "nodiratime" => MsFlags::MS_NODIRATIME,
                    "relatime" => MsFlags::MS_RELATIME,
                    _ => MsFlags::empty(),
                };
            }
            Some((PathBuf::from(unescape(point)), flags))
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_mount_point(p: &Path) -> Result<bool, String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
    Ok(mountinfo(&info).iter().any(|(m, _)| m == p))
}

fn self_bind(p: &Path) -> Result<(), String> {
    mnt(Some(p), p, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
}

fn tmpfs(at: &str, opts: &str) -> Result<(), String> {
    mnt(
        Some("tmpfs"),
        at,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(opts),
    )
}

fn mnt<P: AsRef<Path> + ?Sized, Q: AsRef<Path> + ?Sized>(
    src: Option<&P>,
    at: &Q,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), String> {
    mount(src.map(AsRef::as_ref), at.as_ref(), fstype, flags, data).map_err(|e| {
        format!(
            "mounting {} on {}: {e}",
            src.map(|s| s.as_ref().display().to_string())
                .unwrap_or_default(),
            at.as_ref().display()
        )
    })
}

fn mkdir_p(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("creating {}: {e}", p.display()))
}

/// An `O_PATH` descriptor of `p`: a handle to bind from after `p` is covered.
fn open_path(p: &Path) -> Result<OwnedFd, String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(p)
        .map(OwnedFd::from)
        .map_err(|e| format!("opening {}: {e}", p.display()))
}
