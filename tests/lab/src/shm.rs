//! libqb's shared memory left by the lab's corosync: every IPC connection to
//! corosync (ftd's arbiter client, qdevice, the tools) makes a directory
//! `/dev/shm/qb-<server pid>-<client pid>-<fd>-<random>` of ring buffers, which
//! the server removes when the connection closes. A host killed like a power cut
//! closes nothing, so each killed corosync leaves its connections' buffers
//! (and its flight recorder, `qb-corosync-<pid>-blackbox-*`) behind, megabytes each, in RAM; a matrix run left 750 MiB. The lab sweeps
//! those whose two processes are both gone when it is torn down.

use std::path::Path;

/// Where libqb keeps its buffers.
const SHM: &str = "/dev/shm";

/// Remove every `qb-<pid>-<pid>-...` entry of `dir` whose two processes are both
/// gone; returns how many were removed.
pub fn sweep(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((a, b)) = pids(&name) else { continue };
        if alive(a) || alive(b) {
            continue;
        }
        let gone = if e.path().is_dir() {
            std::fs::remove_dir_all(e.path())
        } else {
            std::fs::remove_file(e.path())
        };
        if gone.is_ok() {
            removed += 1;
        }
    }
    removed
}

/// After a lab: [`sweep`] of `/dev/shm`.
pub fn sweep_dead_qb() -> usize {
    sweep(Path::new(SHM))
}

/// The two pids of a libqb buffer directory's name, or twice the pid of a
/// daemon's flight recorder (`qb-corosync-<pid>-blackbox-data`).
fn pids(name: &str) -> Option<(u32, u32)> {
    let f: Vec<&str> = name.strip_prefix("qb-")?.split('-').collect();
    match f.as_slice() {
        [a, b, _, ..] if a.parse::<u32>().is_ok() => Some((a.parse().ok()?, b.parse().ok()?)),
        [daemon, pid, "blackbox", _] if daemon.parse::<u32>().is_err() => {
            let p = pid.parse().ok()?;
            Some((p, p))
        }
        _ => None,
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_buffers_of_two_dead_processes_go() {
        let t = tempfile::tempdir().unwrap();
        let me = std::process::id();
        // pid_max is at most 2^22: these are never alive.
        let dead = 4_999_999;
        for n in [
            format!("qb-{dead}-{dead}-30-abc"),
            format!("qb-{me}-{dead}-31-def"),
            format!("qb-{dead}-{me}-32-ghi"),
            "qb-corosync-blackbox".into(),
            format!("qb-corosync-{me}-blackbox-data"),
            "other".into(),
        ] {
            std::fs::create_dir(t.path().join(&n)).unwrap();
            std::fs::write(t.path().join(n).join("qb-request-cmap-data"), "x").unwrap();
        }
        std::fs::write(
            t.path().join(format!("qb-corosync-{dead}-blackbox-data")),
            "x",
        )
        .unwrap();
        assert_eq!(sweep(t.path()), 2);
        let mut left: Vec<String> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left.len(), 5, "{left:?}");
        assert!(!left.contains(&format!("qb-{dead}-{dead}-30-abc")));
    }
}
