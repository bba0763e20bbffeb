//! The user and group libvirt runs QEMU as, and the one rule for every file ftd
//! makes that QEMU opens behind libvirt's back (the secondary's overlays on its
//! `<qemu:commandline>`, the pivot's base image added over QMP, COLO's TLS files):
//! libvirt's DAC driver never labels those, so ftd does it as libvirt would.
//!
//! - a file: owned by the QEMU user and group, mode 0600 ([`QemuUser::own_file`]);
//! - a directory ftd creates for such files: owned by ftd's user (root) and the
//!   QEMU group, mode 0750: QEMU traverses it, nobody else even lists it
//!   ([`QemuUser::own_dir`]);
//! - a directory ftd did not create but QEMU must reach (the overlay directory,
//!   the TLS directory's parents): checked at start ([`QemuUser::can_traverse`]).
//!
//! Which user: what libvirt itself reads, `user` and `group` in
//! `/etc/libvirt/qemu.conf`; where the file leaves them unset, libvirt uses its
//! build's defaults, which its shipped `qemu.conf` names in the commented lines
//! `#user = "..."` and `#group = "..."` (Debian: `libvirt-qemu`). A value is a
//! name, `+N` for uid/gid N, or a number (a name first, as libvirt reads it).

use nix::unistd::{chown, getgrouplist, Gid, Group, Uid, User};
use std::ffi::CString;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// libvirt's QEMU configuration on a standard installation.
pub const QEMU_CONF: &str = "/etc/libvirt/qemu.conf";

/// Mode of every file ftd makes for QEMU.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory ftd makes for QEMU's files.
pub const DIR_MODE: u32 = 0o750;

/// The identity QEMU runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuUser {
    /// As configured (for messages).
    pub user: String,
    pub group: String,
    pub uid: Uid,
    pub gid: Gid,
    /// Every group QEMU's process has (libvirt sets the user's supplementary
    /// groups too), for [`QemuUser::can_traverse`].
    pub groups: Vec<Gid>,
}

/// Why the QEMU user is not known.
#[derive(Debug, thiserror::Error)]
pub enum QemuUserError {
    /// The file cannot be read.
    #[error("cannot read libvirt's {path}: {source} (ftd runs QEMU's files as the user it names)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Neither a setting nor libvirt's commented default.
    #[error("{path} names no `{key}` (set, or libvirt's commented default): set `{key} = \"...\"` there to the {key} libvirt runs QEMU as")]
    Unset { path: PathBuf, key: &'static str },
    /// A name this host does not know.
    #[error("{path}: {key} {value:?} is not known on this host ({why})")]
    Unknown {
        path: PathBuf,
        key: &'static str,
        value: String,
        why: String,
    },
}

impl QemuUser {
    /// The user and group of libvirt's `qemu.conf` at `path`.
    pub fn from_qemu_conf(path: &Path) -> Result<QemuUser, QemuUserError> {
        let text = std::fs::read_to_string(path).map_err(|source| QemuUserError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let unset = |key| QemuUserError::Unset {
            path: path.to_path_buf(),
            key,
        };
        let user = setting(&text, "user").ok_or_else(|| unset("user"))?;
        let group = setting(&text, "group").ok_or_else(|| unset("group"))?;
        let unknown = |key, value: &str, why: String| QemuUserError::Unknown {
            path: path.to_path_buf(),
            key,
            value: value.to_string(),
            why,
        };
        let (uid, name) = resolve_user(&user).map_err(|w| unknown("user", &user, w))?;
        let gid = resolve_group(&group).map_err(|w| unknown("group", &group, w))?;
        let groups = match name {
            Some(n) => CString::new(n)
                .ok()
                .and_then(|n| getgrouplist(&n, gid).ok())
                .unwrap_or_else(|| vec![gid]),
            None => vec![gid],
        };
        Ok(QemuUser {
            user,
            group,
            uid,
            gid,
            groups,
        })
    }

    /// This process's own user and group (tests, and files no one else opens).
    pub fn current() -> QemuUser {
        let (uid, gid) = (Uid::effective(), Gid::effective());
        QemuUser {
            user: uid.to_string(),
            group: gid.to_string(),
            uid,
            gid,
            groups: vec![gid],
        }
    }

    /// `user:group` as configured.
    pub fn describe(&self) -> String {
        format!("{}:{}", self.user, self.group)
    }

    /// Give `path` (a file ftd made for QEMU) to QEMU: its user and group, 0600.
    pub fn own_file(&self, path: &Path) -> Result<(), String> {
        chown(path, Some(self.uid), Some(self.gid)).map_err(|e| {
            format!(
                "giving {} to {}: {}",
                path.display(),
                self.describe(),
                e.desc()
            )
        })?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE))
            .map_err(|e| format!("setting the mode of {}: {e}", path.display()))
    }

