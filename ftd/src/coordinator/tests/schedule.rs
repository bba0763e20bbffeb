//! The pair property test's scheduler: which choices are open at each point
//! (with weights, so that runs reach protection between disturbances), and
//! what each does to the model (`model.rs`). The known gaps (`G1`..`G7`, see
//! `pair_property.rs`) are left out here unless `FTVIRT_PROPTEST_GAPS` is set.

use super::model::{Cut, Item, Life, World};
use super::pair_property::{gaps, serving};
use super::*;

#[derive(Clone, Copy, Debug)]
pub(super) enum Choice {
    Deliver(usize),
    StepOutcome(usize, usize, bool),
    Timer(usize),
    ColoExit(usize),
    Verdict(usize),
    /// The witness decides host `i`'s claim (the store's answer).
    Claim(usize),
    /// The witness does not answer host `i`'s claim in time (it goes on).
    WitnessSilent(usize),
    /// Host `i`'s abandoned claim reaches the store (`true`) or never does.
    Abandoned(usize, bool),
    User(usize, u8),
    Checkpoint(usize),
    BreakColo,
    DomainStopped(usize),
    DomainStarted(usize),
    HostDies(usize),
    HostReturns(usize),
    FtdDies(usize),
    FtdRestarts(usize),
    Cut {
        winner: usize,
        alive: bool,
    },
    Heal,
}

/// The choices open now, each with a weight: the protocol's own progress
/// (deliveries, outcomes) is common, disturbances rarer, so that runs reach
/// protection between them.
pub(super) fn choices(w: &World) -> Vec<(u32, Choice)> {
    use Choice as C;
    let mut v = Vec::new();
    let link_pending = |i: usize| w.h[i].inbox.iter().any(|it| matches!(it, Item::Link(_)));
    let partition = matches!(w.cut, Some(Cut::Partition { .. }));
    for i in 0..2 {
        let h = &w.h[i];
        let other = &w.h[1 - i];
        match h.life {
            Life::Up => {
                // G3, G4, G5 cannot happen with the witness: each is a go-live
                // that a claim now decides.
                let witness = w.settings.witness;
                // G5: a re-attached primary acts before the pair check.
                let g5 = !witness && h.c.state() == State::Protected && h.c.unconfirmed();
                if !h.inbox.is_empty() {
                    v.push((60, C::Deliver(i)));
                }
                // Steps run one at a time, in the order asked for (the domain
                // task's queue): only the oldest can end.
                for (j, (st, _)) in h.steps.iter().enumerate().take(1) {
                    v.push((40, C::StepOutcome(i, j, true)));
                    // G6: a failed takeover.
                    if *st != Step::TakeOver || gaps() {
                        v.push((3, C::StepOutcome(i, j, false)));
                    }
                }
                if !h.timers.is_empty() {
                    v.push((20, C::Timer(i)));
                }
                // G4: a secondary takes over on `ColoExited` whenever the
                // peer is not up, also while its host is alive. G2: nothing
                // that sends a message during a partition. G5.
                let peer_gone = h.c.peer_up() || other.life == Life::Dead;
                let g4 = !witness && h.c.state() == State::Secondary && !peer_gone;
                let held = g4 || partition || g5;
                if h.colo_exit && (!held || gaps()) {
                    v.push((30, C::ColoExit(i)));
                }
                // corosync's promise; the witness's verdicts are its record's.
                let gate = |v: &Verdict| witness || *v != Verdict::Proceed || !serving(w, 1 - i);
                if h.verdicts.front().is_some_and(gate) {
                    v.push((30, C::Verdict(i)));
                }
                if h.abandoned.is_some() {
                    v.push((5, C::Abandoned(i, true)));
                    v.push((5, C::Abandoned(i, false)));
                }
                if h.claim.is_some() {
                    v.push((30, C::Claim(i)));
                    if !h.unanswered {
                        v.push((3, C::WitnessSilent(i)));
                    }
                }
                for (r, n) in [(0, 3), (1, 1), (2, 2)] {
                    if !(partition || g5) || gaps() {
                        v.push((n, C::User(i, r)));
                    }
                }
                if w.colo_runs() {
                    v.push((4, C::Checkpoint(i)));
                }
                // G2 (during a partition) and G7 (during a switch-over).
                let g7 = h.c.state() == State::SwitchingOver;
                if h.has_copy() && (!((partition && h.colo_primary()) || g7) || gaps()) {
                    v.push((1, C::DomainStopped(i)));
                }
                let no_copy =
                    |s: State| matches!(s, State::Standby | State::Stopped | State::Fenced);
                if no_copy(h.c.state()) && !other.has_copy() {
                    v.push((1, C::DomainStarted(i)));
                }
                if other.life != Life::Dead {
                    v.push((1, C::HostDies(i)));
                }
                // G3: the secondary's ftd dies during a switch-over.
                let g3 = !witness && other.c.state() == State::SwitchingOver;
                if other.life == Life::Up && (!g3 || gaps()) {
                    v.push((1, C::FtdDies(i)));
                }
            }
            Life::FtdDead => {
                if other.life == Life::Up {
                    v.push((1, C::HostDies(i)));
                }
                if other.life != Life::Up || !link_pending(1 - i) {
                    v.push((15, C::FtdRestarts(i)));
                }
            }
            Life::Dead => {
                if other.life == Life::Up && !link_pending(1 - i) {
                    v.push((15, C::HostReturns(i)));
                }
            }
        }
    }
    // G2: nothing that sends a message during a partition.
    if w.colo_runs() && (!partition || gaps()) {
        v.push((1, C::BreakColo));
    }
    let both_up = w.h.iter().all(|h| h.life == Life::Up);
    if w.settings.arbiter && both_up && w.session {
        for winner in 0..2 {
            v.push((
                1,
                C::Cut {
                    winner,
                    alive: false,
                },
            ));
        }
        v.push((
            1,
            C::Cut {
                winner: 0,
                alive: true,
            },
        ));
    }
    if matches!(w.cut, Some(Cut::Partition { .. }))
        && both_up
        && !link_pending(0)
        && !link_pending(1)
    {
        v.push((20, C::Heal));
    }
    v
}

