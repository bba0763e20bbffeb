//! Which COLO ports each domain uses on this host ([`PortPool`]). A domain gets
//! the lowest free slot when this host first wires it as the primary (its disk
//! sync, or the spec its secondary asks for while it prepares), never merely
//! because a task exists for it, and keeps it while it may run here: the slot is
//! written to `<state-dir>/ports.json` at once, so that a restarted ftd
//! re-attaches to a running COLO pair on the ports it really uses (before, a slot
//! came from the order domains were found in, which a restart reshuffled). A
//! slot is given back ([`PortPool::release`]) only when the domain's task ends
//! because the domain is gone from this host.
//!
//! There are [`Ports::SLOTS`] slots; a slot whose ports fall outside 1-65535 or
//! meet another slot's in use is refused, with what to change in `colo.ports`
//! (the configuration's check makes that impossible for a loaded config; the
//! pool checks again because it is what hands the ports out).
//!
//! The primary's slot decides a protection's ports; the secondary takes them from
//! the primary's spec ([`crate::colo::spec::SecondarySpec::ports`]) and never from
//! its own slot, so a takeover cuts the sockets the domain really uses.

use crate::colo::plan::Ports;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// This host's slots, shared by the domain tasks (cheap to clone).
#[derive(Debug, Clone)]
pub struct PortPool {
    inner: Arc<Mutex<Inner>>,
    /// Held while the file is written (one write at a time).
    writing: Arc<Mutex<()>>,
}

#[derive(Debug)]
struct Inner {
    bases: Ports,
    /// Where the slots are kept (`None`: in memory only, for tests).
    file: Option<PathBuf>,
    slots: BTreeMap<String, u16>,
}

impl PortPool {
    /// The pool of `state_dir` (created if missing), with the slots kept there.
    pub fn load(bases: Ports, state_dir: &Path) -> Result<PortPool, String> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| format!("creating state-dir {}: {e}", state_dir.display()))?;
        let file = state_dir.join("ports.json");
        let slots = match std::fs::read(&file) {
            Ok(b) => parse(&b).map_err(|e| {
                format!(
                    "{} is unreadable ({e}): fix it, or remove it while no domain is \
                     protected on this host",
                    file.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("reading {}: {e}", file.display())),
        };
        Ok(PortPool {
            inner: Arc::new(Mutex::new(Inner {
                bases,
                file: Some(file),
                slots,
            })),
            writing: Arc::default(),
        })
    }

    /// The configured ports of slot 0 (every slot's are derived from them).
    pub fn bases(&self) -> Ports {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).bases
    }

    /// A pool that keeps nothing on disk.
    pub fn in_memory(bases: Ports) -> PortPool {
        PortPool {
            inner: Arc::new(Mutex::new(Inner {
                bases,
                file: None,
                slots: BTreeMap::new(),
            })),
            writing: Arc::default(),
        }
    }

    /// The ports of `domain`: its slot, or the lowest free one (then kept).
    pub fn ports(&self, domain: &str) -> Result<Ports, String> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = g.slots.get(domain) {
            return slot_ports(g.bases, *n, &g.slots, domain);
        }
        let n = (0..Ports::SLOTS)
            .find(|n| !g.slots.values().any(|u| u == n))
            .ok_or_else(|| {
                format!(
                    "every one of the {} COLO port slots of this host is taken: no more \
                     domains can be wired here",
                    Ports::SLOTS
                )
            })?;
        let ports = slot_ports(g.bases, n, &g.slots, domain)?;
        g.slots.insert(domain.to_string(), n);
        if g.file.is_some() {
            drop(g);
            self.persist(domain);
        }
        Ok(ports)
    }

    /// The ports of `domain` if it has a slot already; never takes one.
    pub fn existing(&self, domain: &str) -> Option<Result<Ports, String>> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let n = *g.slots.get(domain)?;
        Some(slot_ports(g.bases, n, &g.slots, domain))
    }

    /// How many slots are taken.
    pub fn taken(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .slots
            .len()
    }

    /// Give `domain`'s slot back (its task ended: the domain is gone from this
    /// host, no copy of it runs here). Whether it had one.
    pub fn release(&self, domain: &str) -> bool {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.slots.remove(domain).is_none() {
            return false;
        }
        if g.file.is_some() {
            drop(g);
            self.persist(domain);
        }
        true
    }

    /// Write the slots to the file. Called from the daemon's router (through
    /// `domain::spawn`), which must not wait on a disk: inside a runtime the
    /// write goes to the blocking pool. Writes are serialized and each writes
    /// the newest slots, so the last one to finish leaves the newest file.
    fn persist(&self, domain: &str) {
        let (inner, writing, domain) =
            (self.inner.clone(), self.writing.clone(), domain.to_string());
        let write = move || {
            let _one_at_a_time = writing.lock().unwrap_or_else(|p| p.into_inner());
            let (file, slots) = {
                let g = inner.lock().unwrap_or_else(|p| p.into_inner());
                (g.file.clone(), g.slots.clone())
            };
            let Some(file) = file else { return };
            if let Err(e) = save(&file, &slots) {
                tracing::warn!(%domain, file = %file.display(), error = %e, "COLO port slots not saved: a restarted ftd may not find this domain's ports");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(write)),
            Err(_) => write(),
        }
    }
}

