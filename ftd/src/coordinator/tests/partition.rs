//! Partitions with an arbiter: what it changes in the table, and the pair through
//! a split, the verdicts and the heal, with the guarantee checked at every step:
//! never two copies serving.

use super::*;

const ARBITER: Settings = Settings {
    auto_reprotect: true,
    arbiter: true,
    witness: false,
};

fn with_arbiter(s: State) -> Coordinator {
    let mut c = in_state(s);
    c.set_settings(ARBITER);
    c
}

#[test]
fn with_an_arbiter_only_a_lost_peer_changes() {
    let mut changed = Vec::new();
    for s in State::ALL {
        for ev in events() {
            let (mut plain, mut arb) = (in_state(s), with_arbiter(s));
            let a = plain.on(ev.clone()).map(|_| plain.state()).ok();
            let b = arb.on(ev.clone()).map(|_| arb.state()).ok();
            if a != b {
                changed.push((s, ev.kind(), b));
            }
        }
    }
    assert_eq!(
        changed,
        [
            (
                State::Protected,
                EventKind::PeerLost,
                Some(State::Arbitrating)
            ),
            (
                State::SwitchingOver,
                EventKind::PeerLost,
                Some(State::SwitchingOver)
            ),
            // A daemon loss in the middle of a switch-over counts as the peer's
            // loss (re-attach), so the arbiter changes it the same way.
            (
                State::SwitchingOver,
                EventKind::PeerDaemonLost,
                Some(State::SwitchingOver)
            ),
            (
                State::Secondary,
                EventKind::PeerLost,
                Some(State::SecondaryArbitrating)
            ),
        ]
    );
    let mut c = with_arbiter(State::Protected);
    assert_eq!(c.on(Event::PeerLost).unwrap(), [Action::Arbitrate]);
    let mut c = with_arbiter(State::SwitchingOver);
    assert_eq!(c.on(Event::PeerLost).unwrap(), [], "the paused guest waits");
}

/// Is this copy one that clients can reach (running out of COLO)?
fn serves(c: &Coordinator) -> bool {
    matches!(
        c.state(),
        State::Degraded | State::Unprotected | State::Failed
    )
}

fn pair_with_arbiter() -> Pair {
    Pair::protected(ARBITER)
}

#[test]
fn primary_cut_off_is_fenced_and_rejoins_as_secondary() {
    let mut p = pair_with_arbiter();
    // The link is cut: both lose the peer and ask the arbiter.
    p.feed(true, Event::PeerLost);
    p.feed(false, Event::PeerLost);
    assert_eq!(
        (p.a.state(), p.b.state()),
        (State::Arbitrating, State::SecondaryArbitrating)
    );
    // a is without quorum: its guest is cut off (COLO already held its output).
    assert_eq!(
        p.a.on(Event::Verdict(Verdict::Stop)).unwrap(),
        [Action::Run(Step::Freeze)]
    );
    assert_eq!(p.a.on(Event::Verdict(Verdict::Stop)).unwrap(), [], "once");
    // The link coming back alone does not reconnect a frozen primary.
    assert_eq!(p.a.on(Event::PeerUp).unwrap(), []);
    assert_eq!(p.a.state(), State::Arbitrating);
    p.a.on(Event::PeerLost).unwrap();
    // b has quorum and a has certainly stopped: b takes over.
    p.feed(false, Event::Verdict(Verdict::Proceed));
    assert_eq!(p.b.state(), State::Degraded);
    assert!(p.b.last_failover().unwrap().contains("kept quorum"));
    assert!(serves(&p.b) && !serves(&p.a));
    // a's decision time passes without quorum: its copy is fenced.
    assert_eq!(
        p.a.on(Event::Verdict(Verdict::Lost)).unwrap(),
        [Action::Run(Step::DestroyPrimary)]
    );
    assert_eq!(p.a.state(), State::Fenced);
    assert!(p.a.last_failover().unwrap().starts_with("fenced"));
    assert_eq!(p.a.reported_state().name(), "fenced");
    // The link heals: b re-protects onto a, which becomes the secondary.
    p.feed(true, Event::PeerUp);
    p.feed(false, Event::PeerUp);
    assert_eq!(
        (p.a.state(), p.b.state()),
        (State::Secondary, State::Protected),
        "log:\n{}",
        p.log.join("\n")
    );
}

