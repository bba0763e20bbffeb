//! The unit's seccomp filters, built with libseccomp as systemd builds them:
//! an allow-list from `SystemCallFilter=` (its `@groups` expanded by this
//! machine's `systemd-analyze syscall-filter`, so the list is the one systemd on
//! the same machine would use) returning `SystemCallErrorNumber=`, with foreign
//! architectures killed (`SystemCallArchitectures=native`); and one filter of
//! argument checks: socket families (`RestrictAddressFamilies=`), writable and
//! executable memory (`MemoryDenyWriteExecute=`), namespaces, real-time
//! scheduling, set-uid/gid modes, personality, and the clock, module, log and
//! hostname calls the `Protect*=` directives take away.

use super::Sandbox;
use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use std::collections::BTreeSet;
use std::process::Command;

/// Address families by the names systemd takes.
const FAMILIES: &[(&str, i32)] = &[
    ("AF_UNIX", libc::AF_UNIX),
    ("AF_INET", libc::AF_INET),
    ("AF_INET6", libc::AF_INET6),
    ("AF_NETLINK", libc::AF_NETLINK),
    ("AF_PACKET", libc::AF_PACKET),
    ("AF_VSOCK", libc::AF_VSOCK),
];

/// One past the highest family the kernel knows (`AF_MAX`).
const AF_MAX: i32 = 46;

/// The system calls `SystemCallFilter=` allows, its groups expanded; empty when
/// there is no filter.
pub fn expand_groups(s: &Sandbox) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    let Some(allow) = &s.syscall_allow else {
        return Ok(out);
    };
    let mut todo: Vec<String> = allow.clone();
    // systemd always allows these with an allow-list.
    todo.extend(
        [
            "@default",
            "execve",
            "exit",
            "exit_group",
            "getrlimit",
            "rt_sigreturn",
            "sigreturn",
        ]
        .map(String::from),
    );
    let mut groups = BTreeSet::new();
    while let Some(e) = todo.pop() {
        if e.starts_with('@') {
            if groups.insert(e.clone()) {
                todo.extend(group(&e)?);
            }
        } else {
            out.insert(e);
        }
    }
    Ok(out)
}