/// The ports of slot `n` from `bases`, refused when they fall outside 1-65535
/// or meet a port of another domain's slot in `slots` (`domain` may already
/// hold `n`): the message says what to change.
fn slot_ports(
    bases: Ports,
    n: u16,
    slots: &BTreeMap<String, u16>,
    domain: &str,
) -> Result<Ports, String> {
    let room = 10 * (Ports::SLOTS - 1);
    let p = bases.checked_nth(n).ok_or_else(|| {
        format!(
            "COLO port slot {n} would take ports outside 1-65535 (slot n uses colo.ports' \
             nbd and migration minus 10 n, the others plus 10 n; colo.ports are {:?}): \
             choose nbd and migration above {room} and the others below {}, then \
             restart ftd",
            bases.all(),
            65535 - room
        )
    })?;
    let mine = p.all();
    if let Some(port) = mine
        .iter()
        .enumerate()
        .find(|(i, q)| mine[..*i].contains(q))
        .map(|(_, q)| *q)
    {
        return Err(format!(
            "COLO port slot {n} would use port {port} twice (colo.ports are {:?}): give \
             each of colo.ports its own port, then restart ftd",
            bases.all()
        ));
    }
    for (other, m) in slots.iter().filter(|(d, _)| d.as_str() != domain) {
        let Some(theirs) = bases.checked_nth(*m) else {
            continue;
        };
        if let Some(port) = mine.iter().find(|q| theirs.all().contains(q)) {
            return Err(format!(
                "COLO port slot {n} would use port {port}, which domain {other:?} uses in \
                 slot {m} (slot n adds or takes 10 n to colo.ports {:?}): spread \
                 colo.ports at least {} apart, then restart ftd",
                bases.all(),
                10 * Ports::SLOTS
            ));
        }
    }
    Ok(p)
}

fn parse(bytes: &[u8]) -> Result<BTreeMap<String, u16>, String> {
    let m: BTreeMap<String, u16> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if let Some((d, n)) = m.iter().find(|(_, n)| **n >= Ports::SLOTS) {
        return Err(format!(
            "domain {d:?} has slot {n}, past the last ({})",
            Ports::SLOTS - 1
        ));
    }
    let mut seen = BTreeMap::new();
    for (d, n) in &m {
        if let Some(other) = seen.insert(*n, d) {
            return Err(format!("domains {other:?} and {d:?} both have slot {n}"));
        }
    }
    Ok(m)
}

