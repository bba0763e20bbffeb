//! `ftvirt-hook`, libvirt's qemu hook for ftvirt (installed as
//! `/etc/libvirt/hooks/qemu.d/ftvirt`): tells ftd when a domain marked for
//! protection (the `<ft:protection>` annotation, crate `ftd-annotation`) has started
//! or stopped, so that starting a marked domain protects it with no other step.
//!
//! libvirtd waits for its hooks, holding the domain, so the hook:
//! - never calls back into libvirt (that would deadlock; it does not even link it);
//! - decides from the operation first, and exits at once for operations ftvirt
//!   ignores, without reading the XML;
//! - reads the domain XML from stdin bounded in size ([`MAX_XML`]) and time;
//! - for a marked domain makes one D-Bus call to ftd ([`notify`]), bounded by
//!   [`notify::TIMEOUT`] in all, connection included; ftd replies before doing any
//!   work;
//! - never fails libvirt's operation but one: a marked domain's `prepare` that
//!   must not go on ([`start`]: the witness's record names another host whose copy
//!   runs). Every other outcome, errors and panics included, exits 0. It writes
//!   nothing on stdout (libvirt would take it for a rewritten domain XML) and logs
//!   one line on stderr, which libvirtd keeps in its debug log (and, for a refused
//!   start, puts in the error `virsh start` prints).
//!
//! | operation | marked domain |
//! |---|---|
//! | `prepare` | `Notify(domain, "prepare")`: may this host start it? A refusal fails the start (exit 1, with ftd's reason) |
//! | `started` | `Notify(domain, "started")`: ftd protects it |
//! | `stopped`, `release` | `Notify(domain, op)`: ftd acknowledges (it sees stops itself) |
//! | `migrate` | log: live migration of a protected domain is not supported yet |
//! | others | nothing |

pub mod invocation;
pub mod notify;
pub mod start;

pub use invocation::{InputError, Invocation, Operation, MAX_XML, STDIN_DEADLINE};

use ftd_annotation::{from_domain_xml, AnnotationError};

/// What the hook does about one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing: ftvirt does not act on the operation, or the domain is not marked.
    Nothing,
    /// Tell ftd: `Notify(domain, operation)`.
    Notify,
    /// Ask ftd whether this host may start the domain (`prepare`), and fail the
    /// start if not ([`start::verdict`]).
    AskToStart,
    /// Only log this line.
    Log(String),
}

/// Decide what to do from the call and the domain XML libvirt passed.
pub fn decide(inv: &Invocation, xml: &str) -> Action {
    if !inv.operation.concerns_ftd() {
        return Action::Nothing;
    }
    let d = &inv.domain;
    match from_domain_xml(xml) {
        Ok(None) => Action::Nothing,
        Err(AnnotationError::Xml(e)) => Action::Log(format!(
            "ftvirt-hook: domain {d} {}: the domain XML on stdin cannot be read ({e}); \
             ignoring this call",
            inv.operation.as_str()
        )),
        Err(e) => Action::Log(format!(
            "ftvirt-hook: domain {d}: its protection annotation cannot be used, so ftd is \
             not told about it: {e}"
        )),
        Ok(Some(_)) => match inv.operation {
            Operation::Migrate => Action::Log(format!(
                "ftvirt-hook: domain {d} is marked for protection; live migration of a \
                 protected domain is not supported yet (disable protection before migrating)"
            )),
            Operation::Prepare => Action::AskToStart,
            _ => Action::Notify,
        },
    }
}

/// The log line for the outcome of [`notify::notify`].
pub fn outcome_line(inv: &Invocation, r: &Result<String, notify::NotifyError>) -> String {
    let (d, op) = (&inv.domain, inv.operation.as_str());
    match r {
        Ok(reply) => format!("ftvirt-hook: domain {d} {op}: ftd notified ({reply})"),
        Err(notify::NotifyError::Refused(e)) => {
            format!("ftvirt-hook: domain {d} {op}: ftd did not take the notification: {e}")
        }
        Err(e) if inv.operation == Operation::Started => format!(
            "ftvirt-hook: ftd not reachable; domain {d} will be protected when ftd starts ({e})"
        ),
        Err(e) => format!(
            "ftvirt-hook: ftd not reachable; domain {d} {op} (ftd notices it when it starts) ({e})"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::NotifyError;

    const MARKED: &str = "<domain type='qemu'><name>g</name><metadata>\
        <ft:protection xmlns:ft='https://ftvirt.org/xmlns/ftd/1' peer='b'/></metadata></domain>";
    const UNMARKED: &str = "<domain type='qemu'><name>g</name><metadata>\
        <app:x xmlns:app='urn:app'/></metadata></domain>";
    const BROKEN: &str = "<domain type='qemu'><name>g</name><metadata>\
        <ft:protection xmlns:ft='https://ftvirt.org/xmlns/ftd/1' peer='b' intervall='5'/>\
        </metadata></domain>";

    fn inv(op: &str) -> Invocation {
        Invocation::from_args(["g", op, "begin", "-"].map(Into::into)).unwrap()
    }

    #[test]
    fn marked_domains_are_reported_on_start_and_stop() {
        for op in ["started", "stopped", "release"] {
            assert_eq!(decide(&inv(op), MARKED), Action::Notify, "{op}");
        }
        assert_eq!(decide(&inv("prepare"), MARKED), Action::AskToStart);
        match decide(&inv("migrate"), MARKED) {
            Action::Log(l) => assert!(
                l.contains("live migration of a protected domain is not supported yet"),
                "{l}"
            ),
            a => panic!("{a:?}"),
        }
    }

    #[test]
    fn unmarked_domains_and_other_operations_are_left_alone() {
        for op in ["prepare", "started", "stopped", "release", "migrate"] {
            assert_eq!(decide(&inv(op), UNMARKED), Action::Nothing, "{op}");
        }
        for op in ["start", "restore", "reconnect", "attach", "future-op"] {
            assert_eq!(decide(&inv(op), MARKED), Action::Nothing, "{op}");
        }
    }

    #[test]
    fn garbage_and_broken_annotations_are_logged_not_reported() {
        for xml in ["", "not xml at all", "<domain", "<network/>"] {
            match decide(&inv("started"), xml) {
                Action::Log(l) => assert!(
                    l.starts_with(
                        "ftvirt-hook: domain g started: the domain XML on stdin cannot be read"
                    ),
                    "{l}"
                ),
                a => panic!("{xml}: {a:?}"),
            }
        }
        match decide(&inv("started"), BROKEN) {
            Action::Log(l) => assert!(
                l.starts_with("ftvirt-hook: domain g: its protection annotation cannot be used")
                    && l.contains("did you mean"),
                "{l}"
            ),
            a => panic!("{a:?}"),
        }
    }

    #[test]
    fn outcome_lines() {
        let down = Err(NotifyError::Unreachable("no such file".into()));
        assert_eq!(
            outcome_line(&inv("started"), &down),
            "ftvirt-hook: ftd not reachable; domain g will be protected when ftd starts (no such file)"
        );
        assert!(outcome_line(&inv("stopped"), &down)
            .starts_with("ftvirt-hook: ftd not reachable; domain g stopped"));
        assert_eq!(
            outcome_line(&inv("started"), &Ok("ok".into())),
            "ftvirt-hook: domain g started: ftd notified (ok)"
        );
    }
}