/// G1: the secondary's answer to an earlier protection attempt, arriving
/// in a later one (the protocol has no attempt number to tell them apart).
fn stale(m: &PeerMsg, tag: u32, attempts: u32) -> bool {
    matches!(m, PeerMsg::SecondaryReady | PeerMsg::SecondaryFailed(_)) && tag != attempts && !gaps()
}

/// Carry one choice out; `more` draws further numbers (how much is lost in flight).
pub(super) fn run_choice(w: &mut World, c: Choice, more: &mut impl FnMut() -> usize) {
    use Choice as C;
    match c {
        C::Deliver(i) => match w.h[i].inbox.pop_front() {
            Some(Item::Msg(m, tag)) => {
                if m == PeerMsg::HostSecondary {
                    w.h[i].hosts_attempt = tag;
                }
                if stale(&m, tag, w.h[i].attempts) {
                    w.log.push(format!(
                        "{} {m:?} of attempt {tag}: dropped (G1)",
                        w.h[i].name
                    ));
                } else {
                    w.apply(i, Event::Peer(m));
                }
            }
            Some(Item::Link(ev)) => w.apply(i, ev),
            None => {}
        },
        C::StepOutcome(i, j, ok) => {
            let seq = w.h[i].steps[j].1;
            if w.settings.witness {
                w.pair_earlier(i, seq);
            }
            let (st, seq) = w.h[i].steps.remove(j);
            match (st, ok) {
                (Step::Inspect, _) => {
                    let f = w.h[i].found.clone().unwrap_or(Found::Plain);
                    w.apply(i, Event::Found(f));
                }
                (Step::StartColo, true) if w.settings.witness && !w.pair_once(i, seq) => {
                    w.log.push(format!("  {}: pairing refused", w.h[i].name));
                    w.apply(i, Event::StepFailed(Step::StartColo, "model".into()));
                }
                (st, true) => {
                    // `StopPrimary` pauses the guest; `LeaveColo` and `Undo`
                    // end with `cont`, and the guest resumes as COLO starts.
                    // The last asked for decides (see `Host::paused`).
                    let h = &mut w.h[i];
                    let resumes = matches!(st, Step::LeaveColo | Step::Undo | Step::StartColo);
                    if (st == Step::StopPrimary || resumes) && seq > h.pause_seq {
                        (h.paused, h.pause_seq) = (st == Step::StopPrimary, seq);
                    }
                    if matches!(st, Step::Freeze | Step::Thaw) && seq > h.cut_seq {
                        (h.cut_off, h.cut_seq) = (st == Step::Freeze, seq);
                    }
                    let leaves = matches!(
                        st,
                        Step::LeaveColo
                            | Step::Undo
                            | Step::DestroyPrimary
                            | Step::TakeOver
                            | Step::DestroySecondary
                    );
                    if leaves && seq > w.colo_seq && w.colo_runs() {
                        // This side left COLO: the other side's COLO exits.
                        w.log.push(format!("{} leaves COLO", w.h[i].name));
                        w.break_colo();
                    }
                    w.apply(i, Event::StepDone(st));
                }
                (st, false) => w.apply(i, Event::StepFailed(st, "model".into())),
            }
        }
        C::Timer(i) => {
            let n = w.h[i].timers.remove(0);
            w.apply(i, Event::Retry(n));
        }
        C::ColoExit(i) => {
            w.h[i].colo_exit = false;
            w.apply(i, Event::ColoExited("model".into()));
        }
        C::Claim(i) => {
            if let Some(v) = w.decide_claim(i) {
                w.h[i].verdicts.push_back(v);
            }
        }
        C::Abandoned(i, lands) => w.abandoned_lands(i, lands),
        C::WitnessSilent(i) => {
            w.h[i].unanswered = true;
            w.h[i].verdicts.push_back(Verdict::Stop);
        }
        C::Verdict(i) => {
            if let Some(mut v) = w.h[i].verdicts.pop_front() {
                if w.h[1 - i].life == Life::Dead && !w.settings.witness {
                    // The arbiter decides when it answers: a peer gone since
                    // leaves this host the domain.
                    v = Verdict::Proceed;
                    w.h[i].verdicts.clear();
                }
                w.apply(i, Event::Verdict(v));
            }
        }
        C::User(i, r) => {
            let ev = [Event::Enable, Event::Disable, Event::SwitchOver][r as usize].clone();
            w.apply(i, ev);
        }
        C::Checkpoint(i) => w.apply(i, Event::Checkpoint),
        C::BreakColo => {
            w.log.push("COLO breaks".into());
            w.break_colo();
        }
        C::DomainStopped(i) => {
            if w.colo_runs() {
                w.break_colo();
            }
            w.h[i].colo_exit = false;
            w.h[i].copy_stopped = true;
            w.apply(i, Event::DomainStopped);
        }
        C::DomainStarted(i) => w.apply(i, Event::DomainStarted),
        C::HostDies(i) => {
            let lost = more();
            w.host_dies(i, lost);
        }
        C::HostReturns(i) => {
            let stopped = more().is_multiple_of(2);
            w.host_returns(i, stopped);
        }
        C::FtdDies(i) => {
            // G2: what is in flight is lost with the session.
            let lost = if gaps() { more() } else { 0 };
            let lands = more() % 2 == 1;
            w.ftd_dies(i, lost, lands);
        }
        C::FtdRestarts(i) => w.ftd_restarts(i),
        C::Cut { winner, alive } => {
            w.log.push(format!("link cut, winner {}", w.h[winner].name));
            for i in 0..2 {
                let lost = if gaps() { more() } else { 0 };
                w.cut_session(i, lost, Event::PeerLost);
            }
            w.cut = Some(Cut::Partition { winner, alive });
            // The cut link carried the pair's checkpoints (the witness's
            // model only; corosync's oracle keeps its own account).
            if w.settings.witness && !alive && w.colo_runs() {
                w.break_colo();
            }
        }
        C::Heal => {
            w.log.push("link heals".into());
            w.session = true;
            w.cut = None;
            for h in &mut w.h {
                h.inbox.push_back(Item::Link(Event::PeerUp));
            }
        }
    }
}