    /// Make `dir` QEMU's to traverse: ftd's user, QEMU's group, 0750.
    pub fn own_dir(&self, dir: &Path) -> Result<(), String> {
        chown(dir, None, Some(self.gid)).map_err(|e| {
            format!(
                "giving {} to group {}: {}",
                dir.display(),
                self.group,
                e.desc()
            )
        })?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
            .map_err(|e| format!("setting the mode of {}: {e}", dir.display()))
    }

    /// Create `dir` and each missing parent, every one made [`own_dir`](Self::own_dir);
    /// directories that exist are left as they are.
    pub fn create_dirs(&self, dir: &Path) -> Result<(), String> {
        let missing: Vec<&Path> = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && std::fs::symlink_metadata(d).is_err())
            .collect();
        for d in missing.into_iter().rev() {
            match std::fs::DirBuilder::new().mode(DIR_MODE).create(d) {
                Ok(()) => self.own_dir(d)?,
                // Made meanwhile by another task: as it made it.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("creating {}: {e}", d.display())),
            }
        }
        Ok(())
    }

    /// Can QEMU reach files in `dir` (search permission on it and every parent,
    /// as its user and groups)? `Err` names the first directory that stops it.
    pub fn can_traverse(&self, dir: &Path) -> Result<(), String> {
        if self.uid.is_root() {
            return Ok(());
        }
        let mut dirs: Vec<&Path> = dir.ancestors().collect();
        dirs.reverse();
        for d in dirs {
            let m = std::fs::metadata(d).map_err(|e| format!("{}: {e}", d.display()))?;
            let mode = m.mode();
            let bit = if m.uid() == self.uid.as_raw() {
                mode & 0o100
            } else if self.groups.iter().any(|g| g.as_raw() == m.gid()) {
                mode & 0o010
            } else {
                mode & 0o001
            };
            if bit == 0 {
                return Err(format!(
                    "QEMU (running as {}) cannot reach files under {}: {} is mode {:04o}, \
                     owner {} group {}; let QEMU's user or group search it (e.g. chgrp {} \
                     and chmod g+x, or chmod o+x)",
                    self.describe(),
                    dir.display(),
                    d.display(),
                    mode & 0o7777,
                    m.uid(),
                    m.gid(),
                    self.group,
                ));
            }
        }
        Ok(())
    }
}

/// `key`'s value in a libvirt configuration: the last `key = "value"` setting,
/// else the last commented `#key = "value"` (libvirt's build default, as its
/// shipped file names it).
fn setting(text: &str, key: &str) -> Option<String> {
    let value = |line: &str| -> Option<String> {
        let rest = line.trim().strip_prefix(key)?.trim_start();
        let rest = rest.strip_prefix('=')?.trim_start().strip_prefix('"')?;
        let (v, after) = rest.split_once('"')?;
        let after = after.trim_start();
        (after.is_empty() || after.starts_with('#')).then(|| v.to_string())
    };
    let set = text.lines().filter_map(value).next_back();
    set.or_else(|| {
        text.lines()
            .filter_map(|l| l.trim_start().strip_prefix('#'))
            .filter_map(value)
            .next_back()
    })
}

/// A `user` value as libvirt reads it: `+N` is uid N; otherwise a name, or
/// failing that a number. The user's name too when it has one.
fn resolve_user(v: &str) -> Result<(Uid, Option<String>), String> {
    let by_uid = |n: u32| match User::from_uid(Uid::from_raw(n)) {
        Ok(Some(u)) => (u.uid, Some(u.name)),
        _ => (Uid::from_raw(n), None),
    };
    if let Some(n) = v.strip_prefix('+') {
        return n
            .parse()
            .map(by_uid)
            .map_err(|_| "not a number after +".into());
    }
    match User::from_name(v) {
        Ok(Some(u)) => Ok((u.uid, Some(u.name))),
        Ok(None) => v
            .parse()
            .map(by_uid)
            .map_err(|_| "no such user".to_string()),
        Err(e) => Err(e.desc().to_string()),
    }
}

/// A `group` value, read as [`resolve_user`] reads a user.
fn resolve_group(v: &str) -> Result<Gid, String> {
    if let Some(n) = v.strip_prefix('+') {
        return n
            .parse()
            .map(Gid::from_raw)
            .map_err(|_| "not a number after +".into());
    }
    match Group::from_name(v) {
        Ok(Some(g)) => Ok(g.gid),
        Ok(None) => v
            .parse()
            .map(Gid::from_raw)
            .map_err(|_| "no such group".to_string()),
        Err(e) => Err(e.desc().to_string()),
    }
}

#[cfg(test)]
#[path = "qemu_user_tests.rs"]
mod tests;
