//! The shipped systemd unit's sandbox, applied without systemd: the lab's
//! machines have no systemd as PID 1, yet ftd must be tested under the limits
//! `dbus/ftd.service` puts on it in the field (issue 14: fencing, socket cutting,
//! the pivot and re-protection must work under them; review 8.4 found they did
//! not). `ftvirt-sandbox` (this crate's binary) reads the unit and the lab's
//! drop-in, applies every sandboxing directive the way systemd does (a mount
//! namespace, the capability bounding set, `no_new_privs`, seccomp filters built
//! with libseccomp as systemd builds them, the system-call groups expanded by the
//! machine's own `systemd-analyze`) and then executes ftd.
//!
//! This file parses the unit ([`Sandbox::parse`]); [`mounts`] makes the file
//! system view, [`seccomp`] the filters, [`apply`](fn@apply) runs them in order. A
//! directive the lab does not know is an error that names it: adding one to the
//! unit means teaching the lab to apply it, so a test never passes under a
//! sandbox weaker than the shipped one without saying so.

pub mod check;
pub mod mounts;
pub mod seccomp;

use std::path::{Path, PathBuf};

/// The directives of `[Service]` that start or supervise the process. The lab
/// starts ftd itself and waits for its bus name as `Type=dbus` does, so these do
/// not limit anything and are read only to be known.
const PROCESS_MANAGEMENT: &[&str] = &[
    "Type",
    "BusName",
    "ExecStart",
    "ExecReload",
    "Restart",
    "RestartSec",
    "TimeoutStartSec",
    "TimeoutStopSec",
    "KillMode",
    "Environment",
];

/// A path directive's entry: `-` in front means "ignore it if it is missing".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathEntry {
    pub path: PathBuf,
    pub optional: bool,
}

/// `BindPaths=SOURCE[:DEST]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindEntry {
    pub source: PathBuf,
    pub dest: PathBuf,
    pub optional: bool,
}

/// `ProtectSystem=`: the values ftd's unit may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtectSystem {
    #[default]
    No,
    /// `/usr`, `/boot`, `/efi` read-only.
    Yes,
    /// ... and `/etc`.
    Full,
    /// Everything but `/dev`, `/proc`, `/sys` and the writable paths.
    Strict,
}

/// What the unit asks of ftd's process, after the unit and its drop-ins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    pub no_new_privileges: bool,
    pub protect_system: ProtectSystem,
    pub protect_home: bool,
    pub private_tmp: bool,
    pub private_devices: bool,
    pub protect_hostname: bool,
    pub protect_clock: bool,
    pub protect_kernel_tunables: bool,
    pub protect_kernel_modules: bool,
    pub protect_kernel_logs: bool,
    pub protect_control_groups: bool,
    /// Allowed families (`AF_UNIX`...); `None`: no restriction.
    pub address_families: Option<Vec<String>>,
    pub restrict_namespaces: bool,
    pub restrict_realtime: bool,
    pub restrict_suid_sgid: bool,
    pub lock_personality: bool,
    pub memory_deny_write_execute: bool,
    /// `SystemCallArchitectures=native`.
    pub native_only: bool,
    /// Allowed calls and `@groups`; `None`: no filter.
    pub syscall_allow: Option<Vec<String>>,
    /// What a filtered call returns (`SystemCallErrorNumber=`); `None`: killed.
    pub syscall_errno: Option<String>,
    /// `CAP_*` names; `None`: the bounding set is left alone.
    pub capability_bounding_set: Option<Vec<String>>,
    pub read_write_paths: Vec<PathEntry>,
    pub bind_paths: Vec<BindEntry>,
    /// `StateDirectory=` etc., relative to `/var/lib`, `/run`, `/etc`.
    pub state_directories: Vec<String>,
    pub runtime_directories: Vec<String>,
    pub configuration_directories: Vec<String>,
    /// The directives read, in order, for the report.
    pub seen: Vec<String>,
}

impl Sandbox {
    /// The unit's text with its drop-ins' after it, as systemd merges them.
    pub fn parse(unit: &str, drop_ins: &[&str]) -> Result<Sandbox, String> {
        let mut s = Sandbox::default();
        for (n, text) in std::iter::once(unit)
            .chain(drop_ins.iter().copied())
            .enumerate()
        {
            s.read(text).map_err(|e| {
                if n == 0 {
                    e
                } else {
                    format!("drop-in {n}: {e}")
                }
            })?;
        }
        Ok(s)
    }

