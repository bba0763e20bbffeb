//! The host's command-line tools that ftd runs, and the one rule for running them:
//! every run has a time limit. A tool that overruns it is killed (tokio's
//! `kill_on_drop`: SIGKILL, then reaped in the background) and the caller gets
//! [`RunError::TimedOut`], which names the command and the limit. A tool stuck on a
//! hung filesystem or a wedged netlink socket so costs a domain task at most its
//! limit, never the task itself.
//!
//! Every tool ftd runs is a constant here, with its limit; nothing else in ftd
//! spawns a process ([`RealOs`](super::RealOs) and [`crate::sockets`] use these).

use std::ffi::OsStr;
use std::process::Output;
use std::time::Duration;
use tokio::process::Command;

/// A program ftd runs, the package that ships it, and how long one run may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tool {
    pub program: &'static str,
    /// Named when the program cannot be started.
    pub package: &'static str,
    pub limit: Duration,
}

/// `qemu-img create`: an empty qcow2 is a header written in milliseconds; the
/// limit allows for a slow or remote filesystem under the overlay directory.
pub const QEMU_IMG: Tool = Tool {
    program: "qemu-img",
    package: "qemu-utils",
    limit: Duration::from_secs(30),
};

/// `ip link set` (fencing a guest's host-side NICs): one netlink request.
pub const IP: Tool = Tool {
    program: "ip",
    package: "iproute2",
    limit: Duration::from_secs(5),
};

/// `ss -K` (destroying QEMU's sockets to a lost peer): answers in milliseconds.
pub const SS: Tool = Tool {
    program: "ss",
    package: "iproute2",
    limit: Duration::from_secs(5),
};

/// Why a tool gave no output. A tool that ran and failed is not an error here:
/// its exit status and stderr are in the [`Output`], for the caller to word.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The program could not be started.
    #[error("cannot run `{command}`: {source} (is {package} installed?)")]
    Spawn {
        command: String,
        package: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The program ran past its limit and was killed.
    #[error("`{command}` did not finish within {limit:?}; it was killed")]
    TimedOut { command: String, limit: Duration },
}

impl Tool {
    /// Run the tool with `args`, stdin closed, capturing stdout and stderr.
    pub async fn run<I, S>(&self, args: I) -> Result<Output, RunError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(self.program);
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let command = self.describe(&cmd);
        match tokio::time::timeout(self.limit, cmd.output()).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(source)) => Err(RunError::Spawn {
                command,
                package: self.package,
                source,
            }),
            // Dropping the `output()` future dropped the child: killed.
            Err(_) => Err(RunError::TimedOut {
                command,
                limit: self.limit,
            }),
        }
    }

    /// The command line, as an error quotes it.
    fn describe(&self, cmd: &Command) -> String {
        let std = cmd.as_std();
        std::iter::once(self.program.to_string())
            .chain(std.get_args().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn sh(limit: Duration) -> Tool {
        Tool {
            program: "sh",
            package: "dash",
            limit,
        }
    }

    /// Is process `pid` gone (or a zombie: killed, not yet reaped)?
    fn dead(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            // "pid (comm) STATE ...": the state follows the last ')'.
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    #[tokio::test]
    async fn an_overrun_is_killed_and_named_with_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
        let t = Instant::now();
        let e = sh(Duration::from_millis(300))
            .run(["-c", &script])
            .await
            .unwrap_err();
        let took = t.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "returned after {took:?}, not at its limit"
        );
        assert!(matches!(e, RunError::TimedOut { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!("`sh -c {script}` did not finish within 300ms; it was killed")
        );
        // The child (sleep, exec'd in the shell's place) was killed, not left behind.
        let pid: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !dead(pid) {
            assert!(Instant::now() < deadline, "pid {pid} still runs");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_run_within_its_limit_returns_status_and_output() {
        let out = sh(Duration::from_secs(10))
            .run(["-c", "echo out; echo err >&2; exit 3"])
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    }

    #[tokio::test]
    async fn a_missing_program_names_its_package() {
        let t = Tool {
            program: "ftvirt-no-such-tool",
            package: "no-such-package",
            limit: Duration::from_secs(5),
        };
        let e = t.run(["x"]).await.unwrap_err();
        assert!(matches!(e, RunError::Spawn { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.starts_with("cannot run `ftvirt-no-such-tool x`: ")
                && text.ends_with("(is no-such-package installed?)"),
            "{text}"
        );
    }
}
