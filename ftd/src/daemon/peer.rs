//! What the router does with the peer link's events, and the bounds on what an
//! authenticated peer (buggy, or in the hands of an attacker) can make this host
//! keep for domain names it chooses:
//!
//! - a message for a domain this host has no task for starts a libvirt lookup;
//!   at most [`PEER_LOOKUPS_MAX`] such lookups run at once, and at most
//!   [`QUEUED_MAX`] messages wait for one domain's task;
//! - a domain libvirt does not know gets a task only when a domain standing by
//!   here would act on what the peer sent (`HostSecondary`: this host is to
//!   hold its secondary), and only while fewer than [`PEER_DOMAINS_MAX`]
//!   domains stand by or hold a secondary here. Anything else a standing-by
//!   domain would merely answer (`CheckPair`) is answered as it would be, and
//!   nothing stays behind. The coordinator itself says which is which
//!   ([`standby_answers`]), so these rules follow the protocol's;
//! - a request (`SecondarySpec`) is served only by an existing task.
//!
//! Every refusal logs a warning naming the peer and the reason, and changes
//! nothing here; a refused `HostSecondary` is answered `SecondaryFailed` with
//! the reason, so the primary's status says why its protection failed.
//! Port slots are not the router's: a task takes one only when this host wires
//! its domain as the primary ([`crate::domain::PortPool`]).

use super::{answer_all, Daemon};
use crate::colo::plan::Ports;
use crate::coordinator::{Action, Coordinator, Event, PeerMsg, Settings, State};
use crate::domain::{self, CommandError, DomainCmd, Resolved};
use crate::peer::{LinkEvent, Request, Response};

/// Domains that may stand by (not defined here) or hold a secondary here at
/// once: a secondary listens on one slot of this host's `colo.ports`, so no
/// more than one per slot can run anyway.
pub(crate) const PEER_DOMAINS_MAX: usize = Ports::SLOTS as usize;

/// Lookups in libvirt, started by the peer's messages, that may run at once.
pub(crate) const PEER_LOOKUPS_MAX: usize = 64;

/// The peer's messages that may wait for one domain's task (being looked up,
/// or ending).
pub(super) const QUEUED_MAX: usize = 256;

/// What a domain standing by here (not defined in libvirt, no task) does with
/// what the peer sent.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum StandbyAnswer {
    /// It acts (creates a secondary): it needs a task.
    Acts,
    /// It only answers (possibly nothing): no task needed.
    Answers(Vec<PeerMsg>),
}

/// Ask a coordinator standing by, as a new task's would be, what `events` make
/// it do. Pure: nothing is sent or run.
pub(super) fn standby_answers(
    settings: Settings,
    peer_up: bool,
    events: &[Event],
) -> StandbyAnswer {
    let mut c = Coordinator::new(State::Standby, settings);
    if peer_up {
        let _ = c.on(Event::PeerUp);
    }
    let mut answers = Vec::new();
    for ev in events {
        // An event it refuses (a message that does not fit) changes nothing.
        let Ok(acts) = c.on(ev.clone()) else { continue };
        for a in acts {
            match a {
                Action::Send(m) => answers.push(m),
                Action::Run(_) | Action::RetryIn { .. } | Action::Arbitrate => {
                    return StandbyAnswer::Acts
                }
            }
        }
        if c.state() != State::Standby {
            return StandbyAnswer::Acts;
        }
    }
    StandbyAnswer::Answers(answers)
}

/// A peer message's name for the log (`HostSecondary`, `CheckPair`, ...).
fn kind(m: &PeerMsg) -> String {
    let s = format!("{m:?}");
    s.split(['(', ' ', '{']).next().unwrap_or("").to_string()
}

impl Daemon {
    pub(super) fn link(&mut self, e: LinkEvent) {
        let peer = self.ctx.peer.peer_host().to_string();
        match e {
            LinkEvent::Up { .. } => {
                tracing::info!(%peer, "peer up");
                self.broadcast(Event::PeerUp);
            }
            LinkEvent::Lost { reason } => {
                tracing::warn!(%peer, %reason, "peer lost");
                self.broadcast(Event::PeerLost);
            }
            // Kept apart from `Lost` on purpose: the peer host lives, only its
            // ftd is gone; no host-loss handling (see the coordinator).
            LinkEvent::DaemonLost { reason } => {
                tracing::warn!(%peer, %reason, "peer's ftd lost (its host answers)");
                self.broadcast(Event::PeerDaemonLost);
            }
            LinkEvent::Msg { domain, msg } => self.peer_msg(domain, msg),
            LinkEvent::Request { body, reply } => match body {
                Request::Ping => {
                    let _ = reply.send(Ok(Response::Pong));
                }
                Request::SecondarySpec { domain } => match self.domains.get(&domain) {
                    Some(h) => {
                        let h = h.clone();
                        tokio::spawn(async move {
                            let r = h.spec().await.map(|s| Response::SecondarySpec(Box::new(s)));
                            let _ = reply.send(r);
                        });
                    }
                    None => {
                        let _ = reply.send(Err(format!(
                            "domain {domain:?} is not protected on this host"
                        )));
                    }
                },
                other => {
                    let _ = reply.send(Err(format!(
                        "{} is not handled by this ftd",
                        other.describe()
                    )));
                }
            },
        }
    }

