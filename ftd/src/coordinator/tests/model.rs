//! A model of two hosts around their coordinators, for the pair property test
//! (`pair_property.rs`): what each host's ftd, QEMU and peer link do with the
//! coordinators' actions, and the disturbances the test injects.
//!
//! - **The link** carries each direction's messages in order, one session after
//!   another, as the peer link does (`crate::peer`): a message goes out only while
//!   a session is open and arrives after the receiver's `PeerUp` and before the
//!   `PeerLost` (or `PeerDaemonLost`) that ends its session; when a session is cut,
//!   a random tail of what is still in flight is lost with it. While the session
//!   lasts nothing is lost, only delayed: each delivery is one of the random
//!   choices, interleaved with everything else.
//! - **Steps** (`Run`) are pending until a random choice completes them, done or
//!   failed, in any order; `Inspect` answers with what QEMU runs (`Found`).
//!   Timers (`RetryIn`) fire at a random later point.
//! - **Disturbances**: user requests on either host; checkpoints while a COLO
//!   pair runs; COLO breaking (each side in COLO then gets `ColoExited`, late);
//!   a copy stopping (`DomainStopped`, and the peer's COLO exits), a stopped
//!   domain started by hand where no copy runs anywhere (`DomainStarted`); the
//!   death of a host (its coordinator is gone; the other gets `PeerLost`, late)
//!   and its return (a fresh `Standby` or `Stopped` coordinator, `PeerUp` on both);
//!   the death of ftd alone (the coordinator stops deciding, its QEMU runs on as it
//!   was; the other gets `PeerDaemonLost`) and its restart (`Reattaching`, and
//!   `Found` from what the copy is and whether its COLO pair still runs).
//! - **The arbiter** (when configured): the link cut with both hosts alive, each
//!   getting `PeerLost`; an oracle decides once per cut and answers every
//!   `Arbitrate` consistently: one side wins (`Proceed`), the other loses (`Stop`,
//!   then `Lost`), or, for a cut of the ftd link only, both hear `PeerAlive`. As
//!   `crate::arbiter` promises, a winner that held the secondary hears `Proceed`
//!   only once the other side serves nothing. A dead peer makes the survivor win;
//!   a peer whose ftd alone died is `PeerAlive`.

use super::*;
use std::collections::VecDeque;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Life {
    Up,
    /// ftd died; the host and its QEMU run on.
    FtdDead,
    Dead,
}

/// What arrives from the peer's side, in order. A message carries the
/// protection attempt it belongs to (the model's bookkeeping, not the protocol's:
/// see `stale` in `pair_property.rs`).
#[derive(Clone, Debug)]
pub(super) enum Item {
    Msg(PeerMsg, u32),
    Link(Event),
}

/// Why the link is down, as the arbiter sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cut {
    /// Both hosts alive, cut apart: `winner` keeps the domain; with
    /// `alive`, only the ftd link is cut (the cluster still sees both).
    Partition {
        winner: usize,
        alive: bool,
    },
    Death,
    Ftd,
}

pub(super) struct Host {
    pub name: char,
    pub c: Coordinator,
    pub life: Life,
    pub inbox: VecDeque<Item>,
    /// Steps asked for and not finished, each with when it was asked for.
    pub steps: Vec<(Step, u64)>,
    pub timers: Vec<u32>,
    pub verdicts: VecDeque<Verdict>,
    /// A `COLO_EXIT` is on its way to this host's ftd.
    pub colo_exit: bool,
    /// `StopPrimary` paused the guest, and no later step resumed it (also
    /// once a restarted ftd re-attached to it). With `pause_seq`: when the step
    /// that decided it was asked for (steps run in order in the domain task, so
    /// the last one asked for decides, whichever outcome the model delivers first).
    pub paused: bool,
    pub pause_seq: u64,
    /// `Freeze` cut the guest off the network and no later `Thaw`
    /// reconnected it (`cut_seq` as `pause_seq`).
    pub cut_off: bool,
    pub cut_seq: u64,
    /// After an ftd restart: what QEMU runs here (what `Inspect` finds).
    pub found: Option<Found>,
    /// The copy stopped (`DomainStopped`) and none started since, whatever the
    /// state says (`SwitchingOver` stays until the peer took over).
    pub copy_stopped: bool,
    /// The protection attempts this host started (`HostSecondary` sent).
    pub attempts: u32,
    /// The attempt whose secondary this host was last asked to host.
    pub hosts_attempt: u32,
}

