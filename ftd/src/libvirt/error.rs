//! The libvirt layer's errors, each saying what failed and what to check, and
//! how a `virt` error becomes one (a broken connection told apart from a failed
//! call, a QEMU whose monitor is gone).

/// Errors of the libvirt layer; each says what failed and what to check.
#[derive(Debug, thiserror::Error)]
pub enum LibvirtError {
    /// Cannot reach libvirtd.
    #[error("cannot connect to libvirt at {uri}: {msg} (is libvirtd running on this host?)")]
    Connect { uri: String, msg: String },
    /// No such domain on this host.
    #[error("domain {0:?} is not defined on this host (see `virsh list --all`)")]
    NoDomain(String),
    /// A libvirt call failed.
    #[error("libvirt {op} of domain {domain:?} failed: {msg}")]
    Op {
        op: &'static str,
        domain: String,
        msg: String,
    },
    /// The connection to libvirtd broke (libvirtd restarted or died).
    #[error("lost the connection to libvirtd during {op} of domain {domain:?}: {msg}")]
    Disconnected {
        op: &'static str,
        domain: String,
        msg: String,
    },
    /// A libvirt call did not return in time.
    #[error("libvirt {op} of domain {domain:?} did not answer within {secs:.1}s")]
    Timeout {
        op: &'static str,
        domain: String,
        secs: f64,
    },
    /// QEMU's monitor is closed: its process is gone (libvirt says so at once,
    /// but reports the domain shut off only once it cleaned up, seconds later).
    #[error("the QEMU of domain {domain:?} is gone: {msg}")]
    MonitorGone { domain: String, msg: String },
    /// QEMU answered a QMP command with an error.
    #[error("QMP {cmd} on domain {domain:?} failed: {class}: {desc}")]
    Qmp {
        cmd: String,
        domain: String,
        class: String,
        desc: String,
    },
}

pub type Result<T, E = LibvirtError> = std::result::Result<T, E>;

/// Does libvirt's message for a failed monitor command say that QEMU's monitor
/// is closed (the process exited or was killed)? libvirt 9's words: "Unable to
/// read from monitor: Connection reset by peer", "End of file from qemu
/// monitor", and once it noticed, "domain is not running".
pub fn monitor_gone(msg: &str) -> bool {
    msg.contains("read from monitor")
        || msg.contains("End of file from qemu monitor")
        || msg.contains("domain is not running")
}

pub(super) fn op_err(op: &'static str, domain: &str, e: virt::error::Error) -> LibvirtError {
    use virt::error::{ErrorDomain, ErrorNumber};
    let broken = e.domain().is(ErrorDomain::Rpc)
        || e.code().is(ErrorNumber::NoConnect)
        || (e.code().is(ErrorNumber::SystemError) && e.domain().is(ErrorDomain::Rpc));
    if broken {
        return LibvirtError::Disconnected {
            op,
            domain: domain.to_string(),
            msg: e.message().to_string(),
        };
    }
    LibvirtError::Op {
        op,
        domain: domain.to_string(),
        msg: e.message().to_string(),
    }
}
