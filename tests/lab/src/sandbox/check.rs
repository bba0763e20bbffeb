//! Is a running process under the sandbox? What the lab checks of ftd's process
//! from outside ([`crate::Host::check_posture`]): its capability bounding set
//! is the unit's, `no_new_privs` is set, seccomp filters are loaded, it has a
//! mount namespace of its own, and `/etc` is read-only in it.

use super::{ProtectSystem, Sandbox};
use std::path::Path;

/// Every way process `pid` differs from what `s` asks; empty when it is under it.
pub fn process(pid: u32, s: &Sandbox, outside_mnt_ns: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let status = match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(t) => t,
        Err(e) => return vec![format!("pid {pid}: reading its status: {e}")],
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .unwrap_or("")
            .to_string()
    };
    if let Some(keep) = s.capabilities() {
        let want: u64 = keep
            .iter()
            .filter_map(|c| c.parse::<caps::Capability>().ok())
            .map(|c| 1u64 << c.index())
            .sum();
        let have = u64::from_str_radix(&field("CapBnd"), 16).unwrap_or(u64::MAX);
        if have != want {
            problems.push(format!(
                "pid {pid}: capability bounding set {have:016x}, the unit's is {want:016x}"
            ));
        }
    }
    if s.no_new_privileges && field("NoNewPrivs") != "1" {
        problems.push(format!("pid {pid}: no_new_privs is not set"));
    }
    if s.syscall_allow.is_some() && field("Seccomp") != "2" {
        problems.push(format!(
            "pid {pid}: no seccomp filter (Seccomp: {})",
            field("Seccomp")
        ));
    }
    let ns = |p: &Path| {
        std::fs::read_link(p)
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let own = ns(Path::new(&format!("/proc/{pid}/ns/mnt")));
    if own.is_empty() || own == ns(outside_mnt_ns) {
        problems.push(format!("pid {pid}: no mount namespace of its own ({own})"));
    }
    if s.protect_system == ProtectSystem::Strict {
        // Through the process's own root: its mounts, as it sees them.
        let probe = format!("/proc/{pid}/root/etc/.ftvirt-sandbox-probe");
        match std::fs::File::create(&probe) {
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => {}
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
                problems.push(format!(
                    "pid {pid}: /etc is writable (ProtectSystem=strict)"
                ));
            }
            Err(e) => problems.push(format!("pid {pid}: probing /etc: {e}")),
        }
    }
    problems
}
