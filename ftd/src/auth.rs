//! Who may call ftd's D-Bus API. Each method of the API names the [`Action`] it
//! needs and calls [`Authorizer::check`] before anything else; a refusal reaches
//! the caller as `org.ftvirt.Ftd1.Error.AccessDenied`, with a message naming the
//! action, and nothing is done.
//!
//! ## The rule (`authorization: polkit`, the default)
//!
//! 1. The subject is the **caller**: the unique bus name that sent the message,
//!    as polkit's `system-bus-name` subject, which polkit resolves through the bus
//!    to the caller's process and user. Never ftd's own process: every call would
//!    then be ftd asking about itself, as root, and be allowed.
//! 2. A caller whose Unix user is root (asked of the bus: `GetConnectionUnixUser`
//!    of the sender) is allowed without asking polkit, as systemd's daemons do.
//!    Root owns libvirt and everything ftd could do anyway, and the libvirt hook
//!    (run as root by libvirtd, with 500 ms for its whole call) must not depend on
//!    polkit.
//! 3. Anyone else: polkit's `CheckAuthorization` for the action. An
//!    authentication agent may prompt the user only when the caller set the
//!    message's ALLOW_INTERACTIVE_AUTHORIZATION flag (as `busctl` and systemd's
//!    tools do); otherwise an action needing authentication is refused.
//! 4. **Fail closed**: when polkit cannot be asked (not running, not answering, the
//!    action not installed) or the bus cannot say who the caller is, the call is
//!    refused, the caller is told why, and ftd logs it as an error.
//!
//! `authorization: none` allows every call (development on a private bus only;
//! ftd warns when it starts).
//!
//! The actions are declared in `polkit/org.ftvirt.ftd1.policy`; a test below
//! checks that file against [`Action`].

use crate::config::Authorization;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;
use zbus::message::{Flags, Header};
use zbus::names::BusName;
use zbus::proxy::CacheProperties;
use zbus::{Connection, DBusError};
use zbus_polkit::policykit1::{AuthorityProxy, CheckAuthorizationFlags, Subject};

/// polkit's well-known name.
pub const POLKIT_NAME: &str = "org.freedesktop.PolicyKit1";
/// How long polkit may take to answer when nobody is asked for a password.
const POLKIT_TIMEOUT: Duration = Duration::from_secs(10);
/// ... and when an authentication agent may ask the user.
const POLKIT_INTERACTIVE_TIMEOUT: Duration = Duration::from_secs(300);

/// What a method needs the caller to be authorized for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Change protection: `Enable`, `Disable`, `Failover`, and the libvirt hook's
    /// `Notify` (which can start protection).
    Manage,
    /// Read status: `Status`, `List`, properties.
    Monitor,
}

impl Action {
    pub const ALL: [Action; 2] = [Action::Manage, Action::Monitor];

    /// The polkit action id.
    pub fn id(self) -> &'static str {
        match self {
            Action::Manage => "org.ftvirt.ftd1.manage",
            Action::Monitor => "org.ftvirt.ftd1.monitor",
        }
    }

    /// What the action allows, to complete "... is not authorized to".
    fn what(self) -> &'static str {
        match self {
            Action::Manage => "manage fault tolerance (enable, disable, fail over)",
            Action::Monitor => "view fault tolerance status",
        }
    }

    /// Said after a refusal of this action.
    fn unchanged(self) -> &'static str {
        match self {
            Action::Manage => "; nothing was changed",
            Action::Monitor => "",
        }
    }
}

/// The caller, as the bus knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Unique bus name, e.g. `:1.42`.
    pub name: String,
    pub uid: u32,
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "uid {} (bus name {})", self.uid, self.name)
    }
}