pub(super) struct World {
    pub h: [Host; 2],
    pub settings: Settings,
    pub session: bool,
    pub cut: Option<Cut>,
    /// The current COLO session broke (a COLO_EXIT, a stopped copy, a death);
    /// cleared when a new one starts, at `colo_seq`.
    pub colo_broken: bool,
    pub colo_seq: u64,
    /// Counts the steps asked for.
    pub seq: u64,
    pub log: Vec<String>,
}

pub(super) fn primary_colo(s: State) -> bool {
    use State as S;
    matches!(
        s,
        S::Starting | S::Protected | S::SwitchingOver | S::Disabling | S::Arbitrating
    )
}

pub(super) fn secondary_colo(s: State) -> bool {
    use State as S;
    matches!(
        s,
        S::SecondaryPreparing | S::Secondary | S::TakingOver | S::SecondaryArbitrating
    )
}

impl Host {
    fn new(name: char, c: Coordinator) -> Host {
        Host {
            name,
            c,
            life: Life::Up,
            inbox: VecDeque::new(),
            steps: Vec::new(),
            timers: Vec::new(),
            verdicts: VecDeque::new(),
            colo_exit: false,
            paused: false,
            pause_seq: 0,
            cut_off: false,
            cut_seq: 0,
            found: None,
            copy_stopped: false,
            attempts: 0,
            hosts_attempt: 0,
        }
    }

    /// Does a copy of the domain run on this host (whatever its role)?
    pub fn has_copy(&self) -> bool {
        let s = self.c.state();
        self.life != Life::Dead
            && !self.copy_stopped
            && (s.runs_primary_here()
                || s.holds_secondary()
                || (s == State::Reattaching && self.found.is_some()))
    }

    /// Is this host's copy a COLO primary (by its state, or as re-attached)?
    pub fn colo_primary(&self) -> bool {
        primary_colo(self.c.state())
            || (self.c.state() == State::Reattaching && self.found == Some(Found::ColoPrimary))
    }

    pub fn colo_secondary(&self) -> bool {
        secondary_colo(self.c.state())
            || (self.c.state() == State::Reattaching && self.found == Some(Found::ColoSecondary))
    }

    fn forget(&mut self) {
        self.inbox.clear();
        self.steps.clear();
        self.timers.clear();
        self.verdicts.clear();
        self.colo_exit = false;
    }
}

impl World {
    pub fn new(settings: Settings) -> World {
        let mut a = Coordinator::new(State::Unprotected, settings);
        a.set_wanted(true);
        let b = Coordinator::new(State::Standby, settings);
        let mut w = World {
            h: [Host::new('A', a), Host::new('B', b)],
            settings,
            session: false,
            cut: None,
            colo_broken: false,
            colo_seq: 0,
            seq: 0,
            log: Vec::new(),
        };
        w.open_session();
        w
    }

