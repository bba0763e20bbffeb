//! `docs/transitions.md`: the coordinator's transitions, generated from the
//! coordinator itself and checked in as the protocol's reference. The test
//! regenerates it and fails if the committed file differs; after a deliberate
//! change, `FTVIRT_BLESS=1 cargo test -p ftd --lib transitions` rewrites it
//! (then review the diff: it is the change in behaviour).

use super::*;
use std::fmt::Write as _;

/// A named context: the flags a coordinator has besides its state.
struct Context {
    name: &'static str,
    what: &'static str,
    set: fn(&mut Coordinator),
}

const CONTEXTS: [Context; 9] = [
    Context {
        name: "default",
        what: "protection wanted, peer reachable, automatic re-protection on, no arbiter, \
               one failed attempt so far (so `Retry(1)` is the pending timer)",
        set: |_| {},
    },
    Context {
        name: "arbiter",
        what: "as default, with a partition arbiter configured",
        set: |c| c.settings.arbiter = true,
    },
    Context {
        name: "witness",
        what: "as default, with the witness as the arbiter: every go-live is claimed on \
               the domain's record first",
        set: |c| {
            c.settings.arbiter = true;
            c.settings.witness = true;
        },
    },
    Context {
        name: "peer down",
        what: "as default, the peer unreachable (no heartbeat)",
        set: |c| c.peer_up = false,
    },
    Context {
        name: "not wanted",
        what: "as default, protection not requested",
        set: |c| c.wanted = false,
    },
    Context {
        name: "no auto",
        what: "as default, automatic re-protection off",
        set: |c| c.settings.auto_reprotect = false,
    },
    Context {
        name: "unconfirmed",
        what: "as default, re-attached after ftd's restart and the pair not yet confirmed \
               by the peer",
        set: |c| c.unconfirmed = true,
    },
    Context {
        name: "planned",
        what: "as default, during a planned switch-over",
        set: |c| c.planned = true,
    },
    Context {
        name: "frozen",
        what: "as default, the guest cut off the network by `Freeze` (only `Arbitrating` \
               keeps it so)",
        set: |c| c.frozen = true,
    },
];

/// The states in the order of the document, by side and phase.
const GROUPS: [(&str, &[State]); 6] = [
    (
        "The primary, setting protection up",
        &[
            State::Unprotected,
            State::Preparing,
            State::Syncing,
            State::Starting,
        ],
    ),
    (
        "The primary, protected",
        &[State::Protected, State::SwitchingOver, State::Disabling],
    ),
    ("The primary, alone", &[State::Degraded, State::Failed]),
    (
        "The secondary's side",
        &[
            State::Standby,
            State::Stopped,
            State::SecondaryPreparing,
            State::Secondary,
            State::TakingOver,
        ],
    ),
    (
        "Partitions (with an arbiter)",
        &[
            State::Arbitrating,
            State::SecondaryArbitrating,
            State::Fenced,
        ],
    ),
    ("After ftd's restart", &[State::Reattaching]),
];

/// What a state means, in one line (its doc comment, shortened).
fn about(s: State) -> &'static str {
    match s {
        State::Unprotected => "The domain runs here, alone, and protection is not requested.",
        State::Preparing => "Primary: the peer is creating the secondary.",
        State::Syncing => "Primary: full disk copy to the secondary; the guest runs.",
        State::Starting => {
            "Primary: wiring replication and the network proxy, migrating into COLO."
        }
        State::Protected => "Primary in COLO with a live secondary; checkpoints flow.",
        State::Degraded => {
            "The domain runs here alone although protection is requested; it re-protects \
             when a peer is back."
        }
        State::SwitchingOver => "Primary: planned hand-over to the secondary in progress.",
        State::Disabling => "Primary: tearing protection down on request.",
        State::Failed => {
            "The last protection attempt failed; the domain runs here alone, unharmed."
        }
        State::Standby => "The domain does not run here; the peer runs it (or nobody does).",
        State::SecondaryPreparing => {
            "Secondary: being created here, waiting for the primary's state."
        }
        State::Secondary => "Secondary in COLO.",
        State::TakingOver => "Secondary: the primary is gone or handed over; becoming the primary.",
        State::Stopped => "The domain is shut off on this host.",
        State::Arbitrating => {
            "Primary: the peer is unreachable; the arbiter decides which host keeps the domain."
        }
        State::SecondaryArbitrating => {
            "Secondary: the primary is unreachable; it takes over only on the arbiter's word."
        }
        State::Fenced => {
            "This host lost a partition: its copy was stopped; the peer keeps the domain."
        }
        State::Reattaching => {
            "ftd (re)started next to a running copy: it reads QEMU's state before deciding."
        }
    }
}

