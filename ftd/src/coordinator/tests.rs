//! The coordinator's specification as tables and scenarios.
//!
//! `every_state_x_event` pins the next state (or rejection) of all 18 states x 60
//! events (every event kind, every peer message, every step's done/failed, every
//! re-attach finding, every verdict, a retry timer). The context is: protection wanted, peer
//! reachable, auto re-protect on, not re-attached, no arbiter;
//! `with_an_arbiter_only_a_lost_peer_changes` lists what an arbiter changes.
//! The scenarios run two coordinators against each other through a message pump.

use super::*;

mod model;
mod pair_property;
mod partition;
mod reattach;
mod schedule;
mod transitions;

fn code(s: State) -> char {
    match s {
        State::Unprotected => 'U',
        State::Preparing => 'P',
        State::Syncing => 'Y',
        State::Starting => 'T',
        State::Protected => 'R',
        State::Degraded => 'D',
        State::SwitchingOver => 'W',
        State::Disabling => 'X',
        State::Failed => 'F',
        State::Standby => 'S',
        State::SecondaryPreparing => 'Q',
        State::Secondary => 'C',
        State::TakingOver => 'K',
        State::Stopped => 'O',
        State::Arbitrating => 'A',
        State::SecondaryArbitrating => 'Z',
        State::Fenced => 'N',
        State::Reattaching => 'E',
    }
}

const STEPS: [Step; 12] = [
    Step::Sync,
    Step::StartColo,
    Step::LeaveColo,
    Step::Undo,
    Step::StopPrimary,
    Step::DestroyPrimary,
    Step::CreateSecondary,
    Step::DestroySecondary,
    Step::TakeOver,
    Step::Freeze,
    Step::Thaw,
    Step::Inspect,
];

fn events() -> Vec<Event> {
    let mut v = vec![
        Event::Enable,
        Event::Disable,
        Event::SwitchOver,
        Event::PeerUp,
        Event::PeerLost,
        Event::PeerDaemonLost,
    ];
    for m in [
        PeerMsg::HostSecondary,
        PeerMsg::SecondaryReady,
        PeerMsg::SecondaryFailed("boom".into()),
        PeerMsg::PrimaryProtected,
        PeerMsg::ReleaseSecondary,
        PeerMsg::TakeOver,
        PeerMsg::TookOver,
        PeerMsg::StandingBy,
        PeerMsg::CheckPair { primary: true },
        PeerMsg::CheckPair { primary: false },
        PeerMsg::PairConfirmed,
        PeerMsg::PairDenied {
            runs: true,
            why: "the peer's copy is degraded".into(),
        },
        PeerMsg::PairDenied {
            runs: false,
            why: "the peer's copy is standby".into(),
        },
        PeerMsg::ColoEnded,
    ] {
        v.push(Event::Peer(m));
    }
    v.extend(STEPS.iter().map(|s| Event::StepDone(*s)));
    v.extend(STEPS.iter().map(|s| Event::StepFailed(*s, "boom".into())));
    v.extend([
        Event::Checkpoint,
        Event::ColoExited("error".into()),
        Event::DomainStarted,
        Event::DomainStopped,
        Event::DiskFailed("no space".into()),
    ]);
    v.extend(
        [
            Found::ColoPrimary,
            Found::ColoSecondary,
            Found::Plain,
            Found::Leftovers("object comp0".into()),
            Found::StaleSecondary("inmigrate".into()),
            Found::Unreadable("no monitor".into()),
        ]
        .into_iter()
        .map(Event::Found),
    );
    v.extend(Verdict::ALL.map(Event::Verdict));
    v.push(Event::Retry(1));
    v
}