    /// Feed `ev` to host `i` and carry its actions out.
    pub fn apply(&mut self, i: usize, ev: Event) {
        let before = self.h[i].c.state();
        let out = self.h[i].c.on(ev.clone());
        let h = &mut self.h[i];
        let after = h.c.state();
        match &out {
            Ok(acts) => self
                .log
                .push(format!("{} {ev:?} -> {after:?} {acts:?}", h.name)),
            Err(e) => self
                .log
                .push(format!("{} {ev:?} refused: {}", h.name, e.why)),
        }
        let fresh = matches!(
            after,
            State::Standby | State::Stopped | State::Fenced | State::SecondaryPreparing
        );
        if fresh || ev == Event::DomainStarted {
            // No copy, or a new one: nothing paused or cut off.
            (h.paused, h.pause_seq, h.cut_off, h.cut_seq) = (false, self.seq, false, self.seq);
        }
        if ev == Event::DomainStarted || after == State::SecondaryPreparing {
            h.copy_stopped = false;
        }
        if !h.colo_primary() && !h.colo_secondary() {
            // A COLO_EXIT of the session this host left is moot (the domain
            // task handles QMP events in order, before anything later).
            h.colo_exit = false;
        }
        if after == State::Starting && before != State::Starting {
            // A new COLO session starts (StartColo runs).
            self.colo_broken = false;
            self.colo_seq = self.seq;
        }
        let Ok(acts) = out else {
            return;
        };
        for a in acts {
            match a {
                Action::Run(st) => {
                    self.seq += 1;
                    self.h[i].steps.push((st, self.seq));
                }
                Action::Send(m) => {
                    let h = &mut self.h[i];
                    let tag = match m {
                        PeerMsg::HostSecondary => {
                            h.attempts += 1;
                            h.attempts
                        }
                        _ => h.hosts_attempt,
                    };
                    if self.session && self.h[i].life == Life::Up {
                        self.h[1 - i].inbox.push_back(Item::Msg(m, tag));
                    } else {
                        self.log.push(format!("  ({m:?} lost: no session)"));
                    }
                }
                Action::RetryIn { attempt, .. } => self.h[i].timers = vec![attempt],
                Action::Arbitrate => {
                    let v = self.verdicts_for(i);
                    self.h[i].verdicts.extend(v);
                }
            }
        }
    }

    /// The oracle: what the arbiter answers host `i` for the current cut.
    fn verdicts_for(&self, i: usize) -> Vec<Verdict> {
        match self.cut {
            Some(Cut::Partition { alive: true, .. }) | Some(Cut::Ftd) | None => {
                vec![Verdict::PeerAlive]
            }
            Some(Cut::Partition { winner, .. }) if winner == i => vec![Verdict::Proceed],
            Some(Cut::Partition { .. }) => vec![Verdict::Stop, Verdict::Lost],
            Some(Cut::Death) => vec![Verdict::Proceed],
        }
    }

    fn open_session(&mut self) {
        self.session = true;
        self.cut = None;
        for h in &mut self.h {
            h.inbox.push_back(Item::Link(Event::PeerUp));
        }
    }

    /// Cut the session: host `to` loses `lost` items of what is in flight to
    /// it and then hears `ev`.
    pub fn cut_session(&mut self, to: usize, lost: usize, ev: Event) {
        self.session = false;
        let inbox = &mut self.h[to].inbox;
        let keep = inbox.len().saturating_sub(lost);
        let dropped = inbox.len() - keep;
        inbox.truncate(keep);
        inbox.push_back(Item::Link(ev.clone()));
        self.log.push(format!(
            "  link cut: {} loses {dropped} in flight, then {ev:?}",
            self.h[to].name
        ));
    }

    /// COLO breaks: every side in COLO gets its exit (late).
    pub fn break_colo(&mut self) {
        self.colo_broken = true;
        for h in &mut self.h {
            if h.life == Life::Up && (h.colo_primary() || h.colo_secondary()) {
                h.colo_exit = true;
            }
        }
    }

    /// Does a COLO pair run (a primary in COLO here, its secondary there)?
    pub fn colo_runs(&self) -> bool {
        let [a, b] = &self.h;
        !self.colo_broken
            && self.h.iter().all(|h| h.life != Life::Dead)
            && ((a.colo_primary() && b.colo_secondary())
                || (a.colo_secondary() && b.colo_primary()))
    }