    /// Read the path of a unit and its drop-ins.
    pub fn load(unit: &Path, drop_ins: &[PathBuf]) -> Result<Sandbox, String> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()))
        };
        let u = read(unit)?;
        let d = drop_ins
            .iter()
            .map(|p| read(p))
            .collect::<Result<Vec<_>, _>>()?;
        let d: Vec<&str> = d.iter().map(String::as_str).collect();
        Sandbox::parse(&u, &d).map_err(|e| format!("{}: {e}", unit.display()))
    }

    fn read(&mut self, text: &str) -> Result<(), String> {
        let mut section = String::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let at = |e: String| format!("line {}: {e}", i + 1);
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if line.ends_with('\\') {
                return Err(at(
                    "continued lines are not read by the lab's sandbox: join them".into(),
                ));
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_string();
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| at(format!("{line:?} is not KEY=VALUE")))?;
            if section == "Service" {
                self.directive(key.trim(), value.trim()).map_err(at)?;
            }
        }
        Ok(())
    }

    fn directive(&mut self, key: &str, v: &str) -> Result<(), String> {
        let flag = |v: &str| match v {
            "yes" | "true" | "on" | "1" => Ok(true),
            "no" | "false" | "off" | "0" => Ok(false),
            _ => Err(format!("{key}={v}: expected yes or no")),
        };
        let words = |v: &str| v.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        match key {
            k if PROCESS_MANAGEMENT.contains(&k) => return Ok(()),
            "NoNewPrivileges" => self.no_new_privileges = flag(v)?,
            "ProtectSystem" => {
                self.protect_system = match v {
                    "strict" => ProtectSystem::Strict,
                    "full" => ProtectSystem::Full,
                    _ if flag(v)? => ProtectSystem::Yes,
                    _ => ProtectSystem::No,
                }
            }
            "ProtectHome" => {
                if v == "read-only" || v == "tmpfs" {
                    return Err(format!(
                        "ProtectHome={v} is not applied by the lab's sandbox (yes or no)"
                    ));
                }
                self.protect_home = flag(v)?
            }
            "PrivateTmp" => self.private_tmp = flag(v)?,
            "PrivateDevices" => self.private_devices = flag(v)?,
            "ProtectHostname" => self.protect_hostname = flag(v)?,
            "ProtectClock" => self.protect_clock = flag(v)?,
            "ProtectKernelTunables" => self.protect_kernel_tunables = flag(v)?,
            "ProtectKernelModules" => self.protect_kernel_modules = flag(v)?,
            "ProtectKernelLogs" => self.protect_kernel_logs = flag(v)?,
            "ProtectControlGroups" => self.protect_control_groups = flag(v)?,
            "RestrictNamespaces" => self.restrict_namespaces = flag(v)?,
            "RestrictRealtime" => self.restrict_realtime = flag(v)?,
            "RestrictSUIDSGID" => self.restrict_suid_sgid = flag(v)?,
            "LockPersonality" => self.lock_personality = flag(v)?,
            "MemoryDenyWriteExecute" => self.memory_deny_write_execute = flag(v)?,
            "SystemCallArchitectures" => {
                if v != "native" {
                    return Err(format!(
                        "SystemCallArchitectures={v}: the lab's sandbox applies native only"
                    ));
                }
                self.native_only = true
            }
            "RestrictAddressFamilies" => {
                no_inversion(key, v)?;
                union(&mut self.address_families, v, words)
            }
            "SystemCallFilter" => {
                no_inversion(key, v)?;
                union(&mut self.syscall_allow, v, words)
            }
            "CapabilityBoundingSet" => {
                no_inversion(key, v)?;
                union(&mut self.capability_bounding_set, v, words)
            }
            "SystemCallErrorNumber" => self.syscall_errno = Some(v.to_string()),
            "ReadWritePaths" => {
                if v.is_empty() {
                    self.read_write_paths.clear();
                }
                for w in v.split_whitespace() {
                    self.read_write_paths.push(path_entry(key, w)?);
                }
            }
            "BindPaths" => {
                if v.is_empty() {
                    self.bind_paths.clear();
                }
                for w in v.split_whitespace() {
                    let (src, dest) = w.split_once(':').unwrap_or((w, w.trim_start_matches('-')));
                    let s = path_entry(key, src)?;
                    let d = path_entry(key, dest)?;
                    self.bind_paths.push(BindEntry {
                        source: s.path,
                        dest: d.path,
                        optional: s.optional,
                    });
                }
            }
            "StateDirectory" => self.state_directories.extend(words(v)),
            "RuntimeDirectory" => self.runtime_directories.extend(words(v)),
            "ConfigurationDirectory" => self.configuration_directories.extend(words(v)),
            other => {
                return Err(format!(
                    "{other}= is not known to the lab's sandbox (tests/lab/src/sandbox): teach \
                     the lab to apply it before the unit uses it"
                ))
            }
        }
        self.seen.push(key.to_string());
        Ok(())
    }

    /// Every path ftd may write to: `ReadWritePaths=`, `BindPaths=` targets, the
    /// state and runtime directories, and the private `/tmp`s.
    pub fn writable(&self) -> Vec<PathBuf> {
        let mut w: Vec<PathBuf> = self
            .read_write_paths
            .iter()
            .map(|e| e.path.clone())
            .collect();
        w.extend(self.bind_paths.iter().map(|b| b.dest.clone()));
        w.extend(
            self.state_directories
                .iter()
                .map(|d| Path::new("/var/lib").join(d)),
        );
        w.extend(
            self.runtime_directories
                .iter()
                .map(|d| Path::new("/run").join(d)),
        );
        if self.private_tmp {
            w.push("/tmp".into());
            w.push("/var/tmp".into());
        }
        w
    }

    /// The capabilities left in the bounding set: the unit's list less what
    /// the `Protect*=`/`PrivateDevices=` directives take away (as systemd does).
    pub fn capabilities(&self) -> Option<Vec<String>> {
        let mut caps = self.capability_bounding_set.clone()?;
        let mut gone: Vec<&str> = Vec::new();
        if self.private_devices {
            gone.extend(["CAP_MKNOD", "CAP_SYS_RAWIO"]);
        }
        if self.protect_kernel_modules {
            gone.push("CAP_SYS_MODULE");
        }
        if self.protect_kernel_logs {
            gone.push("CAP_SYSLOG");
        }
        if self.protect_clock {
            gone.extend(["CAP_SYS_TIME", "CAP_WAKE_ALARM"]);
        }
        caps.retain(|c| !gone.contains(&c.as_str()));
        Some(caps)
    }
}