/// `systemd-analyze syscall-filter @GROUP`: its calls and nested groups.
fn group(name: &str) -> Result<Vec<String>, String> {
    let o = Command::new("systemd-analyze")
        .args(["syscall-filter", "--no-pager", name])
        .output()
        .map_err(|e| format!("running systemd-analyze (package systemd): {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "systemd-analyze syscall-filter {name}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(parse_group(&String::from_utf8_lossy(&o.stdout)))
}

/// The entries of one group as `systemd-analyze` prints it: the group's name,
/// then its members indented, comments after `#`.
pub fn parse_group(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Load the filters into this process (inherited by everything it executes).
pub fn apply(s: &Sandbox, allowed: &BTreeSet<String>) -> Result<(), String> {
    fn err(what: &str) -> impl Fn(libseccomp::error::SeccompError) -> String + '_ {
        move |e| format!("seccomp, {what}: {e}")
    }
    let mut f = ScmpFilterContext::new(ScmpAction::Allow).map_err(err("restrictions"))?;
    if s.native_only {
        f.set_act_badarch(ScmpAction::KillProcess)
            .map_err(err("architectures"))?;
    }
    let eperm = ScmpAction::Errno(libc::EPERM);
    let mut rule =
        |action: ScmpAction, call: &str, conds: &[ScmpArgCompare]| -> Result<(), String> {
            let Ok(sys) = ScmpSyscall::from_name(call) else {
                return Ok(());
            };
            if conds.is_empty() {
                f.add_rule(action, sys)
            } else {
                f.add_rule_conditional(action, sys, conds)
            }
            .map(|_| ())
            .map_err(|e| format!("seccomp, {call}: {e}"))
        };
    let eq = |arg: u32, v: u64| ScmpArgCompare::new(arg, ScmpCompareOp::Equal, v);
    let has =
        |arg: u32, bits: u64| ScmpArgCompare::new(arg, ScmpCompareOp::MaskedEqual(bits), bits);

    if let Some(families) = &s.address_families {
        let mut ok = Vec::new();
        for name in families {
            let (_, n) = FAMILIES.iter().find(|(f, _)| f == name).ok_or_else(|| {
                format!("RestrictAddressFamilies: {name} is not known to the lab's sandbox")
            })?;
            ok.push(*n);
        }
        let no = ScmpAction::Errno(libc::EAFNOSUPPORT);
        for fam in (0..AF_MAX).filter(|f| !ok.contains(f)) {
            rule(no, "socket", &[eq(0, fam as u64)])?;
        }
        rule(
            no,
            "socket",
            &[ScmpArgCompare::new(
                0,
                ScmpCompareOp::GreaterEqual,
                AF_MAX as u64,
            )],
        )?;
    }
    if s.memory_deny_write_execute {
        let wx = (libc::PROT_WRITE | libc::PROT_EXEC) as u64;
        rule(eperm, "mmap", &[has(2, wx)])?;
        rule(eperm, "mprotect", &[has(2, libc::PROT_EXEC as u64)])?;
        rule(eperm, "pkey_mprotect", &[has(2, libc::PROT_EXEC as u64)])?;
        rule(eperm, "shmat", &[has(2, libc::SHM_EXEC as u64)])?;
    }
    if s.restrict_namespaces {
        let ns = [
            libc::CLONE_NEWNS,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWCGROUP,
            libc::CLONE_NEWTIME,
        ];
        for flag in ns {
            rule(eperm, "unshare", &[has(0, flag as u64)])?;
            rule(eperm, "clone", &[has(0, flag as u64)])?;
        }
        rule(eperm, "setns", &[])?;
        // Its flags are behind a pointer: callers fall back to clone.
        rule(ScmpAction::Errno(libc::ENOSYS), "clone3", &[])?;
    }
    if s.restrict_realtime {
        // The policy without SCHED_RESET_ON_FORK.
        let policy = 0xffff_ffff & !(libc::SCHED_RESET_ON_FORK as u64);
        for p in [
            libc::SCHED_FIFO,
            libc::SCHED_RR,
            6, /* SCHED_DEADLINE */
        ] {
            rule(
                eperm,
                "sched_setscheduler",
                &[ScmpArgCompare::new(
                    1,
                    ScmpCompareOp::MaskedEqual(policy),
                    p as u64,
                )],
            )?;
        }
    }
    if s.restrict_suid_sgid {
        for bit in [libc::S_ISUID as u64, libc::S_ISGID as u64] {
            rule(eperm, "chmod", &[has(1, bit)])?;
            rule(eperm, "fchmod", &[has(1, bit)])?;
            rule(eperm, "fchmodat", &[has(2, bit)])?;
            rule(eperm, "creat", &[has(1, bit)])?;
            rule(eperm, "open", &[has(1, libc::O_CREAT as u64), has(2, bit)])?;
            rule(
                eperm,
                "openat",
                &[has(2, libc::O_CREAT as u64), has(3, bit)],
            )?;
            rule(eperm, "mkdir", &[has(1, bit)])?;
            rule(eperm, "mkdirat", &[has(2, bit)])?;
            rule(eperm, "mknod", &[has(1, bit)])?;
            rule(eperm, "mknodat", &[has(2, bit)])?;
        }
    }
    if s.lock_personality {
        // As systemd: any other persona is refused (libseccomp takes one
        // comparison per argument). SAFETY: personality(0xffffffff) only reads.
        let current = unsafe { libc::personality(0xffff_ffff) } as u64;
        rule(
            eperm,
            "personality",
            &[ScmpArgCompare::new(0, ScmpCompareOp::NotEqual, current)],
        )?;
    }
    let mut deny = Vec::new();
    if s.protect_clock {
        deny.extend([
            "clock_settime",
            "clock_adjtime",
            "adjtimex",
            "settimeofday",
            "stime",
        ]);
    }
    if s.protect_kernel_modules {
        deny.extend(["init_module", "finit_module", "delete_module"]);
    }
    if s.protect_kernel_logs {
        deny.push("syslog");
    }
    if s.protect_hostname {
        deny.extend(["sethostname", "setdomainname"]);
    }
    for call in deny {
        rule(eperm, call, &[])?;
    }
    f.load().map_err(err("loading the restrictions"))?;
    drop(f);
    // Last, as systemd does: the allow-list has no seccomp() in it.
    if s.syscall_allow.is_some() {
        let errno = match s.syscall_errno.as_deref() {
            None => ScmpAction::KillProcess,
            Some(name) => ScmpAction::Errno(errno_by_name(name)?),
        };
        let mut f = ScmpFilterContext::new(errno).map_err(err("allow-list"))?;
        if s.native_only {
            f.set_act_badarch(ScmpAction::KillProcess)
                .map_err(err("architectures"))?;
        }
        for name in allowed {
            // Calls of other architectures (arm_fadvise64_64...) are unknown here.
            if let Ok(call) = ScmpSyscall::from_name(name) {
                f.add_rule(ScmpAction::Allow, call).map_err(err(name))?;
            }
        }
        f.load().map_err(err("loading the allow-list"))?;
    }
    Ok(())
}

/// `EPERM` and the few others a unit may name.
fn errno_by_name(name: &str) -> Result<i32, String> {
    match name {
        "EPERM" => Ok(libc::EPERM),
        "EACCES" => Ok(libc::EACCES),
        "ENOSYS" => Ok(libc::ENOSYS),
        n => n
            .parse()
            .map_err(|_| format!("SystemCallErrorNumber={n} is not known to the lab's sandbox")),
    }
}