/// Columns: Enable Disable SwitchOver PeerUp PeerLost PeerDaemonLost | peer
/// messages HostSecondary SecondaryReady SecondaryFailed PrimaryProtected
/// ReleaseSecondary TakeOver TookOver StandingBy CheckPair(primary)
/// CheckPair(secondary) PairConfirmed PairDenied(runs) PairDenied(not) ColoEnded |
/// StepDone x 12 | StepFailed x 12 (Sync StartColo LeaveColo Undo StopPrimary
/// DestroyPrimary CreateSecondary DestroySecondary TakeOver Freeze Thaw Inspect) |
/// Checkpoint ColoExited DomainStarted DomainStopped DiskFailed | Found ColoPrimary
/// ColoSecondary Plain Leftovers StaleSecondary Unreadable | Verdict Stop Proceed
/// Lost PeerAlive | Retry (of the last failed attempt). `-` = rejected. No arbiter configured (see
/// `with_an_arbiter_only_a_lost_peer_changes`).
const TABLE: [(State, &str); 18] = [
    (
        State::Unprotected,
        "PU-PUU -------PUUUUUU UUUUUUUUUUUU UUUUUUUUUUUU -U-OU ------ UUUU U",
    ),
    (
        State::Preparing,
        "-X-PFF -YF----PPPPPPP --PP-P-P-PP- --PP-P-P-PP- -P-OP ------ PPPP P",
    ),
    (
        State::Syncing,
        "-X-YFF --F----YYYYYYY T-YY-Y-Y-YY- F-YY-Y-Y-YY- -Y-OY ------ YYYY Y",
    ),
    (
        State::Starting,
        "-X-TFF --F----TTTTTTT -RTT-T-T-TT- -FTT-T-T-TT- TF-OF ------ TTTT T",
    ),
    (
        State::Protected,
        "-XWRDR --D----RRRRSPR --RR-R-R-RR- --RR-R-R-RR- RD-OD ------ RRRR R",
    ),
    (
        State::Degraded,
        "PU-PDD -DD----PDDDDDD DDDDDDDDDDDD DDDDDDDDDDDD -D-OD ------ DDDD D",
    ),
    (
        State::SwitchingOver,
        "--WWDD --D---W-WWWWWW --WWWS-W-WW- --WWRS-W-WW- WW-WW ------ WWWW W",
    ),
    (
        State::Disabling,
        "-X-XXX -XX----XXXXXXX XXUUXXXXXXXX XXUUXXXXXXXX XX-OX ------ XXXX X",
    ),
    (
        State::Failed,
        "PU-PFF -FF----PFFFFFF FFFFFFFFFFFF FFFFFFFFFFFF -F-OF ------ FFFF P",
    ),
    (
        State::Standby,
        "-S-SSS Q-S-S--SSSSSSS SSSSSSSSSSSS SSSSSSSSSSSS -SPSS ------ SSSS S",
    ),
    (
        State::SecondaryPreparing,
        "---QSS Q--CS---QQQQQQ --QQ-QQQ-QQ- --QQ-QSQ-QQ- QSQSS ------ QQQQ Q",
    ),
    (
        State::Secondary,
        "---CKC ----SK-KCCCSSC --CC-C-C-CC- --CC-C-C-CC- CCCSS ------ CCCC C",
    ),
    (
        State::TakingOver,
        "---KKK ----K--KKKKKKK --KK-K-KPKK- --KK-K-KFKK- KKKOK ------ KKKK K",
    ),
    (
        State::Stopped,
        "OO-OOO Q-O-O--OOOOOOO OOOOOOOOOOOO OOOOOOOOOOOO -OPOO ------ OOOO O",
    ),
    (
        State::Arbitrating,
        "---AAA Q-D----AAAAAAA --AA-A-A-AA- --AA-A-A-AA- AA-OA ------ ADNR A",
    ),
    (
        State::SecondaryArbitrating,
        "---SZZ Q-Z-S--ZZZZZZZ --ZZ-Z-Z-ZZ- --ZZ-Z-Z-ZZ- ZZZSZ ------ ZKNC Z",
    ),
    (
        State::Fenced,
        "-N-NNN Q-N-N--NNNNNNN NNNNNNNNNNNN NNNNNNNNNNNN -NPNN ------ NNNN N",
    ),
    (
        State::Reattaching,
        "E--EEE EEEEEEEEEEEEEE --EE-E-E-EE- --EE-E-E-EE- -EEOE RCPPSF EEEE E",
    ),
];

fn in_state(s: State) -> Coordinator {
    let mut c = Coordinator::new(s, Settings::default());
    c.set_wanted(true);
    c.peer_up = true;
    c.attempts = 1;
    c
}

