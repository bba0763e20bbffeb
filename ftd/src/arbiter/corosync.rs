//! The corosync driver: one thread that owns the connections to the local corosync
//! (libcmap to read its configuration, libquorum to follow quorum and membership),
//! through the `rust-corosync` bindings, and publishes each change as a [`View`].
//!
//! corosync's client libraries are blocking C over libqb IPC (abstract Unix sockets,
//! so per network namespace: each lab host reaches its own corosync). The thread
//! polls the quorum handle's file descriptor and dispatches its callbacks; a lost
//! connection (corosync stopped or restarted) is published as a disconnected view,
//! which the judge treats as "no quorum", and the thread reconnects every second.

use super::judge::{Params, Timing, View};
use super::topology::{self, Topology, Value, PREFIXES};
use super::ArbiterError;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use rust_corosync::{cmap, quorum, CsError, DispatchFlags, NodeId, TrackFlags};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What the driver needs to know of ftd's configuration.
#[derive(Debug, Clone)]
pub struct Target {
    /// The peer's host name (ftd's `peers[0].name`), as in corosync's nodelist.
    pub peer: String,
    /// The peer's replication address (matched against `ring0_addr` otherwise).
    pub peer_addr: String,
    /// The arbiter's margin (ftd.yaml `arbiter.fence-margin`).
    pub margin: Duration,
}

/// The last quorum notification, handed from the callback to the thread's loop
/// (both run on the driver thread: `dispatch` calls the callback).
struct Notice {
    quorate: bool,
    ring: (u32, u64),
    members: Vec<u32>,
}

thread_local! {
    static NOTICE: RefCell<Option<Notice>> = const { RefCell::new(None) };
}

fn on_quorum(_h: &quorum::Handle, quorate: bool, ring: quorum::RingId, members: Vec<NodeId>) {
    let n = Notice {
        quorate,
        ring: (u32::from(ring.nodeid), ring.seq),
        members: members.into_iter().map(u32::from).collect(),
    };
    NOTICE.with(|c| *c.borrow_mut() = Some(n));
}

fn unreachable(e: CsError) -> ArbiterError {
    ArbiterError::Unreachable(e.to_string())
}

/// Read ftd's cmap keys once (a short-lived connection).
pub fn read_keys() -> Result<BTreeMap<String, Value>, ArbiterError> {
    let h = cmap::initialize(cmap::Map::Icmap).map_err(unreachable)?;
    let mut keys = BTreeMap::new();
    for prefix in PREFIXES {
        let it = cmap::CmapIterStart::new(&h, prefix).map_err(unreachable)?;
        for item in it {
            let v = match item.data() {
                cmap::Data::String(s) => Value::Str(s.clone()),
                cmap::Data::UInt8(n) => Value::Num((*n).into()),
                cmap::Data::UInt16(n) => Value::Num((*n).into()),
                cmap::Data::UInt32(n) => Value::Num((*n).into()),
                cmap::Data::UInt64(n) => Value::Num(*n),
                cmap::Data::Int8(n) => Value::Num((*n).max(0) as u64),
                cmap::Data::Int16(n) => Value::Num((*n).max(0) as u64),
                cmap::Data::Int32(n) => Value::Num((*n).max(0) as u64),
                cmap::Data::Int64(n) => Value::Num((*n).max(0) as u64),
                _ => continue,
            };
            keys.insert(item.key_name().to_string(), v);
        }
    }
    Ok(keys)
}

/// Connect once and check corosync's configuration against the target.
pub fn probe(t: &Target) -> Result<Topology, ArbiterError> {
    topology::read(&read_keys()?, &t.peer, &t.peer_addr)
}

/// How long the start-up [`probe`] may take: a corosync that answers does so in
/// milliseconds.
pub const PROBE_LIMIT: Duration = Duration::from_secs(5);

/// [`probe`] on a thread of its own, given up after `limit` as unreachable. The
/// calls are blocking C over libqb IPC and cannot be cancelled: a corosync that
/// accepted the connection and never answers keeps that one thread, while ftd starts
/// (and the arbiter's own thread keeps trying).
pub fn probe_within(t: &Target, limit: Duration) -> Result<Topology, ArbiterError> {
    probe_on_thread(t.clone(), limit, probe)
}

