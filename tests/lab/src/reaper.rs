//! The reaper: a small shell process, started with the lab in its own process
//! group, that tears the lab down when the lab's owner goes away for *any* reason.
//!
//! The owner holds the write end of the reaper's stdin. A normal [`Drop`] closes it;
//! a panic unwinds into that same `Drop`; a SIGKILL or Ctrl-C of the test closes it
//! too, because the kernel closes a dead process's files. On EOF the reaper kills
//! every process in the lab's namespaces (libvirtd, virtlogd, QEMU, dbus-daemon,
//! ftd, ...), deletes the namespaces and removes the lab's directory. Being in its
//! own process group, it does not receive the terminal's SIGINT itself.

use crate::error::{LabError, Result};
use crate::wait::{wait_until, Look};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[derive(Debug)]
pub struct Reaper {
    child: Child,
}

/// The clean-up script; `$1` is the namespace prefix (`ftl-<id>-`), `$2` the lab
/// directory, `$3` "keep" to keep the directory for a post-mortem.
const SCRIPT: &str = r#"
prefix="$1"; dir="$2"; keep="$3"
cat >/dev/null
spaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep "^$prefix" ; }
i=0
while [ $i -lt 100 ]; do
  left=0
  for ns in $(spaces); do
    pids=$(ip netns pids "$ns" 2>/dev/null)
    if [ -n "$pids" ]; then kill -9 $pids 2>/dev/null; left=1; fi
  done
  [ $left = 0 ] && break
  i=$((i+1)); sleep 0.05
done
for ns in $(spaces); do ip netns del "$ns" 2>/dev/null; done
if [ "$keep" != keep ]; then rm -rf "$dir"; fi
"#;

impl Reaper {
    /// Start the reaper for namespaces named `prefix*` and the directory `dir`.
    pub fn start(prefix: &str, dir: &Path, keep_dir: bool) -> Result<Reaper> {
        let mut c = Command::new("sh");
        c.args(["-c", SCRIPT, "ftvirt-lab-reaper", prefix])
            .arg(dir)
            .arg(if keep_dir { "keep" } else { "remove" })
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let child = c.spawn().map_err(|source| LabError::Spawn {
            cmd: "sh (lab reaper)".into(),
            source,
        })?;
        Ok(Reaper { child })
    }

    /// Close the pipe and wait (bounded) for the reaper to finish its clean-up.
    pub fn finish(mut self, timeout: Duration) -> Result<()> {
        if let Some(mut s) = self.child.stdin.take() {
            let _ = s.flush();
        }
        wait_until(
            "the lab reaper to finish",
            timeout,
            Duration::from_millis(20),
            || match self.child.try_wait() {
                Ok(Some(_)) => Look::Ready(()),
                Ok(None) => Look::Seen("still cleaning up".into()),
                Err(e) => Look::Failed(format!("waiting for the lab reaper: {e}")),
            },
        )
    }
}
