//! The hook's one D-Bus call: `org.ftvirt.Ftd1.Manager.Notify(domain, operation)`,
//! with a hard deadline that covers connecting, authenticating and the reply.
//!
//! ftd replies at once (the protection work runs after the reply), so a call that
//! takes longer means ftd is stuck or absent; the hook then gives up rather than
//! hold up libvirtd. The call runs on its own thread and the deadline is kept by
//! the caller, so even a bus that accepts the connection and never answers cannot
//! stretch it.

use ftd_proxy::{BUS_NAME, INTERFACE, OBJECT_PATH};
use std::sync::mpsc;
use std::time::Duration;

/// The whole call, connection included.
pub const TIMEOUT: Duration = Duration::from_millis(500);
/// The environment variable that names another bus (a D-Bus address), for tests.
/// libvirtd passes hooks a fixed, minimal environment, so under libvirtd it is
/// never set and the hook uses the system bus.
pub const BUS_ENV: &str = "FTVIRT_BUS";

/// Which bus ftd is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    System,
    Address(String),
}

impl Bus {
    /// `$FTVIRT_BUS` when set and not empty, else the system bus.
    pub fn from_env() -> Bus {
        match std::env::var(BUS_ENV) {
            Ok(a) if !a.is_empty() => Bus::Address(a),
            _ => Bus::System,
        }
    }
}

/// Why ftd was not told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// No bus, or no ftd on it.
    #[error("{0}")]
    Unreachable(String),
    /// The bus or ftd did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// ftd answered with an error (e.g. an ftd too old to know `Notify`).
    #[error("ftd answered with an error: {0}")]
    Refused(String),
}

/// Call `Notify(domain, operation)` on ftd; returns ftd's reply ("ok", "ignored").
pub fn notify(
    bus: &Bus,
    domain: &str,
    operation: &str,
    timeout: Duration,
) -> Result<String, NotifyError> {
    let (tx, rx) = mpsc::channel();
    let (bus, domain, operation) = (bus.clone(), domain.to_string(), operation.to_string());
    std::thread::Builder::new()
        .name("dbus".into())
        .spawn(move || {
            let _ = tx.send(call(&bus, &domain, &operation, timeout).map_err(classify));
        })
        .map_err(|e| NotifyError::Unreachable(e.to_string()))?;
    rx.recv_timeout(timeout)
        .unwrap_or(Err(NotifyError::Timeout(timeout)))
}

fn call(bus: &Bus, domain: &str, operation: &str, timeout: Duration) -> zbus::Result<String> {
    use zbus::blocking::connection::Builder;
    let b = match bus {
        Bus::System => Builder::system()?,
        Bus::Address(a) => Builder::address(a.as_str())?,
    };
    let conn = b.method_timeout(timeout).build()?;
    let reply = conn.call_method(
        Some(BUS_NAME),
        OBJECT_PATH,
        Some(INTERFACE),
        "Notify",
        &(domain, operation),
    )?;
    reply.body().deserialize::<String>()
}

fn classify(e: zbus::Error) -> NotifyError {
    let name = match &e {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str().to_string()),
        zbus::Error::FDO(f) => Some(zbus::DBusError::name(&**f).as_str().to_string()),
        _ => None,
    };
    match name.as_deref() {
        Some(
            "org.freedesktop.DBus.Error.ServiceUnknown"
            | "org.freedesktop.DBus.Error.NameHasNoOwner"
            | "org.freedesktop.DBus.Error.NoReply"
            | "org.freedesktop.DBus.Error.Timeout",
        ) => NotifyError::Unreachable(e.to_string()),
        Some(_) => NotifyError::Refused(e.to_string()),
        None => NotifyError::Unreachable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn the_bus_comes_from_the_environment() {
        // Only this test touches the variable.
        std::env::remove_var(BUS_ENV);
        assert_eq!(Bus::from_env(), Bus::System);
        std::env::set_var(BUS_ENV, "");
        assert_eq!(Bus::from_env(), Bus::System);
        std::env::set_var(BUS_ENV, "unix:path=/x");
        assert_eq!(Bus::from_env(), Bus::Address("unix:path=/x".into()));
        std::env::remove_var(BUS_ENV);
    }

    #[test]
    fn a_missing_bus_fails_fast() {
        let t0 = Instant::now();
        let e = notify(
            &Bus::Address("unix:path=/nonexistent/ftvirt-test-bus".into()),
            "g",
            "started",
            TIMEOUT,
        )
        .unwrap_err();
        assert!(matches!(e, NotifyError::Unreachable(_)), "{e:?}");
        assert!(t0.elapsed() < TIMEOUT, "{:?}", t0.elapsed());
    }

    #[test]
    fn a_bus_that_never_answers_is_given_up_on_time() {
        let dir = std::env::temp_dir().join(format!("ftvirt-hook-mute-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("bus");
        let _ = std::fs::remove_file(&sock);
        // Listening, never accepting: connect() succeeds, the handshake hangs.
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let t0 = Instant::now();
        let e = notify(
            &Bus::Address(format!("unix:path={}", sock.display())),
            "g",
            "started",
            Duration::from_millis(200),
        )
        .unwrap_err();
        let took = t0.elapsed();
        assert_eq!(e, NotifyError::Timeout(Duration::from_millis(200)));
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_millis(400),
            "{took:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bus_errors_are_classified() {
        let unknown = zbus::Error::MethodError(
            "org.freedesktop.DBus.Error.ServiceUnknown"
                .try_into()
                .unwrap(),
            Some("The name is not activatable".into()),
            zbus::message::Message::method_call("/", "x")
                .unwrap()
                .build(&())
                .unwrap(),
        );
        assert!(matches!(classify(unknown), NotifyError::Unreachable(_)));
        let unknown_method = zbus::Error::MethodError(
            "org.freedesktop.DBus.Error.UnknownMethod"
                .try_into()
                .unwrap(),
            None,
            zbus::message::Message::method_call("/", "x")
                .unwrap()
                .build(&())
                .unwrap(),
        );
        assert!(matches!(classify(unknown_method), NotifyError::Refused(_)));
        let io = zbus::Error::InputOutput(std::sync::Arc::new(std::io::Error::other("refused")));
        assert!(matches!(classify(io), NotifyError::Unreachable(_)));
    }
}