/// Write atomically: a crash leaves the old file or the new one.
fn save(file: &Path, slots: &BTreeMap<String, u16>) -> Result<(), String> {
    let tmp = file.with_extension("json.new");
    let bytes = serde_json::to_vec_pretty(slots).map_err(|e| e.to_string())?;
    std::fs::write(&tmp, bytes).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, file).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_keeps_its_slot_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let p = PortPool::load(Ports::DEFAULT, dir.path()).unwrap();
        assert_eq!(p.ports("x").unwrap(), Ports::slot(0));
        assert_eq!(p.ports("y").unwrap(), Ports::slot(1));
        assert_eq!(p.ports("x").unwrap(), Ports::slot(0), "asked again");
        // A restart finds y first: it keeps slot 1, and a new domain gets slot 2.
        let q = PortPool::load(Ports::DEFAULT, dir.path()).unwrap();
        assert_eq!(q.ports("y").unwrap(), Ports::slot(1));
        assert_eq!(q.ports("z").unwrap(), Ports::slot(2));
        assert_eq!(q.ports("x").unwrap(), Ports::slot(0));
    }

    #[tokio::test]
    async fn inside_a_runtime_the_slots_are_written_off_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let p = PortPool::load(Ports::DEFAULT, dir.path()).unwrap();
        for d in ["x", "y", "z"] {
            p.ports(d).unwrap();
        }
        let file = dir.path().join("ports.json");
        let t0 = std::time::Instant::now();
        loop {
            let kept = std::fs::read(&file).ok().and_then(|b| parse(&b).ok());
            if kept.is_some_and(|m| m.len() == 3) {
                break;
            }
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(10),
                "ports.json never had all three"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let q = PortPool::load(Ports::DEFAULT, dir.path()).unwrap();
        assert_eq!(q.ports("z").unwrap(), Ports::slot(2));
    }

    #[test]
    fn configured_bases_are_used() {
        let bases = Ports {
            nbd: 20000,
            migration: 19999,
            mirror: 21000,
            compare: 21001,
            compare_in: 21002,
            compare_out: 21003,
        };
        let p = PortPool::in_memory(bases);
        assert_eq!(p.ports("a").unwrap(), bases);
        let b = p.ports("b").unwrap();
        assert_eq!((b.nbd, b.migration, b.mirror), (19990, 19989, 21010));
    }

    #[test]
    fn a_damaged_file_stops_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ports.json"), b"{\"x\": 900}").unwrap();
        let e = PortPool::load(Ports::DEFAULT, dir.path()).unwrap_err();
        assert!(
            e.contains("past the last") && e.contains("remove it"),
            "{e}"
        );
        std::fs::write(dir.path().join("ports.json"), b"not json").unwrap();
        assert!(PortPool::load(Ports::DEFAULT, dir.path()).is_err());
    }

    #[test]
    fn two_domains_with_one_slot_in_the_file_stop_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ports.json"), b"{\"x\": 3, \"y\": 3}").unwrap();
        let e = PortPool::load(Ports::DEFAULT, dir.path()).unwrap_err();
        assert!(
            e.contains("both have slot 3") && e.contains("remove it"),
            "{e}"
        );
    }

    #[test]
    fn asking_for_existing_ports_takes_no_slot() {
        let p = PortPool::in_memory(Ports::DEFAULT);
        assert_eq!(p.existing("x"), None);
        assert_eq!(p.taken(), 0);
        p.ports("x").unwrap();
        assert_eq!(p.existing("x"), Some(Ok(Ports::slot(0))));
        assert_eq!(p.taken(), 1);
    }

    #[test]
    fn a_released_slot_is_free_again_and_forgotten_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let p = PortPool::load(Ports::DEFAULT, dir.path()).unwrap();
        p.ports("x").unwrap();
        p.ports("y").unwrap();
        assert!(p.release("x"));
        assert!(!p.release("x"), "released once");
        assert_eq!(p.existing("x"), None);
        assert_eq!(p.ports("z").unwrap(), Ports::slot(0), "x's slot again");
        assert!(p.release("z"));
        let q = PortPool::load(Ports::DEFAULT, dir.path()).unwrap();
        assert_eq!(q.existing("y"), Some(Ok(Ports::slot(1))));
        assert_eq!((q.existing("x"), q.existing("z")), (None, None));
    }

    #[test]
    fn a_slot_past_port_1_is_refused_with_the_fix_and_taken_by_nobody() {
        // nbd 100: slot 9 uses port 10, slot 10 would use port 0.
        let bases = Ports {
            nbd: 100,
            migration: 20000,
            ..Ports::DEFAULT
        };
        let p = PortPool::in_memory(bases);
        for n in 0..10 {
            assert_eq!(p.ports(&format!("d{n}")).unwrap().nbd, 100 - 10 * n);
        }
        let e = p.ports("one-more").unwrap_err();
        assert!(
            e.contains("slot 10") && e.contains("outside 1-65535") && e.contains("choose nbd"),
            "{e}"
        );
        assert_eq!(p.taken(), 10);
        assert_eq!(p.existing("one-more"), None);
    }

    #[test]
    fn a_slot_past_port_65535_is_refused() {
        let bases = Ports {
            compare_out: 65530,
            ..Ports::DEFAULT
        };
        let p = PortPool::in_memory(bases);
        assert_eq!(p.ports("a").unwrap().compare_out, 65530);
        let e = p.ports("b").unwrap_err();
        assert!(e.contains("slot 1") && e.contains("outside 1-65535"), "{e}");
        assert_eq!(p.taken(), 1);
    }

    #[test]
    fn a_slot_meeting_another_domains_ports_is_refused_with_the_fix() {
        // Slot 1's mirror (9003 + 10) is slot 0's compare.
        let bases = Ports {
            compare: 9013,
            ..Ports::DEFAULT
        };
        let p = PortPool::in_memory(bases);
        p.ports("a").unwrap();
        let e = p.ports("b").unwrap_err();
        assert!(
            e.contains("port 9013") && e.contains("\"a\"") && e.contains("spread colo.ports"),
            "{e}"
        );
        assert_eq!(p.taken(), 1);
        // One port twice within a slot.
        let p = PortPool::in_memory(Ports {
            mirror: 9004,
            ..Ports::DEFAULT
        });
        assert!(p.ports("a").unwrap_err().contains("twice"));
    }

    #[test]
    fn slots_run_out_with_a_clear_error() {
        let p = PortPool::in_memory(Ports::DEFAULT);
        for n in 0..Ports::SLOTS {
            p.ports(&format!("d{n}")).unwrap();
        }
        assert!(p.ports("one-more").unwrap_err().contains("slots"));
        assert_eq!(p.taken(), usize::from(Ports::SLOTS));
    }
}