/// The event's kind and what distinguishes it within the kind (its data, for
/// the events whose data changes the outcome), for the row labels.
fn label(ev: &Event) -> (String, Option<String>) {
    let msg = |m: &PeerMsg| match m {
        PeerMsg::SecondaryFailed(_) => "SecondaryFailed".to_string(),
        PeerMsg::CheckPair { primary: true } => "CheckPair (the asker holds the primary)".into(),
        PeerMsg::CheckPair { primary: false } => "CheckPair (the asker holds the secondary)".into(),
        PeerMsg::PairDenied { runs: true, .. } => "PairDenied (the peer runs the domain)".into(),
        PeerMsg::PairDenied { runs: false, .. } => "PairDenied (the peer does not)".into(),
        m => format!("{m:?}"),
    };
    let found = |f: &Found| {
        let f = format!("{f:?}");
        f.split('(').next().unwrap_or_default().to_string()
    };
    let kind = format!("{:?}", ev.kind());
    let detail = match ev {
        Event::Peer(m) => Some(msg(m)),
        Event::StepDone(st) | Event::StepFailed(st, _) => Some(format!("{st:?}")),
        Event::Found(f) => Some(found(f)),
        Event::Verdict(v) => Some(format!("{v:?}")),
        Event::Retry(n) => Some(format!("{n}")),
        _ => None,
    };
    (kind, detail)
}

fn action(a: &Action) -> String {
    match a {
        Action::Send(PeerMsg::SecondaryFailed(_)) => "Send(SecondaryFailed)".into(),
        Action::Send(PeerMsg::PairDenied { runs, .. }) => {
            format!("Send(PairDenied {{ runs: {runs} }})")
        }
        Action::RetryIn { after, attempt } => {
            format!("RetryIn({}s, attempt {attempt})", after.as_secs())
        }
        a => format!("{a:?}"),
    }
}

/// One cell: what `ev` does in state `s` and context `ctx`.
fn cell(s: State, ctx: &Context, ev: &Event) -> String {
    let mut c = in_state(s);
    (ctx.set)(&mut c);
    match c.on(ev.clone()) {
        Err(e) => format!("refused: {}", e.why),
        Ok(acts) => {
            let to = if c.state() == s {
                "stays".to_string()
            } else {
                format!("→ **{:?}**", c.state())
            };
            if acts.is_empty() {
                to
            } else {
                let acts: Vec<String> = acts.iter().map(action).collect();
                format!("{to}: {}", acts.join(", "))
            }
        }
    }
}

fn anchor(s: State) -> String {
    format!("{s:?}").to_lowercase()
}