/// An empty assignment resets a list; other lines add to it.
fn union(list: &mut Option<Vec<String>>, v: &str, words: impl Fn(&str) -> Vec<String>) {
    if v.is_empty() {
        *list = None;
    } else {
        let l = list.get_or_insert_with(Vec::new);
        for w in words(v) {
            if !l.contains(&w) {
                l.push(w);
            }
        }
    }
}

fn no_inversion(key: &str, v: &str) -> Result<(), String> {
    if v.starts_with('~') {
        return Err(format!(
            "{key}=~...: deny lists are not applied by the lab's sandbox; list what is allowed"
        ));
    }
    Ok(())
}

fn path_entry(key: &str, w: &str) -> Result<PathEntry, String> {
    let (optional, p) = match w.strip_prefix('-') {
        Some(p) => (true, p),
        None => (false, w.strip_prefix('+').unwrap_or(w)),
    };
    if !p.starts_with('/') || p.split('/').any(|c| c == "..") {
        return Err(format!(
            "{key}={w}: an absolute path without .. is expected"
        ));
    }
    Ok(PathEntry {
        path: PathBuf::from(p),
        optional,
    })
}

/// Apply `s` to this process (single-threaded, root), in systemd's order: the
/// mount namespace and file system view, then the capability bounding set,
/// `no_new_privs`, and the seccomp filters last. The caller then executes the
/// service.
pub fn apply(s: &Sandbox) -> Result<(), String> {
    let groups = seccomp::expand_groups(s)?;
    mounts::apply(s)?;
    if let Some(keep) = s.capabilities() {
        bound_capabilities(&keep)?;
    }
    if s.no_new_privileges {
        nix::sys::prctl::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}"))?;
    }
    seccomp::apply(s, &groups)
}

/// Drop every capability not in `keep` from the bounding set (and the ambient
/// set), so that ftd, executed as root, gets exactly `keep`.
fn bound_capabilities(keep: &[String]) -> Result<(), String> {
    use caps::{CapSet, Capability};
    let mut wanted = caps::CapsHashSet::new();
    for k in keep {
        let c: Capability = k
            .parse()
            .map_err(|_| format!("CapabilityBoundingSet: {k} is not a capability"))?;
        wanted.insert(c);
    }
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| format!("clearing ambient capabilities: {e}"))?;
    let bounding =
        caps::read(None, CapSet::Bounding).map_err(|e| format!("reading the bounding set: {e}"))?;
    for c in bounding {
        if !wanted.contains(&c) {
            caps::drop(None, CapSet::Bounding, c).map_err(|e| format!("dropping {c}: {e}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
