//! `<run-dir>/ftd.pid`, locked (`flock`) for as long as ftd runs: a second ftd on
//! the same host stops at once, naming the first one's pid, instead of both taking
//! up the same domains and fighting over them. The lock goes with the process, so a
//! killed ftd leaves nothing to clean up.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

/// The held lock (released when dropped, or when the process ends).
pub type PidLock = nix::fcntl::Flock<File>;

/// Lock `dir/ftd.pid` (creating `dir`) and write this process's pid into it.
pub fn lock(dir: &Path) -> Result<PidLock, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let path = dir.join("ftd.pid");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    let mut lock = match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
    {
        Ok(l) => l,
        Err((mut f, _)) => {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            return Err(format!(
                "another ftd (pid {}) runs with run-dir {}: stop it first, or give this one \
                 its own run-dir",
                pid.trim(),
                dir.display()
            ));
        }
    };
    let write = |l: &mut PidLock| -> std::io::Result<()> {
        l.set_len(0)?;
        l.rewind()?;
        writeln!(l, "{}", std::process::id())
    };
    write(&mut lock).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_ftd_on_the_same_run_dir_is_refused_until_the_first_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let first = lock(&run).unwrap();
        let pid = std::fs::read_to_string(run.join("ftd.pid")).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        let e = lock(&run).unwrap_err();
        assert!(
            e.contains(&format!("another ftd (pid {})", std::process::id())),
            "{e}"
        );
        assert!(e.contains("its own run-dir"), "{e}");
        drop(first);
        lock(&run).expect("free again once the first one is gone");
    }
}