fn probe_on_thread<F>(t: Target, limit: Duration, f: F) -> Result<Topology, ArbiterError>
where
    F: FnOnce(&Target) -> Result<Topology, ArbiterError> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("ftd-corosync-probe".into())
        .spawn(move || {
            let _ = tx.send(f(&t));
        })
        .map_err(|e| ArbiterError::Unreachable(format!("cannot start the probe's thread: {e}")))?;
    rx.recv_timeout(limit).unwrap_or_else(|_| {
        Err(ArbiterError::Unreachable(format!(
            "corosync did not answer within {limit:?}"
        )))
    })
}

/// Start the driver thread; it runs until `stop` is set.
pub fn spawn(
    target: Target,
    tx: watch::Sender<View>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ftd-arbiter".into())
        .spawn(move || run(target, tx, stop))
}

fn run(target: Target, tx: watch::Sender<View>, stop: Arc<AtomicBool>) {
    let mut timing = Timing::DEFAULT;
    let mut last_problem = String::new();
    while !stop.load(Ordering::Relaxed) {
        let problem = match session(&target, &tx, &stop, &mut timing) {
            Ok(()) => return,
            Err(e) => e.to_string(),
        };
        if problem != last_problem {
            tracing::warn!(%problem, "arbiter: corosync cannot be used; the peer's loss would fence this host's copies");
            last_problem = problem.clone();
        }
        tx.send_replace(View::disconnected(
            Params::derive(timing, target.margin),
            problem,
        ));
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// One connection's life: returns `Ok` when stopped, the reason when it broke.
fn session(
    target: &Target,
    tx: &watch::Sender<View>,
    stop: &AtomicBool,
    timing: &mut Timing,
) -> Result<(), ArbiterError> {
    let topo = probe(target)?;
    *timing = topo.timing;
    let params = Params::derive(topo.timing, target.margin);
    tracing::info!(
        me = topo.me,
        peer = topo.peer,
        nodes = ?topo.nodes,
        qdevice = ?topo.qdevice,
        ?params,
        "arbiter: following corosync's quorum"
    );
    let model = quorum::ModelData::ModelV1(quorum::Model1Data {
        flags: quorum::Model1Flags::None,
        quorum_notification_fn: Some(on_quorum),
        nodelist_notification_fn: None,
    });
    let (h, _) = quorum::initialize(&model, 0).map_err(unreachable)?;
    quorum::trackstart(&h, TrackFlags::Changes).map_err(unreachable)?;
    let fd = quorum::fd_get(&h).map_err(unreachable)?;
    let mut absent_since: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `fd` belongs to the quorum handle `h`, alive for this loop.
        let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
        let mut fds = [PollFd::new(bfd, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(500u16)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(ArbiterError::Unreachable(format!("poll: {e}"))),
        }
        quorum::dispatch(&h, DispatchFlags::All).map_err(unreachable)?;
        let Some(n) = NOTICE.with(|c| c.borrow_mut().take()) else {
            continue;
        };
        let present = n.members.contains(&topo.peer);
        absent_since = match (present, absent_since) {
            (true, _) => None,
            (false, Some(t)) => Some(t),
            (false, None) => Some(Instant::now()),
        };
        tracing::info!(
            quorate = n.quorate,
            ring = %format!("{:x}.{:x}", n.ring.0, n.ring.1),
            members = ?n.members,
            peer_member = present,
            "arbiter: corosync membership"
        );
        tx.send_replace(View {
            connected: true,
            ring: n.ring,
            quorate: n.quorate,
            members: n.members,
            peer: topo.peer,
            peer_absent_since: absent_since,
            params,
            problem: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            peer: "b".into(),
            peer_addr: "10.200.0.12".into(),
            margin: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_probe_that_does_not_answer_is_given_up_at_its_limit() {
        let t = Instant::now();
        let e = probe_on_thread(target(), Duration::from_millis(200), |_| {
            std::thread::sleep(Duration::from_secs(30));
            Err(ArbiterError::Unreachable("late".into()))
        })
        .unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(
            e.to_string(),
            ArbiterError::Unreachable("corosync did not answer within 200ms".into()).to_string()
        );
    }

    #[test]
    fn a_probe_that_answers_in_time_gives_its_answer() {
        let e = probe_on_thread(target(), Duration::from_secs(5), |t| {
            Err(ArbiterError::Config(format!("no node {}", t.peer)))
        })
        .unwrap_err();
        assert!(
            matches!(&e, ArbiterError::Config(m) if m == "no node b"),
            "{e:?}"
        );
    }
}