#[test]
fn secondary_cut_off_never_takes_over() {
    let mut p = pair_with_arbiter();
    p.feed(true, Event::PeerLost);
    p.feed(false, Event::PeerLost);
    // b is without quorum: nothing to pause (a secondary serves nobody).
    assert_eq!(p.b.on(Event::Verdict(Verdict::Stop)).unwrap(), []);
    // a keeps quorum: it leaves COLO and runs alone at once.
    assert_eq!(
        p.a.on(Event::Verdict(Verdict::Proceed)).unwrap(),
        [Action::Run(Step::LeaveColo)]
    );
    assert_eq!(p.a.state(), State::Degraded);
    assert_eq!(
        p.b.on(Event::Verdict(Verdict::Lost)).unwrap(),
        [Action::Run(Step::DestroySecondary)]
    );
    assert_eq!(p.b.state(), State::Fenced);
    p.feed(false, Event::PeerUp);
    p.feed(true, Event::PeerUp);
    p.assert_states(State::Protected, State::Secondary);
}

#[test]
fn a_link_back_before_the_verdict_keeps_one_copy() {
    // The secondary hears the primary again before any verdict: it gives its copy
    // up (a late verdict can no longer make it take over) and says so; the
    // primary, frozen or not, runs on alone and protects again.
    let mut p = pair_with_arbiter();
    p.feed(true, Event::PeerLost);
    p.feed(false, Event::PeerLost);
    p.a.on(Event::Verdict(Verdict::Stop)).unwrap();
    p.feed(false, Event::PeerUp);
    assert_eq!(p.b.state(), State::Standby);
    assert!(p.b.last_error().unwrap().contains("gives its secondary up"));
    assert!(p
        .log
        .iter()
        .any(|l| l.starts_with("A Peer(SecondaryFailed")));
    assert!(p.log.iter().any(|l| l.starts_with("A StepDone(LeaveColo)")));
    // A late verdict for b's old request changes nothing.
    p.feed(false, Event::Verdict(Verdict::Proceed));
    assert_eq!(p.b.state(), State::Standby);
    p.feed(true, Event::PeerUp);
    assert_eq!(
        (p.a.state(), p.b.state()),
        (State::Protected, State::Secondary),
        "log:\n{}",
        p.log.join("\n")
    );
}

#[test]
fn a_frozen_primary_whose_peer_took_over_rejoins_as_secondary() {
    // The heal comes after b took over but before a's verdict is final: b's
    // re-protection tells a that b runs the domain; a's copy goes.
    let mut p = pair_with_arbiter();
    p.feed(true, Event::PeerLost);
    p.feed(false, Event::PeerLost);
    p.a.on(Event::Verdict(Verdict::Stop)).unwrap();
    p.feed(false, Event::Verdict(Verdict::Proceed));
    p.feed(true, Event::PeerUp);
    assert_eq!(p.a.state(), State::Arbitrating);
    p.feed(false, Event::PeerUp);
    assert!(p.log.iter().any(|l| l.starts_with(
        "A Peer(HostSecondary) -> SecondaryPreparing [Run(DestroyPrimary), Run(CreateSecondary)]"
    )));
    assert_eq!(
        (p.a.state(), p.b.state()),
        (State::Secondary, State::Protected)
    );
}

#[test]
fn a_peer_that_stayed_in_the_cluster_is_not_a_host_loss() {
    let mut p = pair_with_arbiter();
    p.feed(true, Event::PeerLost);
    p.feed(false, Event::PeerLost);
    p.feed(true, Event::Verdict(Verdict::PeerAlive));
    p.feed(false, Event::Verdict(Verdict::PeerAlive));
    p.assert_states(State::Protected, State::Secondary);
    assert_eq!(p.a.last_failover(), None);
    // COLO broke meanwhile: the primary is cut off, and reconnected if the peer
    // is alive.
    let mut a = with_arbiter(State::Protected);
    a.on(Event::PeerLost).unwrap();
    assert_eq!(
        a.on(Event::ColoExited("error".into())).unwrap(),
        [Action::Run(Step::Freeze)]
    );
    assert_eq!(
        a.on(Event::Verdict(Verdict::PeerAlive)).unwrap(),
        [Action::Run(Step::Thaw)]
    );
}

#[test]
fn requests_wait_for_the_verdict() {
    let mut a = with_arbiter(State::Arbitrating);
    let e = a.on(Event::Disable).unwrap_err().to_string();
    assert!(e.contains("arbiter has not yet decided"), "{e}");
    let mut n = with_arbiter(State::Fenced);
    let e = n.on(Event::Enable).unwrap_err().to_string();
    assert!(e.contains("lost a partition"), "{e}");
}
