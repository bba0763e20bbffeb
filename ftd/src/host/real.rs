//! The real [`HostOs`]: `qemu-img`, `ss -K` ([`crate::sockets`]), `ip link`, a
//! TCP connect and `/proc/meminfo`, each bounded so that none can hold a domain task for long (the
//! tools' limits are in [`super::tool`]). Images are QEMU's user's from the
//! start: the file is made 0600 and given to that user before `qemu-img` writes
//! into it, so no moment exists when another user could open it.

use super::tool::{IP, QEMU_IMG};
use super::{HostOs, QemuUser};
use std::ffi::OsStr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

/// The host's own tools.
#[derive(Debug, Clone)]
pub struct RealOs {
    /// Who QEMU runs as: the owner of every image made here.
    qemu: QemuUser,
}

impl RealOs {
    pub fn new(qemu: QemuUser) -> RealOs {
        RealOs { qemu }
    }

    /// `path`, created empty if missing, QEMU's user's and 0600.
    fn prepare(&self, path: &Path) -> Result<(), String> {
        if let Some(dir) = path.parent() {
            self.qemu.create_dirs(dir)?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(super::qemu_user::FILE_MODE)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(e) if e == nix::errno::Errno::EROFS as i32 => read_only(path),
                _ => format!("creating {}: {e}", path.display()),
            })?;
        self.qemu.own_file(path)
    }
}

/// The kernel's memory counters.
const MEMINFO: &str = "/proc/meminfo";

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
fn mem_available(meminfo: &str) -> Result<u64, String> {
    let line = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .ok_or_else(|| format!("{MEMINFO} has no MemAvailable line (Linux 3.14 or later has)"))?;
    let kib = match line.split_whitespace().collect::<Vec<_>>()[..] {
        [n, "kB"] => n.parse::<u64>().ok(),
        _ => None,
    };
    kib.and_then(|k| k.checked_mul(1024))
        .ok_or_else(|| format!("{MEMINFO}: unreadable MemAvailable:{line}"))
}

/// A file ftd must make where it may not write: under the shipped unit's
/// `ProtectSystem=strict`, a directory not in `ReadWritePaths=` (review 8.4: the
/// pivot's image beside a disk in a directory of the admin's choosing).
fn read_only(path: &Path) -> String {
    let dir = path.parent().unwrap_or(path);
    format!(
        "cannot create {}: {} is read-only for ftd; if ftd runs under its systemd unit, \
         add the directory to ReadWritePaths= (systemctl edit ftd) and restart ftd",
        path.display(),
        dir.display()
    )
}

#[async_trait::async_trait]
impl HostOs for RealOs {
    async fn create_image(&self, path: &Path, size: u64) -> Result<(), String> {
        let (me, p) = (self.clone(), path.to_path_buf());
        tokio::task::spawn_blocking(move || me.prepare(&p))
            .await
            .map_err(|e| format!("creating {}: {e}", path.display()))??;
        let size = size.to_string();
        let out = QEMU_IMG
            .run([
                OsStr::new("create"),
                OsStr::new("-q"),
                OsStr::new("-f"),
                OsStr::new("qcow2"),
                path.as_os_str(),
                OsStr::new(&size),
            ])
            .await
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "qemu-img create {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }

    async fn cut_sockets(&self, peer: &str, ports: &[u16]) -> Result<usize, String> {
        crate::sockets::cut(peer, ports).await
    }

    async fn set_link(&self, dev: &str, up: bool) -> Result<(), String> {
        let state = if up { "up" } else { "down" };
        let out = IP
            .run(["link", "set", "dev", dev, state])
            .await
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "ip link set dev {dev} {state}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }

    async fn probe_tcp(&self, addr: &str, within: Duration) -> Result<(), String> {
        match tokio::time::timeout(within, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("{addr} refuses connections: {e}")),
            Err(_) => Err(format!(
                "{addr} did not answer within {within:?} (is the peer host up?)"
            )),
        }
    }

    async fn mem_available(&self) -> Result<u64, String> {
        let text = tokio::fs::read_to_string(MEMINFO)
            .await
            .map_err(|e| format!("reading {MEMINFO}: {e}"))?;
        mem_available(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_available_is_read_in_bytes_and_a_bad_line_is_an_error() {
        let text = "MemTotal:       24684032 kB\nMemFree:         5748164 kB\n\
                    MemAvailable:   22830080 kB\nBuffers:          123 kB\n";
        assert_eq!(mem_available(text), Ok(22830080 * 1024));
        let e = mem_available("MemTotal: 1 kB\n").unwrap_err();
        assert!(e.contains("no MemAvailable"), "{e}");
        for bad in ["MemAvailable: x kB", "MemAvailable: 12 MB", "MemAvailable:"] {
            let e = mem_available(bad).unwrap_err();
            assert!(e.contains("unreadable"), "{bad}: {e}");
        }
        let e = mem_available("MemAvailable: 18446744073709551615 kB").unwrap_err();
        assert!(e.contains("unreadable"), "{e}");
    }

    #[tokio::test]
    async fn this_hosts_meminfo_is_readable() {
        let n = RealOs::new(crate::host::QemuUser::current())
            .mem_available()
            .await
            .unwrap();
        assert!(n > 0);
    }
}