/// Why a call was refused. The text is what the caller reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// polkit decided: no.
    #[error(
        "{caller} is not authorized to {what} (polkit action {id}){unchanged}. {fix}",
        what = action.what(), id = action.id(), unchanged = action.unchanged(),
        fix = if *challenge {
            "polkit requires an administrator's authentication: call as root (e.g. with sudo), \
             or through a polkit authentication agent with interactive authorization allowed"
        } else {
            "Ask the administrator for a polkit rule that grants this action"
        }
    )]
    NotAuthorized {
        caller: Caller,
        action: Action,
        /// polkit would allow it after authentication.
        challenge: bool,
    },
    /// polkit could not be asked, or could not answer: refused (fail closed).
    #[error(
        "cannot ask polkit whether {caller} may {what} (polkit action {id}): {problem}; \
         refused{unchanged}. {fix}",
        what = action.what(), id = action.id(), unchanged = action.unchanged()
    )]
    PolkitUnavailable {
        caller: Caller,
        action: Action,
        problem: String,
        fix: &'static str,
    },
    /// The bus did not say who is calling: refused.
    #[error(
        "cannot tell who is calling ({problem}), so it may not {what} (polkit action {id}){unchanged}",
        what = action.what(), id = action.id(), unchanged = action.unchanged()
    )]
    UnknownCaller { action: Action, problem: String },
}

/// polkit's answer, as far as the decision goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub is_authorized: bool,
    pub is_challenge: bool,
}

/// Decides for each call (see the module's rule).
#[derive(Debug, Clone)]
pub struct Authorizer {
    mode: Authorization,
}

impl Authorizer {
    pub fn new(mode: Authorization) -> Authorizer {
        Authorizer { mode }
    }

    /// Is the sender of the message with `header`, received on `conn`, allowed
    /// `action`? `Err` is the refusal to send back.
    pub async fn check(
        &self,
        conn: &Connection,
        header: &Header<'_>,
        action: Action,
    ) -> Result<(), AuthError> {
        if self.mode == Authorization::None {
            return Ok(());
        }
        let caller = caller(conn, header)
            .await
            .map_err(|problem| AuthError::UnknownCaller { action, problem })
            .inspect_err(|e| tracing::warn!(action = action.id(), "refused: {e}"))?;
        if caller.uid == 0 {
            tracing::debug!(action = action.id(), %caller, "allowed: root");
            return Ok(());
        }
        let interactive = header
            .primary()
            .flags()
            .contains(Flags::AllowInteractiveAuth);
        let answer = ask_polkit(conn, header, action, interactive).await;
        let verdict = decide(&caller, action, answer);
        match &verdict {
            Ok(()) => tracing::debug!(action = action.id(), %caller, "allowed by polkit"),
            Err(e @ AuthError::PolkitUnavailable { .. }) => {
                tracing::error!(action = action.id(), %caller, "refused, polkit unavailable (fail closed): {e}")
            }
            Err(e) => tracing::info!(action = action.id(), %caller, "refused: {e}"),
        }
        verdict
    }

    /// Say at start-up how callers will be authorized, and warn when that is
    /// "everyone" or when polkit is missing from the bus.
    pub async fn announce(&self, conn: &Connection) {
        match self.mode {
            Authorization::None => tracing::warn!(
                "authorization: none: every program that can reach this bus may enable, \
                 disable and fail over protection (for development only)"
            ),
            Authorization::Polkit => match polkit_present(conn).await {
                Ok(true) => tracing::info!("authorization: polkit; root callers always allowed"),
                Ok(false) => tracing::warn!(
                    "authorization: polkit, but {POLKIT_NAME} is neither running nor \
                     activatable on this bus: until it is, only root callers are allowed"
                ),
                Err(e) => tracing::warn!(
                    "authorization: polkit; cannot tell whether polkit is there: {e}"
                ),
            },
        }
    }
}

