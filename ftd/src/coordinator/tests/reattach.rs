//! Re-attaching: the peer's ftd lost while COLO runs, a restarted ftd taking up
//! what QEMU runs, and the pair check, alone and against a peer.

use super::*;

/// ftd restarted next to a running domain: `Inspect` first, nothing else.
fn reattaching() -> Coordinator {
    let mut c = Coordinator::new(State::Reattaching, Settings::default());
    c.set_wanted(true);
    assert_eq!(c.start(), [Action::Run(Step::Inspect)]);
    c
}

#[test]
fn the_peers_ftd_gone_keeps_colo_running_until_its_host_goes_too() {
    for (state, host_loss) in [
        (State::Protected, Action::Run(Step::LeaveColo)),
        (State::Secondary, Action::Run(Step::TakeOver)),
    ] {
        let mut c = in_state(state);
        assert_eq!(c.on(Event::PeerDaemonLost).unwrap(), []);
        assert_eq!(c.state(), state, "COLO goes on");
        assert!(!c.peer_up());
        assert!(c
            .last_error()
            .unwrap()
            .contains("peer's ftd is not running"));
        // Its host stops answering too: the usual host-loss handling.
        assert_eq!(c.on(Event::PeerLost).unwrap(), [host_loss]);
        assert_eq!(c.last_error(), None, "the note is gone with the host");
        // Or the ftd comes back: the note goes.
        let mut c = in_state(state);
        c.on(Event::PeerDaemonLost).unwrap();
        assert_eq!(c.on(Event::PeerUp).unwrap(), [], "nothing to check");
        assert_eq!(c.last_error(), None);
    }
    // Anything the peer's ftd was in the middle of counts as the peer's loss.
    let mut c = in_state(State::Syncing);
    assert_eq!(
        c.on(Event::PeerDaemonLost).unwrap(),
        [Action::Run(Step::Undo)]
    );
    assert_eq!(c.state(), State::Failed);
}

#[test]
fn reattached_primary_checks_the_pair_and_reports_protected_after_a_checkpoint() {
    let mut c = reattaching();
    // The peer link is not up yet: nothing to send.
    assert_eq!(c.on(Event::Found(Found::ColoPrimary)).unwrap(), []);
    assert_eq!(c.state(), State::Protected);
    assert_eq!(
        c.reported_state(),
        State::Starting,
        "no checkpoint seen yet"
    );
    assert!(c.unconfirmed() && c.wanted());
    assert_eq!(
        c.on(Event::PeerUp).unwrap(),
        [Action::Send(PeerMsg::CheckPair { primary: true })]
    );
    assert_eq!(c.on(Event::Peer(PeerMsg::PairConfirmed)).unwrap(), []);
    assert!(!c.unconfirmed());
    assert_eq!(c.on(Event::PeerUp).unwrap(), [], "checked once");
    c.on(Event::Checkpoint).unwrap();
    assert_eq!(c.reported_state(), State::Protected);
}

#[test]
fn requests_wait_for_the_inspection() {
    let mut c = reattaching();
    c.set_wanted(false);
    assert_eq!(c.on(Event::Enable).unwrap(), [], "remembered");
    assert!(c.wanted());
    let e = c.on(Event::Disable).unwrap_err().to_string();
    assert!(e.contains("after its restart"), "{e}");
    // A plain running domain is then protected.
    c.peer_up = true;
    assert_eq!(
        c.on(Event::Found(Found::Plain)).unwrap(),
        [Action::Send(PeerMsg::HostSecondary)]
    );
}

#[test]
fn what_cannot_be_re_attached_is_cleaned_up_and_explained() {
    let mut c = reattaching();
    c.peer_up = true;
    let acts = c
        .on(Event::Found(Found::Leftovers("object comp0".into())))
        .unwrap();
    assert_eq!(
        acts,
        [
            Action::Run(Step::Undo),
            Action::Send(PeerMsg::HostSecondary)
        ],
        "cleaned, then protected again"
    );
    assert!(c.last_error().unwrap().contains("object comp0"));

    let mut c = reattaching();
    let acts = c
        .on(Event::Found(Found::StaleSecondary(
            "QEMU is inmigrate".into(),
        )))
        .unwrap();
    assert_eq!(c.state(), State::Standby);
    assert_eq!(acts[0], Action::Run(Step::DestroySecondary));
    assert!(c.last_error().unwrap().contains("inmigrate"));

    let mut c = reattaching();
    c.peer_up = true;
    assert_eq!(
        c.on(Event::Found(Found::Unreadable("monitor busy".into())))
            .unwrap(),
        []
    );
    assert_eq!(c.state(), State::Failed);
    assert!(c.last_error().unwrap().contains("monitor busy"));
    assert_eq!(
        c.on(Event::PeerUp).unwrap(),
        [],
        "not protected blindly: it may be half of a COLO pair"
    );
}

/// A pair protected by A, then one host's ftd restarts (killed: its peer sees
/// the ftd, not the host, go) and re-attaches to what QEMU runs there.
fn protected_pair() -> Pair {
    Pair::protected(Settings::default())
}

