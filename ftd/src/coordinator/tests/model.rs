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
//! - **The witness** (when it is the arbiter): one record, changed by the real
//!   claim rules (`crate::witness::claim`: `plan_pair` when `StartColo` completes,
//!   `plan_go_live` for each `Arbitrate`). A claim is decided against the record
//!   at a random later point (the store's answer), its verdict delivered later
//!   still; the witness may also fail to answer first (`Stop`, the claim goes on).
//!   A claim in flight when its host or ftd dies lands in the record or not, at
//!   random. A cut of the link between two live hosts breaks their COLO session
//!   (it carries the checkpoints and the secondary's packets), unless only the
//!   ftd link is cut; and a secondary taking over serves once its `TakeOver` step
//!   is done (until `x-colo-lost-heartbeat`, its packets go to the primary's
//!   colo-compare only).

use super::*;
use crate::arbiter::Role;
use crate::witness::claim::{plan_go_live, plan_pair, Claim, Plan};
use crate::witness::Record;
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
    /// With the witness: a go-live claim sent and not yet decided by the store
    /// (the role it claims for), and whether the witness failed to answer it once.
    pub claim: Option<Role>,
    pub unanswered: bool,
    /// A claim given up while its call may be in flight (the state left the
    /// arbitrating states, or a new claim replaced it, or ftd or the host died):
    /// the record as it was then, which its swap compares against if it lands.
    pub abandoned: Option<(Role, Option<Record>)>,
    /// `StartColo` steps (by when they were asked for) whose pairing already
    /// happened, and whether it was granted: a step runs only after every step
    /// asked for before it, so a later step's outcome means it paired already.
    pub paired: Vec<(u64, bool)>,
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
    /// The witness's record of the domain (with the witness as the arbiter).
    pub record: Option<Record>,
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
            claim: None,
            unanswered: false,
            abandoned: None,
            paired: Vec::new(),
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
        self.paired.clear();
        self.timers.clear();
        self.verdicts.clear();
        self.colo_exit = false;
        self.unanswered = false;
    }

    /// What this host asks the witness for.
    pub fn claim_request(&self) -> Claim {
        let me = self.name.to_ascii_lowercase().to_string();
        let peer = if me == "a" { "b" } else { "a" };
        Claim {
            domain: "g".into(),
            disk: Some(format!("/disks/{me}").into()),
            me,
            peer: peer.into(),
        }
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
            record: None,
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
        if !matches!(after, State::Arbitrating | State::SecondaryArbitrating) {
            self.abandon_claim(i);
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
                Action::Arbitrate if self.settings.witness => {
                    self.abandon_claim(i);
                    let h = &mut self.h[i];
                    h.claim = Some(if h.c.state().holds_secondary() {
                        Role::Secondary
                    } else {
                        Role::Primary
                    });
                    h.unanswered = false;
                    h.verdicts.clear();
                }
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

    /// The store decides host `i`'s claim now: the record changes if it wins.
    pub fn decide_claim(&mut self, i: usize) -> Option<Verdict> {
        let role = self.h[i].claim.take()?;
        let c = self.h[i].claim_request();
        let (v, how) = match plan_go_live(&c, role, self.record.as_ref()) {
            Plan::Swap(r) => {
                self.record = Some(r);
                (Verdict::Proceed, "won")
            }
            Plan::Won => (Verdict::Proceed, "already held"),
            Plan::Lost(_) => (Verdict::Lost, "lost"),
        };
        self.log.push(format!(
            "  witness: {}'s claim {how}: {:?}",
            self.h[i].name, self.record
        ));
        Some(v)
    }

    /// `StartColo` of host `i` is about to complete: the pairing record. `false`:
    /// refused (another host holds the domain), the step fails.
    pub fn pair_once(&mut self, i: usize, seq: u64) -> bool {
        if let Some(&(_, granted)) = self.h[i].paired.iter().find(|(s, _)| *s == seq) {
            return granted;
        }
        let granted = self.pair(i);
        self.h[i].paired.push((seq, granted));
        granted
    }

    /// Every `StartColo` of host `i` asked for before `seq` has run its pairing
    /// by the time the step asked for at `seq` ends (steps run in order).
    pub fn pair_earlier(&mut self, i: usize, seq: u64) {
        let earlier: Vec<u64> = self.h[i]
            .steps
            .iter()
            .filter(|(st, s)| *st == Step::StartColo && *s < seq)
            .map(|(_, s)| *s)
            .collect();
        for s in earlier {
            self.pair_once(i, s);
        }
    }

    fn pair(&mut self, i: usize) -> bool {
        let c = self.h[i].claim_request();
        match plan_pair(&c, self.record.as_ref()) {
            Plan::Swap(r) => {
                self.record = Some(r);
                true
            }
            Plan::Won => true,
            Plan::Lost(_) => false,
        }
    }

    /// Host `i`'s task gives its claim up (the receiver dropped): a call in
    /// flight may still land later ([`World::abandoned_lands`]). An earlier
    /// abandoned claim still pending lands now, or not (`lands`).
    pub fn abandon_claim(&mut self, i: usize) {
        let Some(role) = self.h[i].claim.take() else {
            return;
        };
        if self.h[i].abandoned.is_some() {
            self.abandoned_lands(i, true);
        }
        self.log.push(format!(
            "  {}'s claim given up (may be in flight)",
            self.h[i].name
        ));
        self.h[i].abandoned = Some((role, self.record.clone()));
    }

    /// An abandoned claim's swap reaches the store (`lands`) or never does: it
    /// compares against the record it was sent with.
    pub fn abandoned_lands(&mut self, i: usize, lands: bool) {
        let Some((role, seen)) = self.h[i].abandoned.take() else {
            return;
        };
        if !lands || self.record != seen {
            self.log.push(format!(
                "  {}'s abandoned claim: {}",
                self.h[i].name,
                if lands {
                    "lost (the record changed)"
                } else {
                    "never arrives"
                }
            ));
            return;
        }
        let c = self.h[i].claim_request();
        if let Plan::Swap(r) = plan_go_live(&c, role, seen.as_ref()) {
            self.log.push(format!(
                "  {}'s abandoned claim lands: {r:?}",
                self.h[i].name
            ));
            self.record = Some(r);
        }
    }

    /// Host `i` or its ftd dies with a claim in flight: it lands or not.
    fn claim_in_flight(&mut self, i: usize, lands: bool) {
        self.abandon_claim(i);
        self.abandoned_lands(i, lands);
    }

    pub fn host_dies(&mut self, i: usize, lost: usize) {
        self.log.push(format!("{} host dies", self.h[i].name));
        self.claim_in_flight(i, lost % 2 == 1);
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
        // (The witness decides by its record alone.)
        let pending = &mut self.h[1 - i].verdicts;
        if !pending.is_empty() && !self.settings.witness {
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

    pub fn ftd_dies(&mut self, i: usize, lost: usize, lands: bool) {
        self.log.push(format!("{} ftd dies", self.h[i].name));
        self.claim_in_flight(i, lands);
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