/// The caller's unique name and Unix user, from the bus.
async fn caller(conn: &Connection, header: &Header<'_>) -> Result<Caller, String> {
    let sender = header
        .sender()
        .ok_or("the message has no sender (not received through a bus)")?;
    let bus = zbus::fdo::DBusProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(|e| format!("the bus: {e}"))?;
    let uid = bus
        .get_connection_unix_user(BusName::Unique(sender.clone()))
        .await
        .map_err(|e| format!("the bus does not know the Unix user of {sender}: {e}"))?;
    Ok(Caller {
        name: sender.to_string(),
        uid,
    })
}

/// polkit's `CheckAuthorization` with the message's sender as the subject.
async fn ask_polkit(
    conn: &Connection,
    header: &Header<'_>,
    action: Action,
    interactive: bool,
) -> Result<Answer, zbus::Error> {
    let subject = Subject::new_for_message_header(header)
        .map_err(|e| zbus::Error::Failure(format!("no polkit subject for the caller: {e}")))?;
    let authority = AuthorityProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let (flags, limit) = if interactive {
        (
            CheckAuthorizationFlags::AllowUserInteraction.into(),
            POLKIT_INTERACTIVE_TIMEOUT,
        )
    } else {
        (Default::default(), POLKIT_TIMEOUT)
    };
    let details = HashMap::new();
    let call = authority.check_authorization(&subject, action.id(), &details, flags, "");
    match tokio::time::timeout(limit, call).await {
        Ok(r) => r.map(|r| Answer {
            is_authorized: r.is_authorized,
            is_challenge: r.is_challenge,
        }),
        Err(_) => Err(zbus::Error::Failure(format!(
            "no answer within {} s",
            limit.as_secs()
        ))),
    }
}

/// The verdict for a caller that is not root, from polkit's answer (pure).
pub fn decide(
    caller: &Caller,
    action: Action,
    answer: Result<Answer, zbus::Error>,
) -> Result<(), AuthError> {
    match answer {
        Ok(a) if a.is_authorized => Ok(()),
        Ok(a) => Err(AuthError::NotAuthorized {
            caller: caller.clone(),
            action,
            challenge: a.is_challenge,
        }),
        Err(e) => {
            let (problem, fix) = trouble(&e, action);
            Err(AuthError::PolkitUnavailable {
                caller: caller.clone(),
                action,
                problem,
                fix,
            })
        }
    }
}

/// A failed polkit call in words, and what to do about it.
fn trouble(e: &zbus::Error, action: Action) -> (String, &'static str) {
    const START: &str = "Start polkit (systemctl start polkit), or call as root";
    let name = match e {
        zbus::Error::MethodError(name, _, _) => Some(name.to_string()),
        zbus::Error::FDO(f) => Some(f.name().to_string()),
        _ => None,
    };
    let text = e.to_string();
    match name.as_deref() {
        Some(
            "org.freedesktop.DBus.Error.ServiceUnknown"
            | "org.freedesktop.DBus.Error.NameHasNoOwner",
        ) => (
            format!("polkit ({POLKIT_NAME}) is not running on the system bus"),
            START,
        ),
        Some("org.freedesktop.DBus.Error.NoReply" | "org.freedesktop.DBus.Error.Disconnected") => {
            (format!("polkit did not answer ({text})"), START)
        }
        _ if text.contains("not registered") => (
            format!("polkit does not know the action {} ({text})", action.id()),
            "Install org.ftvirt.ftd1.policy in /usr/share/polkit-1/actions/",
        ),
        _ => (
            format!("polkit failed ({text})"),
            "See polkit's log (journalctl -u polkit), or call as root",
        ),
    }
}

/// Does polkit own its name on this bus, or can the bus start it?
async fn polkit_present(conn: &Connection) -> zbus::Result<bool> {
    let bus = zbus::fdo::DBusProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let name = BusName::try_from(POLKIT_NAME)?;
    if bus.name_has_owner(name).await? {
        return Ok(true);
    }
    Ok(bus
        .list_activatable_names()
        .await?
        .iter()
        .any(|n| n.as_str() == POLKIT_NAME))
}

#[cfg(test)]
mod tests;