#[test]
fn every_state_x_event() {
    let evs = events();
    assert_eq!(evs.len(), 60);
    let mut wrong = Vec::new();
    for (state, row) in TABLE {
        let row: Vec<char> = row.chars().filter(|c| *c != ' ').collect();
        assert_eq!(
            row.len(),
            evs.len(),
            "row of {state:?} has {} columns",
            row.len()
        );
        for (ev, want) in evs.iter().zip(row) {
            let mut c = in_state(state);
            let got = match c.on(ev.clone()) {
                Ok(_) => code(c.state()),
                Err(e) => {
                    assert_eq!(
                        c.state(),
                        state,
                        "a rejected event must not change the state"
                    );
                    assert_eq!((e.state, e.event), (state, ev.kind()));
                    '-'
                }
            };
            if got != want {
                wrong.push(format!("{state:?} + {ev:?}: expected {want}, got {got}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} transitions differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // Every state has a row.
    for s in State::ALL {
        assert!(TABLE.iter().any(|(t, _)| *t == s), "{s:?} has no row");
    }
}

#[test]
fn rejected_events_name_state_event_and_reason() {
    let mut c = in_state(State::Secondary);
    let e = c.on(Event::Enable).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("Enable")
            && msg.contains("while the domain is secondary")
            && msg.contains("primary's host"),
        "{msg}"
    );
}

#[test]
fn protect_runs_the_steps_in_order() {
    let mut c = Coordinator::new(State::Unprotected, Settings::default());
    assert!(
        c.on(Event::PeerUp).unwrap().is_empty(),
        "no protection requested yet"
    );
    assert_eq!(
        c.on(Event::Enable).unwrap(),
        [Action::Send(PeerMsg::HostSecondary)]
    );
    assert_eq!(
        c.on(Event::Peer(PeerMsg::SecondaryReady)).unwrap(),
        [Action::Run(Step::Sync)]
    );
    assert_eq!(
        c.on(Event::StepDone(Step::Sync)).unwrap(),
        [Action::Run(Step::StartColo)]
    );
    assert_eq!(c.on(Event::Checkpoint).unwrap(), []);
    assert_eq!(
        c.on(Event::StepDone(Step::StartColo)).unwrap(),
        [Action::Send(PeerMsg::PrimaryProtected)]
    );
    assert_eq!(c.state(), State::Protected);
    c.on(Event::Checkpoint).unwrap();
    assert_eq!(c.checkpoints(), 2);
}

#[test]
fn enable_without_peer_fails_clearly_then_protects_when_peer_returns() {
    let mut c = Coordinator::new(State::Unprotected, Settings::default());
    assert_eq!(c.on(Event::Enable).unwrap(), []);
    assert_eq!(c.state(), State::Failed);
    assert!(c.last_error().unwrap().contains("unreachable"));
    assert_eq!(
        c.on(Event::PeerUp).unwrap(),
        [Action::Send(PeerMsg::HostSecondary)]
    );
    assert_eq!(c.state(), State::Preparing);
    assert_eq!(c.last_error(), None);
}

#[test]
fn a_failed_step_undoes_and_releases_the_secondary() {
    let mut c = in_state(State::Syncing);
    let a = c
        .on(Event::StepFailed(
            Step::Sync,
            "drive-mirror: NBD connect refused".into(),
        ))
        .unwrap();
    assert_eq!(
        a,
        [
            Action::Run(Step::Undo),
            Action::Send(PeerMsg::ReleaseSecondary),
            // The context's attempt 1 failed before: the second waits 20 s.
            Action::RetryIn {
                after: std::time::Duration::from_secs(20),
                attempt: 2
            }
        ]
    );
    assert_eq!(c.state(), State::Failed);
    let e = c.last_error().unwrap();
    assert!(
        e.contains("disk sync") && e.contains("NBD connect refused"),
        "{e}"
    );
}

#[test]
fn secondary_loss_leaves_colo_and_runs_alone() {
    let mut c = in_state(State::Protected);
    assert_eq!(
        c.on(Event::PeerLost).unwrap(),
        [Action::Run(Step::LeaveColo)]
    );
    assert_eq!(c.state(), State::Degraded);
    assert!(c.last_failover().unwrap().contains("secondary host lost"));
    // Re-protects by itself when the peer is back.
    assert_eq!(
        c.on(Event::PeerUp).unwrap(),
        [Action::Send(PeerMsg::HostSecondary)]
    );
}

#[test]
fn without_auto_reprotect_a_returning_peer_changes_nothing() {
    let mut c = Coordinator::new(
        State::Protected,
        Settings {
            auto_reprotect: false,
            arbiter: false,
            witness: false,
        },
    );
    c.set_wanted(true);
    c.on(Event::PeerLost).unwrap();
    assert_eq!(c.on(Event::PeerUp).unwrap(), []);
    assert_eq!(c.state(), State::Degraded);
    assert_eq!(
        c.on(Event::Enable).unwrap(),
        [Action::Send(PeerMsg::HostSecondary)]
    );
}

/// Two coordinators wired together: `Send` is delivered to the other side, `Run`
/// succeeds at once (or fails, for steps listed in `failing`).
struct Pair {
    a: Coordinator,
    b: Coordinator,
    log: Vec<String>,
}

impl Pair {
    fn new() -> Pair {
        let mut p = Pair {
            a: Coordinator::new(State::Unprotected, Settings::default()),
            b: Coordinator::new(State::Standby, Settings::default()),
            log: Vec::new(),
        };
        p.feed(true, Event::PeerUp);
        p.feed(false, Event::PeerUp);
        p
    }

    /// A pair with these settings on both sides, protected by A (asserted).
    fn protected(settings: Settings) -> Pair {
        let mut p = Pair::new();
        p.a.set_settings(settings);
        p.b.set_settings(settings);
        p.feed(true, Event::Enable);
        p.assert_states(State::Protected, State::Secondary);
        p
    }

    fn assert_states(&self, a: State, b: State) {
        assert_eq!(
            (self.a.state(), self.b.state()),
            (a, b),
            "log:\n{}",
            self.log.join("\n")
        );
    }

    /// Feed `ev` to A (`to_a`) or B and run everything that follows to quiescence.
    fn feed(&mut self, to_a: bool, ev: Event) {
        let mut queue = vec![(to_a, ev)];
        while let Some((to_a, ev)) = queue.pop() {
            let (name, c) = if to_a {
                ("A", &mut self.a)
            } else {
                ("B", &mut self.b)
            };
            let acts = c
                .on(ev.clone())
                .unwrap_or_else(|e| panic!("{name}: {e}\nlog:\n{}", self.log.join("\n")));
            self.log
                .push(format!("{name} {ev:?} -> {:?} {acts:?}", c.state()));
            // Execute in order: queue is a stack, so push in reverse.
            for a in acts.into_iter().rev() {
                match a {
                    Action::Run(st) => queue.push((to_a, Event::StepDone(st))),
                    Action::Send(m) => queue.push((!to_a, Event::Peer(m))),
                    Action::Arbitrate | Action::RetryIn { .. } => {}
                }
            }
        }
    }
}

#[test]
fn pair_protects_fails_over_and_fails_back() {
    let mut p = Pair::new();
    p.feed(true, Event::Enable);
    assert_eq!(
        (p.a.state(), p.b.state()),
        (State::Protected, State::Secondary)
    );

    // Host A dies: B takes over; A's coordinator is gone with its host.
    p.feed(false, Event::PeerLost);
    assert_eq!(p.b.state(), State::Degraded);
    assert!(p.b.last_failover().unwrap().contains("primary host lost"));

    // A comes back (its domain is shut off there): B re-protects onto A.
    p.a = Coordinator::new(State::Stopped, Settings::default());
    p.feed(true, Event::PeerUp);
    p.feed(false, Event::PeerUp);
    assert_eq!(
        (p.a.state(), p.b.state()),
        (State::Secondary, State::Protected)
    );

    // Planned fail-back: B hands over to A, then A re-protects onto B.
    p.feed(false, Event::SwitchOver);
    assert_eq!(
        (p.a.state(), p.b.state()),
        (State::Protected, State::Secondary),
        "log:\n{}",
        p.log.join("\n")
    );
    assert_eq!(p.b.last_failover(), Some("planned switch-over"));
    assert!(p
        .log
        .iter()
        .any(|l| l.starts_with("B StepDone(DestroyPrimary)")));
}

#[test]
fn pair_disable_releases_the_secondary() {
    let mut p = Pair::new();
    p.feed(true, Event::Enable);
    p.feed(true, Event::Disable);
    assert_eq!(
        (p.a.state(), p.b.state()),
        (State::Unprotected, State::Standby)
    );
    assert!(!p.a.wanted());
    assert!(p
        .log
        .iter()
        .any(|l| l.starts_with("B StepDone(DestroySecondary)")));
}

#[test]
fn secondary_that_cannot_start_fails_protection_cleanly() {
    let mut b = in_state(State::SecondaryPreparing);
    let acts = b
        .on(Event::StepFailed(
            Step::CreateSecondary,
            "PCI slot clash".into(),
        ))
        .unwrap();
    assert_eq!(b.state(), State::Standby);
    assert_eq!(
        acts[0],
        Action::Run(Step::DestroySecondary),
        "nothing is left behind on the peer"
    );
    let Action::Send(PeerMsg::SecondaryFailed(msg)) = &acts[1] else {
        panic!("the primary must be told: {acts:?}");
    };
    let mut a = in_state(State::Preparing);
    assert_eq!(
        a.on(Event::Peer(PeerMsg::SecondaryFailed(msg.clone())))
            .unwrap()[0],
        Action::Run(Step::Undo)
    );
    assert_eq!(a.state(), State::Failed);
    assert!(a.last_error().unwrap().contains("PCI slot clash"));
}

#[test]
fn protected_is_reported_after_the_first_checkpoint_of_the_session() {
    let mut c = Coordinator::new(State::Syncing, Settings::default());
    c.peer_up = true;
    c.on(Event::StepDone(Step::Sync)).unwrap();
    assert_eq!(c.reported_state(), State::Starting);
    c.on(Event::StepDone(Step::StartColo)).unwrap();
    assert_eq!(c.state(), State::Protected);
    assert_eq!(c.reported_state(), State::Starting, "no checkpoint yet");
    c.on(Event::Checkpoint).unwrap();
    assert_eq!(c.reported_state(), State::Protected);
    // A new session starts from zero again.
    c.on(Event::PeerLost).unwrap();
    assert_eq!(c.reported_state(), State::Degraded);
}

#[test]
fn a_dead_primary_copy_hands_over_to_the_secondary_and_hosts_the_next_one() {
    // A's QEMU dies; A's ftd notices first: B takes over, then protects onto A.
    let mut p = Pair::new();
    p.feed(true, Event::Enable);
    p.feed(true, Event::DomainStopped);
    assert_eq!(
        (p.a.state(), p.b.state()),
        (State::Secondary, State::Protected),
        "log:\n{}",
        p.log.join("\n")
    );
    assert_eq!(
        p.b.last_failover(),
        Some("the primary's copy stopped on its host")
    );
    assert!(
        p.log.iter().all(|l| !l.contains("ReleaseSecondary")),
        "the full copy is kept"
    );
}

#[test]
fn a_request_to_host_the_secondary_missed_while_the_old_copy_died_is_repeated() {
    // B took over on its own (COLO exited) and asked A to host the secondary
    // while A still thought itself protected: A refused. Once A notices its copy
    // stopped, it stands by, and B asks again.
    let mut a = in_state(State::Protected);
    assert!(a.on(Event::Peer(PeerMsg::HostSecondary)).is_err());
    let mut b = in_state(State::Preparing);
    let acts = a.on(Event::DomainStopped).unwrap();
    assert_eq!(acts, [Action::Send(PeerMsg::StandingBy)]);
    assert_eq!(a.state(), State::Stopped);
    assert_eq!(
        b.on(Event::Peer(PeerMsg::StandingBy)).unwrap(),
        [Action::Send(PeerMsg::HostSecondary)]
    );
    assert_eq!(
        a.on(Event::Peer(PeerMsg::HostSecondary)).unwrap(),
        [Action::Run(Step::CreateSecondary)]
    );
}

#[test]
fn a_secondary_whose_colo_ends_waits_for_the_primary_while_it_answers() {
    // The primary left COLO (its disk, its network, a bug): it releases the
    // secondary. Taking over first would run two copies.
    let mut b = in_state(State::Secondary);
    assert_eq!(
        b.on(Event::ColoExited("error".into())).unwrap(),
        [Action::Send(PeerMsg::ColoEnded)],
        "the primary is told to look at its copy now"
    );
    assert_eq!(b.state(), State::Secondary);
    let mut a = in_state(State::Protected);
    assert_eq!(a.on(Event::Peer(PeerMsg::ColoEnded)).unwrap(), []);
    assert_eq!(a.state(), State::Protected);
    assert_eq!(
        b.on(Event::Peer(PeerMsg::ReleaseSecondary)).unwrap(),
        [Action::Run(Step::DestroySecondary)]
    );
    // The primary's host is gone as well: take over.
    let mut b = in_state(State::Secondary);
    b.on(Event::ColoExited("error".into())).unwrap();
    assert_eq!(
        b.on(Event::PeerLost).unwrap(),
        [Action::Run(Step::TakeOver)]
    );
    // No peer to ask: take over at once.
    let mut b = in_state(State::Secondary);
    b.peer_up = false;
    assert_eq!(
        b.on(Event::ColoExited("error".into())).unwrap(),
        [Action::Run(Step::TakeOver)]
    );
    assert!(b
        .last_failover()
        .unwrap()
        .contains("COLO exited on the secondary"));
}

#[test]
fn a_full_secondary_disk_ends_colo_with_the_cause_on_both_sides() {
    // The secondary's host cannot store its copy: it drops it and says why.
    let mut b = in_state(State::Secondary);
    let why = "host b: no space left in /srv/overlays (colo.overlay-dir): free space there";
    let acts = b.on(Event::DiskFailed(why.into())).unwrap();
    assert_eq!(b.state(), State::Standby);
    assert_eq!(
        acts,
        [
            Action::Run(Step::DestroySecondary),
            Action::Send(PeerMsg::SecondaryFailed(why.into()))
        ]
    );
    assert_eq!(b.last_error(), Some(why));
    // The primary runs on alone, with the cause in its status.
    let mut a = in_state(State::Protected);
    assert_eq!(
        a.on(Event::Peer(PeerMsg::SecondaryFailed(why.into())))
            .unwrap(),
        [Action::Run(Step::LeaveColo)]
    );
    assert_eq!(a.state(), State::Degraded);
    assert!(a.last_error().unwrap().contains(why));
    // The primary sees the secondary's copy miss a write: release it, then leave.
    let mut a = in_state(State::Protected);
    let acts = a
        .on(Event::DiskFailed("the peer's copy: No space left".into()))
        .unwrap();
    assert_eq!(
        acts,
        [
            Action::Send(PeerMsg::ReleaseSecondary),
            Action::Run(Step::LeaveColo)
        ]
    );
    assert!(a
        .last_failover()
        .unwrap()
        .contains("replication to the secondary failed"));
}

#[test]
fn a_lost_peer_abandons_the_running_sync_for_the_undo() {
    let mut c = in_state(State::Syncing);
    assert!(c.waits_for(Step::Sync));
    assert_eq!(c.on(Event::PeerLost).unwrap(), [Action::Run(Step::Undo)]);
    assert!(!c.waits_for(Step::Sync), "the sync is abandoned");
    assert!(!Step::Sync.is_cleanup() && Step::Undo.is_cleanup());
    // Its late outcome changes nothing.
    assert_eq!(c.on(Event::StepDone(Step::Sync)).unwrap(), []);
    assert_eq!(c.state(), State::Failed);
}

#[test]
fn a_colo_exit_counts_only_in_the_mode_this_host_runs() {
    use State as S;
    // A fenced primary rejoining as secondary: its old QEMU's exit (mode primary)
    // must not end the new secondary.
    assert_eq!(S::SecondaryPreparing.colo_mode_here(), "secondary");
    assert_eq!(S::Secondary.colo_mode_here(), "secondary");
    assert_eq!(S::TakingOver.colo_mode_here(), "secondary");
    for s in [S::Starting, S::Protected, S::Preparing, S::Degraded] {
        assert_eq!(s.colo_mode_here(), "primary", "{s:?}");
    }
}
