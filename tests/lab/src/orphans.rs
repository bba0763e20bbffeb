//! Prompt reaping of the lab's orphans, as systemd does on a real host.
//!
//! The lab's daemons fork away from their parents: libvirtd, virtlogd and
//! dbus-daemon daemonize, and libvirtd double-forks every QEMU. Their orphans go
//! to the nearest *child subreaper* among their ancestors, else to PID 1. On
//! machines where PID 1 is not an init that reaps at once (this project's CI
//! sandbox reaps 1 to 2 s late), a killed QEMU stays a zombie meanwhile, and
//! libvirt, which waits for the process to be gone, reports the domain shut off
//! only then: 2 s after a `kill -9`, against milliseconds on a systemd host.
//!
//! So the process that starts a lab becomes a child subreaper, and a thread reaps
//! its adopted zombies at once. Only those: an orphan is told from the process's
//! own children (which their owners wait for) by its session, since every
//! daemon starts one of its own (`setsid`) and the lab starts nothing that way.

use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::{getsid, Pid};
use std::sync::Once;
use std::time::Duration;

/// How often adopted zombies are looked for.
const PERIOD: Duration = Duration::from_millis(20);

/// Make this process the subreaper of everything it starts, and reap adopted
/// orphans from now on (once per process; a failure only costs the promptness).
pub fn adopt() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            eprintln!(
                "ftvirt-lab: cannot become a child subreaper ({e}); orphans are reaped by PID 1"
            );
            return;
        }
        let me = std::process::id();
        let Ok(sid) = getsid(None) else { return };
        let spawned = std::thread::Builder::new()
            .name("lab-orphans".into())
            .spawn(move || loop {
                for pid in children(me) {
                    if adopted_zombie(pid, sid.as_raw()) {
                        let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
                    }
                }
                std::thread::sleep(PERIOD);
            });
        if let Err(e) = spawned {
            eprintln!("ftvirt-lab: cannot start the orphan reaper ({e})");
        }
    });
}

/// Children of process `me` (every thread's `children` list).
fn children(me: u32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{me}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// Is `pid` a zombie of another session than `sid` (an adopted daemon)?
fn adopted_zombie(pid: i32, sid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| parse_stat(&s))
        .is_some_and(|(state, session)| state == 'Z' && session != sid)
}

/// (state, session) from `/proc/PID/stat`; the command name may hold spaces
/// and parentheses, so fields are counted from the last `)`.
fn parse_stat(s: &str) -> Option<(char, i32)> {
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.first()?.chars().next()?, f.get(3)?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_give_state_and_session() {
        let s = "4242 (qemu-system-x86) Z 1 4240 4240 0 -1 4228164 0 0 0 0";
        assert_eq!(parse_stat(s), Some(('Z', 4240)));
        let odd = "7 (a) b) (c) S 1 7 9 0";
        assert_eq!(parse_stat(odd), Some(('S', 9)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn an_orphaned_daemon_is_reaped_at_once() {
        adopt();
        // A daemon-like grandchild: its own session, its parent gone at once.
        let out = std::process::Command::new("setsid")
            .args(["--fork", "sh", "-c", "echo $$; exec sleep 0.2"])
            .output()
            .expect("setsid");
        let pid: i32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("pid");
        let t0 = std::time::Instant::now();
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(1),
                "the orphan {pid} was not reaped 0.8 s after it exited"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