#[test]
fn pair_primary_ftd_restart_re_attaches_without_a_step() {
    let mut p = protected_pair();
    p.feed(false, Event::PeerDaemonLost);
    assert_eq!(p.b.state(), State::Secondary, "no takeover");
    p.a = reattaching();
    p.feed(true, Event::Found(Found::ColoPrimary));
    p.feed(true, Event::PeerUp);
    p.feed(false, Event::PeerUp);
    p.assert_states(State::Protected, State::Secondary);
    assert!(!p.a.unconfirmed());
    assert_eq!((p.a.last_error(), p.b.last_error()), (None, None));
    let since_restart = p.log.iter().skip_while(|l| !l.contains("Found"));
    assert!(
        since_restart.clone().all(|l| !l.contains("Run(")),
        "re-attaching runs no step: {:?}",
        p.log
    );
    assert!(since_restart
        .clone()
        .any(|l| l.starts_with("B Peer(CheckPair { primary: true })")));
}

#[test]
fn pair_secondary_ftd_restart_re_attaches_without_a_step() {
    let mut p = protected_pair();
    p.feed(true, Event::PeerDaemonLost);
    assert_eq!(p.a.state(), State::Protected, "COLO goes on");
    p.b = reattaching();
    p.b.set_wanted(false);
    p.feed(false, Event::Found(Found::ColoSecondary));
    p.feed(false, Event::PeerUp);
    p.feed(true, Event::PeerUp);
    p.assert_states(State::Protected, State::Secondary);
    assert!(!p.b.unconfirmed());
    // And protection works: A's host dies, B takes over.
    p.feed(false, Event::PeerLost);
    assert_eq!(p.b.state(), State::Degraded);
}

#[test]
fn pair_reattached_primary_whose_secondary_is_gone_leaves_colo_and_re_protects() {
    let mut p = protected_pair();
    // B's secondary died while A's ftd was down; B's ftd destroyed it.
    p.b = Coordinator::new(State::Standby, Settings::default());
    p.a = reattaching();
    p.feed(false, Event::PeerUp);
    p.feed(true, Event::Found(Found::ColoPrimary));
    p.feed(true, Event::PeerUp);
    assert_eq!(
        (p.a.state(), p.b.state()),
        (State::Protected, State::Secondary),
        "log:\n{}",
        p.log.join("\n")
    );
    assert!(p.a.last_failover().unwrap().contains("holds no secondary"));
    assert!(p.log.iter().any(|l| l.starts_with("A StepDone(LeaveColo)")));
    assert!(p
        .log
        .iter()
        .any(|l| l.starts_with("B StepDone(CreateSecondary)")));
}

#[test]
fn pair_reattached_secondary_of_a_primary_that_left_colo_is_destroyed_and_replaced() {
    let mut p = protected_pair();
    p.feed(true, Event::PeerLost);
    assert_eq!(p.a.state(), State::Degraded);
    p.b = reattaching();
    p.b.set_wanted(false);
    // B's ftd is back: A re-protects at once, but B drops HostSecondary while
    // it re-attaches.
    p.feed(false, Event::PeerUp);
    p.feed(true, Event::PeerUp);
    assert_eq!(p.a.state(), State::Preparing);
    p.feed(false, Event::Found(Found::ColoSecondary));
    assert!(p
        .log
        .iter()
        .any(|l| l.starts_with("B StepDone(DestroySecondary)")));
    assert_eq!(
        (p.a.state(), p.b.state()),
        (State::Protected, State::Secondary),
        "A re-protected onto B: log:\n{}",
        p.log.join("\n")
    );
}

#[test]
fn pair_reattached_primary_whose_peer_took_over_gives_its_copy_up() {
    let mut p = protected_pair();
    p.feed(false, Event::PeerLost);
    assert_eq!(p.b.state(), State::Degraded);
    p.a = reattaching();
    p.feed(true, Event::PeerUp);
    p.feed(false, Event::PeerUp);
    assert_eq!(p.b.state(), State::Preparing, "re-protects at once");
    p.feed(true, Event::Found(Found::ColoPrimary));
    assert!(p
        .log
        .iter()
        .any(|l| l.starts_with("A StepDone(DestroyPrimary)")));
    assert!(p.a.last_error().unwrap().contains("peer runs the domain"));
    assert_eq!(
        (p.a.state(), p.b.state()),
        (State::Secondary, State::Protected),
        "B re-protected onto A: log:\n{}",
        p.log.join("\n")
    );
}

#[test]
fn pair_copy_stopping_while_its_ftd_re_attaches_hands_over_to_the_secondary() {
    // A's ftd restarts next to its COLO primary, whose QEMU dies before
    // Inspect read it. B's COLO exits while A's ftd answers, so B waits for
    // word from A: A must say that its copy is gone, or nobody runs the domain.
    let mut p = protected_pair();
    p.feed(false, Event::PeerDaemonLost);
    p.a = reattaching();
    p.feed(true, Event::PeerUp);
    p.feed(false, Event::PeerUp);
    p.feed(false, Event::ColoExited("the primary died".into()));
    assert_eq!(p.b.state(), State::Secondary, "waits for the primary's ftd");
    p.feed(true, Event::DomainStopped);
    assert_eq!(
        (p.a.state(), p.b.state()),
        (State::Secondary, State::Protected),
        "B took over and protects onto A; log:\n{}",
        p.log.join("\n")
    );
    assert_eq!(
        p.b.last_failover(),
        Some("the primary's copy stopped on its host")
    );
}
