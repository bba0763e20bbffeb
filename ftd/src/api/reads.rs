//! Who may read the domain objects: the check behind every `Properties.Get`,
//! `Properties.GetAll` and `ObjectManager.GetManagedObjects` of ftd's objects.
//!
//! A read is authorized like a `Status` call ([`crate::auth`], action
//! `org.ftvirt.ftd1.monitor`): root always, anyone else when polkit says yes,
//! nobody when polkit cannot be asked. zbus reads a property through its getter,
//! so each getter of [`super::DomainObject`] asks [`ReadGuard::property`] first:
//!
//! - `Get` of a refused caller fails with `org.freedesktop.DBus.Error.AccessDenied`
//!   (the standard interfaces answer with the standard error name) and ftd's message;
//! - `GetAll` leaves the properties the caller may not read out of its answer, as
//!   the D-Bus specification allows ("if one or more of the properties cannot be
//!   accessed, they may simply be omitted"): a refused caller gets an empty dict;
//! - `GetManagedObjects` ([`super::ObjectManager`]) is refused outright.
//!
//! One message is one question to polkit: the verdict is kept for the message
//! (the sender's unique name and the message's serial, which together name one
//! message on a bus), so `GetAll`'s eleven getters, or `GetManagedObjects` over
//! every domain, ask once.
//!
//! A getter called with no message is zbus reading for itself: the
//! `InterfacesAdded` signal of a new object, which goes to anyone listening. It
//! gets the public properties only (`Name`, `State`, `Role`: what `StateChanged`
//! says anyway); the others are left out of that signal the same way.

use crate::auth::{Action, AuthError, Authorizer};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use zbus::fdo;
use zbus::message::Header;
use zbus::Connection;

/// Verdicts kept: more than the messages being answered at once.
const KEPT: usize = 64;

/// (sender's unique name, message serial).
type MessageId = (String, u32);

/// The last verdicts, oldest first.
type Kept = VecDeque<(MessageId, Result<(), AuthError>)>;

/// The read check, shared by every domain object and the object manager.
#[derive(Debug, Clone)]
pub struct ReadGuard {
    auth: Authorizer,
    recent: Arc<Mutex<Kept>>,
}

/// Whether a property is public (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Told to anyone listening anyway (`StateChanged`); a read by a caller is
    /// still checked.
    Public,
    /// Only for a caller allowed to monitor.
    Checked,
}

impl ReadGuard {
    pub fn new(auth: Authorizer) -> ReadGuard {
        ReadGuard {
            auth,
            recent: Arc::default(),
        }
    }

    /// Before a getter answers: `hdr` is the message being answered, `None` when
    /// zbus reads for itself (then only a public property is given).
    pub async fn property(
        &self,
        conn: &Connection,
        hdr: Option<&Header<'_>>,
        visibility: Visibility,
    ) -> fdo::Result<()> {
        match (hdr, visibility) {
            (Some(h), _) => self.check(conn, h).await.map_err(denied),
            (None, Visibility::Public) => Ok(()),
            (None, Visibility::Checked) => Err(fdo::Error::AccessDenied(
                "not read without a caller: only a monitor may read it".into(),
            )),
        }
    }

    /// May the sender of the message `hdr` read? Asked once per message.
    pub async fn check(&self, conn: &Connection, hdr: &Header<'_>) -> Result<(), AuthError> {
        let id = hdr
            .sender()
            .map(|s| (s.to_string(), hdr.primary().serial_num().get()));
        if let Some(v) = id.as_ref().and_then(|id| self.kept(id)) {
            return v;
        }
        let verdict = self.auth.check(conn, hdr, Action::Monitor).await;
        if let Some(id) = id {
            self.keep(id, verdict.clone());
        }
        verdict
    }

    fn kept(&self, id: &MessageId) -> Option<Result<(), AuthError>> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().find(|(k, _)| k == id).map(|(_, v)| v.clone())
    }

    fn keep(&self, id: MessageId, verdict: Result<(), AuthError>) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == KEPT {
            recent.pop_front();
        }
        recent.push_back((id, verdict));
    }
}

/// A refusal, as the standard interfaces answer it.
pub fn denied(e: AuthError) -> fdo::Error {
    fdo::Error::AccessDenied(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Caller;

    fn no(uid: u32) -> Result<(), AuthError> {
        Err(AuthError::NotAuthorized {
            caller: Caller {
                name: ":1.9".into(),
                uid,
            },
            action: Action::Monitor,
            challenge: false,
        })
    }

    #[test]
    fn a_verdict_is_kept_for_its_message_only() {
        let g = ReadGuard::new(Authorizer::new(crate::config::Authorization::Polkit));
        g.keep((":1.9".into(), 5), no(1000));
        assert_eq!(g.kept(&(":1.9".into(), 5)), Some(no(1000)));
        // Another message of the same sender, or the same serial of another sender.
        assert_eq!(g.kept(&(":1.9".into(), 6)), None);
        assert_eq!(g.kept(&(":1.10".into(), 5)), None);
    }

    #[test]
    fn the_oldest_verdicts_make_room() {
        let g = ReadGuard::new(Authorizer::new(crate::config::Authorization::Polkit));
        for serial in 0..(KEPT as u32 + 1) {
            g.keep((":1.9".into(), serial), Ok(()));
        }
        assert_eq!(g.kept(&(":1.9".into(), 0)), None);
        assert_eq!(g.kept(&(":1.9".into(), 1)), Some(Ok(())));
        assert_eq!(g.recent.lock().unwrap().len(), KEPT);
    }

    #[test]
    fn a_refusal_is_access_denied_with_ftds_message() {
        let e = denied(no(1000).unwrap_err());
        assert_eq!(
            zbus::DBusError::name(&e).as_str(),
            "org.freedesktop.DBus.Error.AccessDenied"
        );
        let text = zbus::DBusError::description(&e).unwrap_or_default();
        assert!(
            text.contains("uid 1000") && text.contains("org.ftvirt.ftd1.monitor"),
            "{text}"
        );
    }
}