    pub fn host_dies(&mut self, i: usize, lost: usize) {
        self.log.push(format!("{} host dies", self.h[i].name));
        let colo = self.colo_runs();
        self.h[i].life = Life::Dead;
        self.h[i].forget();
        self.cut = Some(Cut::Death);
        if colo {
            self.break_colo();
        }
        if self.h[1 - i].life == Life::Up {
            self.cut_session(1 - i, lost, Event::PeerLost);
        }
        // The arbiter sees the peer leave: the survivor keeps the domain.
        let pending = &mut self.h[1 - i].verdicts;
        if !pending.is_empty() {
            *pending = VecDeque::from([Verdict::Proceed]);
        }
    }

    pub fn host_returns(&mut self, i: usize, stopped: bool) {
        let s = if stopped {
            State::Stopped
        } else {
            State::Standby
        };
        self.log
            .push(format!("{} host returns: {s:?}", self.h[i].name));
        let attempts = self.h[i].attempts;
        self.h[i] = Host::new(self.h[i].name, Coordinator::new(s, self.settings));
        self.h[i].attempts = attempts;
        self.open_session();
    }

    pub fn ftd_dies(&mut self, i: usize, lost: usize) {
        self.log.push(format!("{} ftd dies", self.h[i].name));
        self.h[i].life = Life::FtdDead;
        self.h[i].forget();
        if !matches!(self.cut, Some(Cut::Partition { .. })) {
            self.cut = Some(Cut::Ftd);
        }
        self.cut_session(1 - i, lost, Event::PeerDaemonLost);
    }

    /// ftd starts again next to what QEMU runs here.
    pub fn ftd_restarts(&mut self, i: usize) {
        let found = self.found(i);
        if self.h[i].c.state() == State::TakingOver && self.colo_runs() {
            // Its takeover ran (the copy is found plain): COLO ended.
            self.break_colo();
        }
        let old = &self.h[i].c;
        let (wanted, state) = (old.wanted(), old.state());
        let mut c = match found {
            Some(_) => Coordinator::new(State::Reattaching, self.settings),
            None if state == State::Stopped => Coordinator::new(State::Stopped, self.settings),
            None => Coordinator::new(State::Standby, self.settings),
        };
        c.set_wanted(wanted);
        self.log.push(format!(
            "{} ftd restarts: {:?}, QEMU shows {found:?}",
            self.h[i].name,
            c.state()
        ));
        let mut h = Host::new(self.h[i].name, c);
        (h.attempts, h.hosts_attempt) = (self.h[i].attempts, self.h[i].hosts_attempt);
        // The guest stays as it was: paused, cut off the network.
        let old = &self.h[i];
        (h.paused, h.pause_seq, h.cut_off, h.cut_seq) =
            (old.paused, old.pause_seq, old.cut_off, old.cut_seq);
        for a in h.c.start() {
            let Action::Run(st) = a else {
                panic!("start() asked for {a:?}")
            };
            self.seq += 1;
            h.steps.push((st, self.seq));
        }
        h.found = found;
        self.h[i] = h;
        if self.h[1 - i].life == Life::Up {
            self.open_session();
        }
    }

    /// What `Inspect` finds on host `i` (whose ftd is down): its copy as it
    /// was left. A copy in COLO stays in COLO mode until ftd fails it over
    /// (`x-colo-lost-heartbeat`), even when its pair broke meanwhile (QEMU then
    /// waits for that command): nobody sent it.
    fn found(&self, i: usize) -> Option<Found> {
        use State as S;
        let h = &self.h[i];
        if h.copy_stopped {
            return None;
        }
        match h.c.state() {
            S::Protected | S::SwitchingOver | S::Arbitrating => Some(Found::ColoPrimary),
            S::Starting | S::Syncing | S::Disabling => Some(Found::Leftovers("model".into())),
            S::Unprotected | S::Preparing | S::Degraded | S::Failed | S::TakingOver => {
                Some(Found::Plain)
            }
            S::Secondary | S::SecondaryArbitrating => Some(Found::ColoSecondary),
            S::SecondaryPreparing => Some(Found::StaleSecondary("model".into())),
            S::Reattaching => h.found.clone(),
            S::Standby | S::Stopped | S::Fenced => None,
        }
    }
}
