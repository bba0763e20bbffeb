//! The lab's error type: every failure names what was being done and what to check.
//! Its `Debug` is its message (which includes its cause), so that a test's `.unwrap()` or
//! `.expect()` on a lab call prints the message and not the enum.

use std::path::PathBuf;

#[derive(thiserror::Error)]
pub enum LabError {
    /// `{cmd}` failed ({status}): {stderr}
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    /// Could not start a program (is it installed? run `cargo xtask setup`).
    #[error("could not start `{cmd}` (is it installed? `cargo xtask setup` installs everything): {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    /// Waited too long for something to become ready.
    #[error("timed out after {secs:.1}s waiting for {what}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Timeout {
        what: String,
        secs: f64,
        detail: String,
    },
    /// A wait ended early: what it waited for can no longer happen.
    #[error("gave up after {secs:.1}s waiting for {what}: {detail}")]
    WaitFailed {
        what: String,
        secs: f64,
        detail: String,
    },
    /// This process cannot boot a lab (not root, or no set-up artifacts).
    #[error("booting a lab needs root and `cargo xtask setup`: {0}")]
    NotALabHost(String),
    /// A file operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The set-up artifacts are missing or unreadable.
    #[error("lab artifacts: {0} (run `cargo xtask setup` first)")]
    Artifacts(String),
    /// The guest's service answered something unexpected, or not at all.
    #[error("guest service: {0}")]
    Guest(String),
    /// The lab's certificates (for the etcd witness) could not be made.
    #[error("making the lab's TLS files: {0}")]
    Certs(#[source] ftd::certs::CertsError),
    /// The lab's etcd witness answered something unexpected.
    #[error("etcd witness: {0}")]
    Etcd(String),
    /// The lab was asked for something it cannot do.
    #[error("lab: {0}")]
    Usage(String),
}

impl std::fmt::Debug for LabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every variant's message already ends with its cause.
        write!(f, "{self}")
    }
}

pub type Result<T, E = LabError> = std::result::Result<T, E>;

impl LabError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LabError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
