//! Which COLO ports each domain uses on this host ([`PortPool`]). A domain gets
//! the lowest free slot the first time this host's ftd sees it, and keeps it for
//! good: the slot is written to `<state-dir>/ports.json` at once, so that a
//! restarted ftd re-attaches to a running COLO pair on the ports it really uses
//! (before, a slot came from the order domains were found in, which a restart
//! reshuffled).
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
            return Ok(g.bases.nth(*n));
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
        g.slots.insert(domain.to_string(), n);
        let ports = g.bases.nth(n);
        if g.file.is_some() {
            drop(g);
            self.persist(domain);
        }
        Ok(ports)
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

fn parse(bytes: &[u8]) -> Result<BTreeMap<String, u16>, String> {
    let m: BTreeMap<String, u16> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if let Some((d, n)) = m.iter().find(|(_, n)| **n >= Ports::SLOTS) {
        return Err(format!(
            "domain {d:?} has slot {n}, past the last ({})",
            Ports::SLOTS - 1
        ));
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
    fn slots_run_out_with_a_clear_error() {
        let p = PortPool::in_memory(Ports::DEFAULT);
        for n in 0..Ports::SLOTS {
            p.ports(&format!("d{n}")).unwrap();
        }
        assert!(p.ports("one-more").unwrap_err().contains("slots"));
    }
}