    /// A message for `domain`'s coordinator: to its task, or held for it while
    /// it is looked up or ends, or a lookup is started, within the bounds.
    fn peer_msg(&mut self, domain: String, msg: PeerMsg) {
        let queued = self
            .resolving
            .get(&domain)
            .or(self.retiring.get(&domain).map(|r| &r.waiting))
            .map(Vec::len);
        let refused = match queued {
            Some(n) if n >= QUEUED_MAX => Some(format!(
                "{n} of its messages already wait for the domain's task"
            )),
            None if !self.domains.contains_key(&domain)
                && self.peer_lookups.len() >= PEER_LOOKUPS_MAX =>
            {
                Some(format!(
                    "{} other domains it named are being looked up in libvirt already",
                    self.peer_lookups.len()
                ))
            }
            _ => None,
        };
        if let Some(why) = refused {
            self.refuse(&domain, &msg, &why);
            return;
        }
        let cmd = DomainCmd::Event(Event::Peer(msg));
        if let Err(cmd) = self.pass(&domain, Some(cmd)) {
            self.peer_lookups.insert(domain.clone());
            self.look_up(&domain, cmd.into_iter().collect());
        }
    }

    /// Log why the peer's `msg` for `domain` is dropped; a `HostSecondary` is
    /// answered `SecondaryFailed` with the reason. Nothing here changes.
    fn refuse(&self, domain: &str, msg: &PeerMsg, why: &str) {
        let peer = self.ctx.peer.peer_host();
        tracing::warn!(%peer, %domain, msg = %kind(msg), reason = %why, "peer message refused");
        if *msg == PeerMsg::HostSecondary {
            let host = &self.ctx.host;
            let answer = PeerMsg::SecondaryFailed(format!(
                "{host} cannot hold a secondary of {domain} now: {why}"
            ));
            if let Err(e) = self.ctx.peer.send(domain, answer) {
                tracing::warn!(%peer, %domain, error = %e, "refusal not sent to the peer");
            }
        }
    }

    /// `name` is not defined here and has no task. The user's requests are
    /// answered `NoSuchDomain`; the peer's messages start a task in `Standby`
    /// only if it would act on them, within [`PEER_DOMAINS_MAX`]; otherwise what
    /// it would answer is sent and nothing stays.
    pub(super) fn unknown(&mut self, name: String, waiting: Vec<DomainCmd>) {
        let (msgs, user): (Vec<_>, Vec<_>) = waiting
            .into_iter()
            .partition(|c| matches!(c, DomainCmd::Event(_)));
        answer_all(user, || CommandError::NoSuchDomain(name.clone()));
        let events: Vec<Event> = msgs
            .into_iter()
            .filter_map(|c| match c {
                DomainCmd::Event(e) => Some(e),
                _ => None,
            })
            .collect();
        if events.is_empty() {
            return;
        }
        let peer = self.ctx.peer.peer_host().to_string();
        let settings = self.ctx.settings(self.ctx.auto_reprotect);
        match standby_answers(settings, self.ctx.peer.is_up(), &events) {
            StandbyAnswer::Answers(answers) => {
                let kinds: Vec<String> = events
                    .iter()
                    .filter_map(|e| match e {
                        Event::Peer(m) => Some(kind(m)),
                        _ => None,
                    })
                    .collect();
                tracing::warn!(%peer, domain = %name, msgs = ?kinds,
                    reason = "the domain is not defined here and there is nothing to do for it",
                    "peer message refused: no task for it");
                for m in answers {
                    if let Err(e) = self.ctx.peer.send(name.clone(), m) {
                        tracing::warn!(%peer, domain = %name, error = %e, "answer not sent to the peer");
                    }
                }
            }
            StandbyAnswer::Acts => {
                let held = self.held_for_peer();
                if held >= PEER_DOMAINS_MAX {
                    let why = format!(
                        "this host already stands by for or holds the secondary of {held} \
                         domains, the most it can (one per COLO port slot)"
                    );
                    for e in &events {
                        if let Event::Peer(m) = e {
                            self.refuse(&name, m, &why);
                        }
                    }
                    return;
                }
                let h = domain::spawn(
                    &name,
                    Resolved::standby(),
                    self.ctx.clone(),
                    self.cancel.child_token(),
                );
                for e in events {
                    h.send(DomainCmd::Event(e));
                }
                self.domains.insert(name, h);
            }
        }
    }

    /// Tasks that stand by for a domain not defined here or hold a secondary.
    fn held_for_peer(&self) -> usize {
        self.tasks().filter(|h| h.held_for_peer()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::PeerMsg as M;

    fn peer(ms: &[M]) -> Vec<Event> {
        ms.iter().cloned().map(Event::Peer).collect()
    }

    #[test]
    fn only_a_request_to_hold_the_secondary_needs_a_task() {
        let s = Settings::default();
        assert_eq!(
            standby_answers(s, true, &peer(&[M::HostSecondary])),
            StandbyAnswer::Acts
        );
        assert_eq!(
            standby_answers(s, true, &peer(&[M::ReleaseSecondary, M::HostSecondary])),
            StandbyAnswer::Acts
        );
        for m in [
            M::ReleaseSecondary,
            M::StandingBy,
            M::SecondaryFailed("x".into()),
            M::PairConfirmed,
            M::ColoEnded,
            // Do not fit a domain standing by: refused, nothing to answer.
            M::TakeOver,
            M::TookOver,
            M::PrimaryProtected,
            M::SecondaryReady,
        ] {
            assert_eq!(
                standby_answers(s, true, &peer(std::slice::from_ref(&m))),
                StandbyAnswer::Answers(vec![]),
                "{m:?}"
            );
        }
    }

    #[test]
    fn a_pair_check_is_answered_without_a_task() {
        let a = standby_answers(
            Settings::default(),
            true,
            &peer(&[M::CheckPair { primary: true }]),
        );
        let StandbyAnswer::Answers(v) = a else {
            panic!("{a:?}")
        };
        assert!(
            matches!(v.as_slice(), [M::PairDenied { runs: false, .. }]),
            "{v:?}"
        );
    }
}
