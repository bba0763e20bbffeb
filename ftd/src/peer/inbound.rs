//! The link boundary for what the peer sends: every frame a session delivers
//! passes [`inbound`] before anything else sees it.
//!
//! - A domain name (`Msg`, `SecondarySpec`, `CreateSecondary`) must pass
//!   [`validate::domain_name`]; a message for a bad name is dropped with a log
//!   line (no domain task is created, no file touched), a request for one is
//!   answered with an error.
//! - Free text (`SecondaryFailed`, `PairDenied.why`, an error answer, a
//!   handshake refusal) goes through [`text`]: control characters become
//!   spaces and it is cut at [`MAX_TEXT`] characters, before it can reach
//!   `last_error`, D-Bus, the journal or a terminal.
//!
//! The spec's other values are checked where this host's configuration is
//! known (`crate::colo::validate::spec`, when the secondary is created).

use super::frame::{Frame, Request};
use crate::colo::validate;
use crate::coordinator::PeerMsg;

/// The longest free text kept from the peer, in characters.
pub const MAX_TEXT: usize = 512;

/// A peer's free text, fit for a log line, a D-Bus property and a terminal:
/// each control character (newline, escape, NUL, ...) a space, at most
/// [`MAX_TEXT`] characters (then `...`).
pub fn text(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_TEXT)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().nth(MAX_TEXT).is_some() {
        out.push_str("...");
    }
    out
}

/// What the link does with an incoming frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Deliver it (its free text made safe).
    Deliver(Frame),
    /// Drop it; the reason is logged.
    Drop(String),
    /// Answer request `id` with this error at once; nothing else sees it.
    Answer { id: u64, error: String },
}

/// Check one frame from the peer.
pub fn inbound(f: Frame) -> Inbound {
    match f {
        Frame::Msg { domain, msg } => match validate::domain_name(&domain) {
            Ok(()) => Inbound::Deliver(Frame::Msg {
                domain,
                msg: message(msg),
            }),
            Err(e) => Inbound::Drop(format!("a {} message refused: {e}", kind(&msg))),
        },
        Frame::Request { id, body } => {
            let domain = match &body {
                Request::SecondarySpec { domain } | Request::CreateSecondary { domain, .. } => {
                    Some(domain)
                }
                Request::Ping => None,
            };
            match domain.map(|d| validate::domain_name(d)) {
                Some(Err(e)) => Inbound::Answer {
                    id,
                    error: e.to_string(),
                },
                _ => Inbound::Deliver(Frame::Request { id, body }),
            }
        }
        Frame::Response { id, result } => Inbound::Deliver(Frame::Response {
            id,
            result: result.map_err(|e| text(&e)),
        }),
        Frame::Refused { reason } => Inbound::Deliver(Frame::Refused {
            reason: text(&reason),
        }),
        f @ (Frame::Hello { .. } | Frame::Heartbeat { .. }) => Inbound::Deliver(f),
    }
}

/// A coordinator message with its free text made safe.
fn message(m: PeerMsg) -> PeerMsg {
    match m {
        PeerMsg::SecondaryFailed(e) => PeerMsg::SecondaryFailed(text(&e)),
        PeerMsg::PairDenied { runs, why } => PeerMsg::PairDenied {
            runs,
            why: text(&why),
        },
        m => m,
    }
}

/// The message's variant, for the log.
fn kind(m: &PeerMsg) -> String {
    let s = format!("{m:?}");
    s.split(['(', ' ', '{']).next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_for_bad_names_are_dropped() {
        for d in [
            "../../x",
            "/var/lib/ftvirt/overlays/web",
            "a\nb",
            "",
            &"x".repeat(300),
        ] {
            let f = Frame::Msg {
                domain: d.into(),
                msg: PeerMsg::HostSecondary,
            };
            match inbound(f) {
                Inbound::Drop(why) => {
                    assert!(why.contains("HostSecondary message refused"), "{why}");
                    assert!(!why.contains('\n'), "{why:?}");
                }
                other => panic!("{d:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn requests_for_bad_names_are_answered_at_once() {
        let f = Frame::Request {
            id: 7,
            body: Request::SecondarySpec {
                domain: "../x".into(),
            },
        };
        let Inbound::Answer { id, error } = inbound(f) else {
            panic!("not answered")
        };
        assert_eq!(id, 7);
        assert!(error.contains("domain name"), "{error}");
        let ok = Frame::Request {
            id: 8,
            body: Request::SecondarySpec { domain: "g".into() },
        };
        assert!(matches!(inbound(ok), Inbound::Deliver(_)));
    }

    #[test]
    fn free_text_loses_control_characters_and_length() {
        let evil = format!("boom\n\u{1b}[2J\0{}", "y".repeat(5000));
        let f = Frame::Msg {
            domain: "g".into(),
            msg: PeerMsg::PairDenied {
                runs: true,
                why: evil.clone(),
            },
        };
        let Inbound::Deliver(Frame::Msg {
            msg: PeerMsg::PairDenied { runs, why },
            ..
        }) = inbound(f)
        else {
            panic!("not delivered")
        };
        assert!(runs);
        assert!(why.starts_with("boom  [2J "), "{why:?}");
        assert_eq!(why.chars().count(), MAX_TEXT + 3);
        let f = Frame::Msg {
            domain: "g".into(),
            msg: PeerMsg::SecondaryFailed(evil.clone()),
        };
        let Inbound::Deliver(Frame::Msg {
            msg: PeerMsg::SecondaryFailed(e),
            ..
        }) = inbound(f)
        else {
            panic!("not delivered")
        };
        assert!(!e.chars().any(char::is_control) && e.len() < 600, "{e:?}");
        let f = Frame::Response {
            id: 1,
            result: Err(evil),
        };
        let Inbound::Deliver(Frame::Response { result: Err(e), .. }) = inbound(f) else {
            panic!("not delivered")
        };
        assert!(!e.chars().any(char::is_control), "{e:?}");
    }
}