pub(super) fn generate() -> String {
    let evs = events();
    let mut out = String::new();
    let w = &mut out;
    writeln!(
        w,
        "# The coordinator's transitions\n\n\
         <!-- Generated by ftd/src/coordinator/tests/transitions.rs: do not edit. -->\n\n\
         What each protected domain's coordinator (`ftd/src/coordinator/`) does with every \
         event in every state: the next state, or why the event is refused, and the actions \
         it asks for. It is generated from the coordinator itself and checked by \
         `cargo test -p ftd --lib transitions`; after a deliberate change, regenerate it with \
         `FTVIRT_BLESS=1 cargo test -p ftd --lib transitions` and review the diff. The \
         sequences behind it (protect, fail over, switch over, re-attach, partitions) are \
         drawn in `ftd/src/coordinator/mod.rs` and `arbitration.rs`.\n\n\
         ## How to read it\n\n\
         - **Cells**: `→ **Next**` (the state changes) or `stays`, then the actions in the \
         order they are asked for; `refused: why` (an `InvalidTransition`: nothing changes, \
         the caller gets the reason).\n\
         - **Actions**: `Run(step)` runs a step (a QMP plan and/or libvirt calls; its outcome \
         comes back as `StepDone`/`StepFailed`), `Send(msg)` sends a message to the peer's \
         coordinator (it arrives there as `Peer: msg`), `RetryIn(delay, attempt n)` asks for \
         the retry timer (`Retry(n)`), `Arbitrate` asks the partition arbiter (its answer \
         comes back as `Verdict`).\n\
         - **Rows**: events of one kind with the same outcome in every context share a row \
         (`StepDone: Sync, StartColo`: the outcome of either step; `Peer: msg`: a message from \
         the peer; `Retry: 1`: the timer of the last failed attempt).\n\
         - **Columns** are contexts; `=` means the same as in the default column, and a \
         context that changes nothing in a state is left out of its table. The contexts:\n"
    )
    .unwrap();
    for ctx in &CONTEXTS {
        writeln!(w, "  - *{}*: {}.", ctx.name, ctx.what).unwrap();
    }
    writeln!(w, "\n## States\n").unwrap();
    for (group, states) in GROUPS {
        let links: Vec<String> = states
            .iter()
            .map(|s| format!("[{s:?}](#{})", anchor(*s)))
            .collect();
        writeln!(w, "- {group}: {}", links.join(", ")).unwrap();
    }
    for (group, states) in GROUPS {
        writeln!(w, "\n## {group}").unwrap();
        for &s in states {
            writeln!(w, "\n### {s:?}\n\n{}\n", about(s)).unwrap();
            // cells[event][context]
            let cells: Vec<Vec<String>> = evs
                .iter()
                .map(|ev| CONTEXTS.iter().map(|ctx| cell(s, ctx, ev)).collect())
                .collect();
            let shown: Vec<usize> = (0..CONTEXTS.len())
                .filter(|&i| i == 0 || cells.iter().any(|row| row[i] != row[0]))
                .collect();
            // Events of one kind with the same outcome everywhere share a row.
            let mut rows: Vec<(String, Vec<String>, &Vec<String>)> = Vec::new();
            for (ev, row) in evs.iter().zip(&cells) {
                let (kind, detail) = label(ev);
                match rows.iter_mut().find(|(k, _, r)| *k == kind && *r == row) {
                    Some((_, details, _)) => details.extend(detail),
                    None => rows.push((kind, detail.into_iter().collect(), row)),
                }
            }
            let head: Vec<&str> = shown.iter().map(|&i| CONTEXTS[i].name).collect();
            writeln!(w, "| Event | {} |", head.join(" | ")).unwrap();
            writeln!(w, "|---|{}", "---|".repeat(shown.len())).unwrap();
            for (kind, details, row) in rows {
                let vals: Vec<&str> = shown
                    .iter()
                    .map(|&i| {
                        if i > 0 && row[i] == row[0] {
                            "="
                        } else {
                            row[i].as_str()
                        }
                    })
                    .collect();
                let label = if details.is_empty() {
                    kind
                } else {
                    format!("{kind}: {}", details.join(", "))
                };
                writeln!(w, "| {label} | {} |", vals.join(" | ")).unwrap();
            }
        }
    }
    out
}

#[test]
fn transitions_doc_is_current() {
    let file = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/transitions.md");
    let now = generate();
    if std::env::var_os("FTVIRT_BLESS").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &now).unwrap();
        eprintln!("wrote {}", file.display());
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    if committed != now {
        let (n, (want, got)) = now
            .lines()
            .chain(std::iter::repeat(""))
            .zip(committed.lines().chain(std::iter::repeat("")))
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .unwrap_or((0, ("", "")));
        panic!(
            "{} does not match the coordinator (first difference at line {}):\n  \
             generated: {want}\n  committed: {got}\n\
             If the change in behaviour is deliberate, regenerate it with \
             `FTVIRT_BLESS=1 cargo test -p ftd --lib transitions` and review the diff.",
            file.display(),
            n + 1
        );
    }
}
